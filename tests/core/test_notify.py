"""Webhook notifier against a real local HTTP server: delivered, server down, server erroring, retry later."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from feedback_loop.core import notify
from feedback_loop.core.config import NotifyConfig

pytestmark = pytest.mark.integration

SETTINGS = NotifyConfig(webhook_url_env="FL_TEST_WEBHOOK", timeout_seconds=2, max_attempts=3)


class Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    Recorder.received = []
    Recorder.status = 200
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("FL_TEST_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    yield Recorder
    server.shutdown()


def stored(conn, notification_id):
    return conn.execute("SELECT * FROM notifications WHERE id = %s", (notification_id,)).fetchone()


def test_delivers_slack_compatible_json(conn, webhook):
    result = notify.notify(conn, "urgent_feedback", "Urgent feedback on digits v1", SETTINGS, {"rating": 1})
    assert result.status == "delivered" and result.attempts == 1
    assert webhook.received[0]["text"] == "Urgent feedback on digits v1"
    assert "*rating*: 1" in webhook.received[0]["blocks"][1]["text"]["text"]
    assert stored(conn, result.notification_id)["status"] == "delivered"


def test_server_errors_are_retried_then_recorded_as_failed(conn, webhook):
    webhook.status = 500
    result = notify.notify(conn, "t", "x", SETTINGS)
    assert result.status == "failed" and result.attempts == 3
    assert len(webhook.received) == 3
    row = stored(conn, result.notification_id)
    assert row["status"] == "failed" and "HTTP 500" in row["last_error"]
    webhook.status = 200
    retried = notify.deliver_pending(conn, SETTINGS)
    assert [r.status for r in retried] == ["delivered"]
    assert stored(conn, result.notification_id)["attempts"] == 4


def test_server_down_never_raises_and_keeps_the_notification(conn, monkeypatch):
    monkeypatch.setenv("FL_TEST_WEBHOOK", "http://127.0.0.1:9/nothing-listens-here")
    result = notify.notify(conn, "t", "x", NotifyConfig(webhook_url_env="FL_TEST_WEBHOOK", max_attempts=2))
    assert result.status == "failed"
    assert "ConnectionError" in result.error
    assert stored(conn, result.notification_id)["status"] == "failed"


def test_without_a_webhook_the_notification_waits(conn, monkeypatch):
    monkeypatch.delenv("FL_TEST_WEBHOOK", raising=False)
    result = notify.notify(conn, "t", "x", SETTINGS)
    assert result.status == "pending"
    assert stored(conn, result.notification_id)["status"] == "pending"


def test_personal_data_is_masked_before_it_reaches_the_outbox_or_the_webhook(conn, webhook):
    """The outbox is the last stop before the webhook: whatever a caller passes, text and text fields are
    masked there (issue 14); numbers, ids and trace ids stay readable."""
    trace = "7b0c8a8e-5a3e-4cc4-9a59-0b4f2f7f1e11"
    fields = {"comment": "card 4111-1111-1111-1111/12/28, mail jürgen@bücher.de", "trace": trace, "id": 12}
    result = notify.notify(
        conn, "urgent_feedback", "from 192.168.1.20: call +49 30 1234567", SETTINGS, fields
    )
    assert result.status == "delivered"
    payload = webhook.received[0]
    assert payload["text"] == "from [ip]: call [phone]"
    details = payload["blocks"][1]["text"]["text"]
    assert "*comment*: card [card], mail [email]" in details and trace in details and "*id*: 12" in details
    assert stored(conn, result.notification_id)["payload"] == payload
