"""Webhook notifications (Slack-compatible JSON) through an outbox table.

Every notification is first written to `notifications` and committed by the caller's transaction, then
delivered with a timeout and bounded retries with backoff. A failed delivery stays in the table with its
error for `deliver_pending()` to retry later: it is never lost and never fails the caller.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.types.json import Jsonb

from feedback_loop.core import privacy, queries
from feedback_loop.core.config import NotifyConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    notification_id: int
    status: str  # delivered | failed | pending (no webhook configured)
    attempts: int
    error: str | None = None


def webhook_url(settings: NotifyConfig) -> str | None:
    """The webhook URL is a secret, so it comes from the environment variable the config names."""
    return os.environ.get(settings.webhook_url_env) or None


def slack_payload(text: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Slack incoming-webhook JSON: `text` for any client, plus a block with the details."""
    payload: dict[str, Any] = {"text": text}
    if fields:
        details = "\n".join(f"*{k}*: {v}" for k, v in fields.items())
        payload["blocks"] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "text": {"type": "mrkdwn", "text": details}},
        ]
    return payload


def enqueue(conn: psycopg.Connection, topic: str, text: str, fields: dict[str, Any] | None = None) -> int:
    """Store a notification for delivery. Its text and text fields are masked here, the last point before
    they leave the process, whatever the caller already masked (core.privacy; trace ids stay readable)."""
    text = privacy.mask(text).text
    if fields:
        fields = {k: privacy.mask(v).text if isinstance(v, str) else v for k, v in fields.items()}
    row = conn.execute(
        queries.sql("notify/enqueue"), {"topic": topic, "payload": Jsonb(slack_payload(text, fields))}
    ).fetchone()
    return int(row["id"])


def _post(url: str, payload: dict[str, Any], settings: NotifyConfig) -> str | None:
    """One delivery attempt; returns None on success or the reason it failed."""
    import requests

    try:
        response = requests.post(url, json=payload, timeout=settings.timeout_seconds)
    except requests.RequestException as exc:
        return _redact(f"{type(exc).__name__}: {exc}", url)[:500]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _redact(text: str, url: str) -> str:
    """The path of a Slack-style webhook URL is its secret; requests puts it in its error messages, and
    those are stored in notifications.last_error and logged."""
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    for secret in (url, path, parts.path):
        if len(secret) > 1:
            text = text.replace(secret, "<webhook path>")
    return text


def deliver(
    conn: psycopg.Connection, notification_id: int, settings: NotifyConfig, *, backoff_seconds: float = 0.5
) -> Delivery:
    """Try to deliver one stored notification; records the outcome, never raises for delivery errors."""
    return deliver_with(lambda: nullcontext(conn), notification_id, settings, backoff_seconds=backoff_seconds)


def deliver_with(
    connection: Callable[[], AbstractContextManager[psycopg.Connection]],
    notification_id: int,
    settings: NotifyConfig,
    *,
    backoff_seconds: float = 0.5,
) -> Delivery:
    """`deliver`, holding a database connection (from `connection()`) only to read the notification and
    to record the outcome, never while the webhook is called: that can take `timeout_seconds` times
    `max_attempts` plus backoff, and the API's deliveries borrow connections its requests need."""
    with connection() as conn:
        row = conn.execute(queries.sql("notify/get"), {"id": notification_id}).fetchone()
    if row is None or row["status"] == "delivered":
        return Delivery(notification_id, "delivered" if row else "missing", row["attempts"] if row else 0)
    url = webhook_url(settings)
    if url is None:
        return Delivery(notification_id, "pending", row["attempts"], f"{settings.webhook_url_env} is not set")
    attempts, error = row["attempts"], None
    for attempt in range(settings.max_attempts):
        if attempt:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
        attempts += 1
        error = _post(url, row["payload"], settings)
        if error is None:
            break
    status = "delivered" if error is None else "failed"
    with connection() as conn:
        conn.execute(
            queries.sql("notify/record_delivery"),
            {"status": status, "attempts": attempts, "error": error, "id": notification_id},
        )
    if error is not None:
        log.warning(
            "webhook delivery of notification %s failed after %s attempt(s): %s",
            notification_id,
            attempts,
            error,
        )
    return Delivery(notification_id, status, attempts, error)


def notify(
    conn: psycopg.Connection,
    topic: str,
    text: str,
    settings: NotifyConfig,
    fields: dict[str, Any] | None = None,
) -> Delivery:
    """Store the notification, commit it, then try to deliver it.

    The commit comes first so the notification survives a crash or a dead webhook; call this after the
    caller's own data is ready to be committed.
    """
    notification_id = enqueue(conn, topic, text, fields)
    conn.commit()
    delivery = deliver(conn, notification_id, settings)
    conn.commit()
    return delivery


def deliver_pending(conn: psycopg.Connection, settings: NotifyConfig, limit: int = 100) -> list[Delivery]:
    """Retry notifications that were not delivered yet, oldest first."""
    rows = conn.execute(queries.sql("notify/undelivered"), {"limit": limit}).fetchall()
    results = []
    for row in rows:
        results.append(deliver(conn, int(row["id"]), settings))
        conn.commit()
    return results
