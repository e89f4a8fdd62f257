"""Notification delivery through PostgreSQL outages (issue 14): one warning line when the database goes
away, one info line when it is back, no traceback per attempt, and the notifications still go out.

The outage is real: the service reaches PostgreSQL through a TCP forwarder that the test cuts (every
connection ended by the far side, new ones refused, as during a restart) and restores. Deliveries borrow
the API's pooled connections, so the pool's dead connections are part of what is tested. The webhook is a
local recorder.
"""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from feedback_loop.api.pool import ConnectionPool
from feedback_loop.api.service import DELIVERY_CONNECTION_WAIT_SECONDS, FeedbackService
from feedback_loop.core import config, notify

from ..support.api import WebhookRecorder
from ..support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

OUTAGES = 3
PER_OUTAGE = 6


def test_each_outage_logs_one_warning_and_one_recovery_line_and_no_traceback(
    conn, db_url, caplog, monkeypatch
):
    settings = config.load()
    real = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(real.get("host") or "127.0.0.1"), int(real.get("port") or 5432))
    service = FeedbackService(
        settings, pool=ConnectionPool(url=make_conninfo(db_url, host="127.0.0.1", port=proxy.port))
    )
    ids = [notify.enqueue(conn, "urgent_feedback", f"urgent {i}") for i in range(OUTAGES * PER_OUTAGE)]
    conn.commit()
    caplog.set_level(logging.DEBUG, logger="feedback_loop")
    with WebhookRecorder() as hook:
        monkeypatch.setenv(settings.notify.webhook_url_env, hook.url)
        try:
            for outage in range(OUTAGES):
                proxy.cut()  # PostgreSQL "goes away", for longer than a delivery waits for a connection
                # Deliveries are scheduled as the API schedules them after a commit.
                service._schedule(ids[outage * PER_OUTAGE : (outage + 1) * PER_OUTAGE])  # noqa: SLF001
                time.sleep(DELIVERY_CONNECTION_WAIT_SECONDS + 1.5)
                proxy.restore()
                assert service.wait_for_deliveries(timeout=30)
        finally:
            service.close()
            proxy.close()
        received = sorted(message["text"] for message in hook.received)
    ours = [r for r in caplog.records if r.name.startswith("feedback_loop")]
    assert [r for r in ours if r.exc_info] == [], "no traceback per failed attempt"
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    delivery = [w for w in warnings if "notification delivery" in w]
    assert len(delivery) == OUTAGES, warnings
    assert all("cannot reach the feedback database" in w and "retr" in w for w in delivery), delivery
    assert all("connection refused" in w or "closed the connection" in w for w in delivery), (
        "the reason names the refused connection, not a busy pool",
        delivery,
    )
    # Besides, at most one line per outage from the pool, dropping its connections the outage ended.
    pool_lines = [w for w in warnings if w not in delivery]
    assert len(pool_lines) <= OUTAGES, warnings
    assert all(w.startswith("dropping idle feedback database connections") for w in pool_lines), warnings
    recoveries = [r.getMessage() for r in ours if r.levelno == logging.INFO and "again" in r.getMessage()]
    assert len(recoveries) == OUTAGES, recoveries
    # Delivery retried until the database answered: nothing was left behind.
    assert received == sorted(f"urgent {i}" for i in range(OUTAGES * PER_OUTAGE))
    statuses = conn.execute("SELECT status, count(*) AS n FROM notifications GROUP BY status").fetchall()
    assert statuses == [{"status": "delivered", "n": OUTAGES * PER_OUTAGE}]


def test_a_posted_notification_whose_outcome_cannot_be_stored_at_first_is_not_posted_again(
    conn, db_url, monkeypatch
):
    settings = config.load()
    service = FeedbackService(settings, pool=ConnectionPool(url=db_url))
    notification = notify.enqueue(conn, "urgent_feedback", "urgent once")
    conn.commit()
    real_record, failures = notify.record, []

    def record_after_one_failure(connection, delivery):
        if not failures:
            failures.append(delivery)
            raise psycopg.OperationalError("the server closed the connection unexpectedly")
        real_record(connection, delivery)

    monkeypatch.setattr(notify, "record", record_after_one_failure)
    with WebhookRecorder() as hook:
        monkeypatch.setenv(settings.notify.webhook_url_env, hook.url)
        try:
            service._schedule([notification])  # noqa: SLF001
            assert service.wait_for_deliveries(timeout=30)
        finally:
            service.close()
        received = [message["text"] for message in hook.received]
    assert failures, "the first attempt to store the outcome failed"
    assert received == ["urgent once"], "posted exactly once"
    row = conn.execute("SELECT status, attempts FROM notifications WHERE id = %s", (notification,)).fetchone()
    assert row == {"status": "delivered", "attempts": 1}
