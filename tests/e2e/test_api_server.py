"""The feedback API as a real `feedback-loop api serve` process (uvicorn on 127.0.0.1) with tokens from
Airflow's POST /auth/token, real PostgreSQL and a real local webhook server.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import ANY

import httpx
import pytest
from fastapi.testclient import TestClient

from ..support.api import (
    WEBHOOK_ENV,
    WebhookRecorder,
    airflow_app,
    api_server,
    auth_env,
    bearer,
    init_airflow_db,
    token,
    write_config,
)
from ..support.helpers import make_predictions, register_toy

pytestmark = pytest.mark.e2e

MAX_BODY = 200_000


@pytest.fixture(scope="module")
def webhook():
    with WebhookRecorder() as hook:
        yield hook


@pytest.fixture(scope="module")
def server(db_url, tmp_path_factory, webhook):
    tmp = tmp_path_factory.mktemp("api-server")
    env = {
        **auth_env(tmp),
        "FEEDBACK_LOOP_CONFIG": str(write_config(tmp, max_body_bytes=MAX_BODY)),
        WEBHOOK_ENV: webhook.url,
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        init_airflow_db()

        def issue_tokens() -> dict[str, str]:
            airflow = TestClient(airflow_app())  # the token issuer: Airflow's own /auth/token
            return {user: token(airflow, user) for user in ("writer", "reader")}

        # Build the in-process Airflow app while the server process starts (both take seconds).
        with ThreadPoolExecutor(max_workers=1) as background:
            tokens = background.submit(issue_tokens)
            with api_server(env, tmp / "server.log") as base:
                found = tokens.result()
                yield {"base": base, "writer": bearer(found["writer"]), "reader": bearer(found["reader"])}


@pytest.fixture
def traces(conn):
    register_toy(conn)
    conn.commit()
    found = make_predictions(conn, "toy", 1, 100)
    conn.commit()
    return found


def count(conn, table: str = "feedback") -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]  # noqa: S608 - fixed names


def test_auth_and_validation_through_the_real_server(server, conn, traces):
    base, body = server["base"], {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "database": "ok", "pool": ANY}
    assert httpx.post(f"{base}/feedback", json=body).status_code == 401
    assert httpx.post(f"{base}/feedback", json=body, headers=server["reader"]).status_code == 403
    assert httpx.post(f"{base}/feedback", json=body, headers=bearer("not.a.jwt")).status_code == 403
    bad = httpx.post(
        f"{base}/feedback", json={**body, "kind": "rating", "rating": 0}, headers=server["writer"]
    )
    assert bad.status_code == 422
    assert bad.json() == {"detail": [{"field": "rating", "reason": "must be between 1 and 5"}]}
    unknown = httpx.post(
        f"{base}/feedback", json={**body, "trace_id": str(uuid.uuid4())}, headers=server["writer"]
    )
    assert unknown.status_code == 404
    huge = httpx.post(
        f"{base}/feedback/batch", json={"items": [body] * 5_000}, headers=server["writer"]
    )  # ~ 350 kB > limit
    assert huge.status_code == 413 and str(MAX_BODY) in huge.json()["detail"][0]["reason"]
    assert count(conn) == 0
    ok = httpx.post(f"{base}/feedback", json=body, headers=server["writer"])
    assert ok.status_code == 201
    assert httpx.get(f"{base}/feedback/{ok.json()['id']}", headers=server["reader"]).json() == ok.json()
    assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Feedback API"


def test_a_thousand_concurrent_retries_of_100_events_store_exactly_100_rows(server, conn, traces):
    kinds = [
        {"kind": "thumbs_up"},
        {"kind": "rating", "rating": 4},
        {"kind": "thumbs_down"},
        {"kind": "correction", "label": "b"},
        {"kind": "implicit", "signal": "retried"},
    ]
    events = [
        {"trace_id": str(t), "user_id": f"u{i}", "client_event_id": f"evt-{i}", **kinds[i % len(kinds)]}
        for i, t in enumerate(traces)
    ]
    attempts = [e for e in events for _ in range(10)]
    random.Random(7).shuffle(attempts)
    local = threading.local()

    def send(event):
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server["base"], headers=server["writer"], timeout=60)
        response = local.client.post("/feedback", json=event)
        return event["client_event_id"], response.status_code, response.json().get("id")

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(send, attempts))
    assert len(results) == 1000
    assert {status for _, status, _ in results} <= {200, 201}
    ids = defaultdict(set)
    for key, _, feedback_id in results:
        ids[key].add(feedback_id)
    assert all(len(found) == 1 for found in ids.values()), "every retry must return the original row"
    assert sum(status == 201 for _, status, _ in results) == 100
    assert count(conn) == 100
    stored = conn.execute("SELECT count(DISTINCT idempotency_key) AS n FROM feedback").fetchone()["n"]
    assert stored == 100

    # The same through the batch endpoint: 20 concurrent copies of one batch of 100 events.
    batch = {"items": [{**e, "client_event_id": f"batch-{e['client_event_id']}"} for e in events]}

    def send_batch(_):
        response = httpx.post(
            f"{server['base']}/feedback/batch", json=batch, headers=server["writer"], timeout=60
        )
        return response.status_code, [item["id"] for item in response.json()["items"]]

    with ThreadPoolExecutor(max_workers=20) as pool:
        batches = list(pool.map(send_batch, range(20)))
    assert {status for status, _ in batches} <= {200, 201}
    assert len({tuple(found) for _, found in batches}) == 1
    assert count(conn) == 200


def test_urgent_feedback_never_waits_for_a_slow_webhook(server, conn, traces, webhook):
    webhook.delay = 2.0
    started = time.monotonic()
    response = httpx.post(
        f"{server['base']}/feedback",
        json={"trace_id": str(traces[5]), "kind": "rating", "rating": 1, "comment": "the digit is wrong"},
        headers=server["writer"],
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 201
    assert elapsed < webhook.delay / 2, (
        f"request took {elapsed:.2f}s while the webhook needs {webhook.delay}s"
    )
    row = wait_for_notification(conn, lambda r: r["status"] == "delivered", timeout=30)
    webhook.delay = 0.0
    assert row["attempts"] == 1
    assert "Urgent feedback on toy v1: rating 1" in [payload["text"] for payload in webhook.received]


def test_a_dead_webhook_is_recorded_in_the_outbox_and_the_request_succeeds(server, conn, traces, webhook):
    webhook.server.shutdown()
    webhook.server.server_close()
    response = httpx.post(
        f"{server['base']}/feedback",
        json={"trace_id": str(traces[6]), "kind": "thumbs_down", "comment": "offensive answer"},
        headers=server["writer"],
    )
    assert response.status_code == 201 and response.json()["priority"] == "urgent"
    row = wait_for_notification(conn, lambda r: r["status"] == "failed", timeout=30)
    assert row["attempts"] == 2 and "ConnectionError" in row["last_error"]
    assert count(conn) == 1


def wait_for_notification(conn, done, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        conn.rollback()  # a fresh snapshot for each look
        rows = conn.execute(
            "SELECT status, attempts, last_error FROM notifications WHERE topic = 'urgent_feedback'"
        ).fetchall()
        if rows and done(rows[0]):
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"notification not settled after {timeout}s: {rows}")
        time.sleep(0.1)


def test_api_serve_refuses_a_bad_port_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "feedback_loop.cli", "api", "serve", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "port must be between 1 and 65535, got 70000" in result.stderr
