"""Notification delivery through PostgreSQL outages (issue 14): one warning line when the database goes
away, one info line when it is back, no traceback per attempt, and the notifications still go out.

The outage is real: the delivery workers connect to a port nothing listens on, then to the test database
again (the service's connection pool takes its URL from a function). The webhook is a local recorder.
"""

from __future__ import annotations

import logging
import time

import pytest

from feedback_loop.api.pool import ConnectionPool
from feedback_loop.api.service import FeedbackService
from feedback_loop.core import config, notify

from ..support.api import WebhookRecorder, free_port

pytestmark = pytest.mark.integration

OUTAGES = 3
PER_OUTAGE = 6


def test_each_outage_logs_one_warning_and_one_recovery_line_and_no_traceback(
    conn, db_url, caplog, monkeypatch
):
    settings = config.load()
    target = {"url": db_url}
    service = FeedbackService(settings, pool=ConnectionPool(url=lambda: target["url"]))
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/feedback"
    ids = [notify.enqueue(conn, "urgent_feedback", f"urgent {i}") for i in range(OUTAGES * PER_OUTAGE)]
    conn.commit()
    caplog.set_level(logging.DEBUG, logger="feedback_loop")
    with WebhookRecorder() as hook:
        monkeypatch.setenv(settings.notify.webhook_url_env, hook.url)
        try:
            for outage in range(OUTAGES):
                target["url"] = closed  # PostgreSQL "goes away" for about two seconds
                # Deliveries are scheduled as the API schedules them after a commit.
                service._schedule(ids[outage * PER_OUTAGE : (outage + 1) * PER_OUTAGE])  # noqa: SLF001
                time.sleep(2)
                target["url"] = db_url
                assert service.wait_for_deliveries(timeout=30)
        finally:
            service.close()
        received = sorted(message["text"] for message in hook.received)
    ours = [r for r in caplog.records if r.name.startswith("feedback_loop")]
    assert [r for r in ours if r.exc_info] == [], "no traceback per failed attempt"
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(warnings) == OUTAGES, warnings
    assert all("cannot reach the feedback database" in w and "retr" in w for w in warnings), warnings
    recoveries = [r.getMessage() for r in ours if r.levelno == logging.INFO and "again" in r.getMessage()]
    assert len(recoveries) == OUTAGES, recoveries
    # Delivery retried until the database answered: nothing was left behind.
    assert received == sorted(f"urgent {i}" for i in range(OUTAGES * PER_OUTAGE))
    statuses = conn.execute("SELECT status, count(*) AS n FROM notifications GROUP BY status").fetchall()
    assert statuses == [{"status": "delivered", "n": OUTAGES * PER_OUTAGE}]
