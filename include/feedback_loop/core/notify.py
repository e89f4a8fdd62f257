"""Webhook notifications (Slack-compatible JSON) through an outbox table.

Every notification is first written to `notifications` and committed by the caller's transaction, then
delivered with a timeout and bounded retries with backoff. A failed delivery stays in the table with its
error for `deliver_pending()` to retry later: it is never lost and never fails the caller.
"""

from __future__ import annotations

import logging
import os
import time
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
    row = stored(conn, notification_id)
    done = settled(notification_id, row, settings)
    if done is not None:
        return done
    delivery = post(notification_id, row, settings, backoff_seconds=backoff_seconds)
    record(conn, delivery)
    return delivery


# `deliver` in three steps, for a caller that holds a database connection only around `stored` and
# `record`, never while `post` calls the webhook (the API's deliveries: api/service.py).


def stored(conn: psycopg.Connection, notification_id: int) -> dict[str, Any] | None:
    return conn.execute(queries.sql("notify/get"), {"id": notification_id}).fetchone()


def settled(notification_id: int, row: dict[str, Any] | None, settings: NotifyConfig) -> Delivery | None:
    """The outcome when there is nothing to post (missing, delivered before, no webhook configured);
    None when the notification is to be posted."""
    if row is None or row["status"] == "delivered":
        return Delivery(notification_id, "delivered" if row else "missing", row["attempts"] if row else 0)
    if webhook_url(settings) is None:
        return Delivery(notification_id, "pending", row["attempts"], f"{settings.webhook_url_env} is not set")
    return None


def post(
    notification_id: int, row: dict[str, Any], settings: NotifyConfig, *, backoff_seconds: float = 0.5
) -> Delivery:
    """Post the stored payload to the webhook, with retries and backoff; no database."""
    url = webhook_url(settings)
    attempts, error = row["attempts"], "no webhook URL"
    for attempt in range(settings.max_attempts if url else 0):
        if attempt:
            time.sleep(backoff_seconds * 2 ** (attempt - 1))
        attempts += 1
        error = _post(url, row["payload"], settings)
        if error is None:
            break
    if error is not None:
        log.warning(
            "webhook delivery of notification %s failed after %s attempt(s): %s",
            notification_id,
            attempts,
            error,
        )
    return Delivery(notification_id, "delivered" if error is None else "failed", attempts, error)


def record(conn: psycopg.Connection, delivery: Delivery) -> None:
    conn.execute(
        queries.sql("notify/record_delivery"),
        {
            "status": delivery.status,
            "attempts": delivery.attempts,
            "error": delivery.error,
            "id": delivery.notification_id,
        },
    )


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
