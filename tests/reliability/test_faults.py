"""Faults: PostgreSQL restarted under load, a retraining killed at each step, a dead webhook under load,
and DAG tasks retried after failing half-way. Each test reports its figures (see conftest.figures).

Already covered elsewhere and not repeated here:
- a crash between registering and promoting: tests/integration/test_retraining_safety.py;
- one slow webhook call not delaying a request, and one dead webhook recorded as failed:
  tests/e2e/test_api_server.py; delivery states and retry-later: tests/integration/test_notify.py;
- a clean re-run of an aggregation interval: tests/integration/test_aggregation.py and
  tests/dags/test_feedback_aggregation.py.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from feedback_loop.core import config, db, embedded_postgres, migrations, notify, queries
from feedback_loop.inference import scoring as inference
from feedback_loop.monitoring import aggregation
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import pipeline, planning, run_records

from ..support.aggregation import (
    HOUR,
    T0,
    Replayer,
    event_stream,
    register_profiled,
    rollup_values,
    settings_for,
)
from ..support.api import api_server
from ..support.helpers import make_predictions, register_toy
from ..support.retraining import (
    champion_v1,
    digits_model,
    honest_feedback,
    log_scored,
    production_rows,
    runs,
)
from .conftest import size

pytestmark = pytest.mark.reliability

# ---- (a) PostgreSQL restarted while clients post with retries and idempotency keys ------------------


class RetryingClient:
    """What a well-behaved client does: one idempotency key per event, retry on 5xx and lost connections."""

    def __init__(self, base: str, headers: dict[str, str], deadline_s: float = 90) -> None:
        self.client = httpx.Client(base_url=base, headers=headers, timeout=15)
        self.deadline_s = deadline_s
        self.attempts = 0
        self.outcomes: Counter[str] = Counter()

    def post(self, event: dict) -> dict:
        started = time.monotonic()
        while True:
            self.attempts += 1
            try:
                response = self.client.post("/feedback", json=event)
            except httpx.TransportError as exc:
                self.outcomes[type(exc).__name__] += 1
            else:
                self.outcomes[str(response.status_code)] += 1
                if response.status_code < 500:
                    assert response.status_code in (200, 201), response.text
                    return response.json()
            if time.monotonic() - started > self.deadline_s:
                raise AssertionError(f"event {event['client_event_id']} never acknowledged: {self.outcomes}")
            time.sleep(0.1)


@pytest.fixture
def throwaway_postgres(tmp_path):
    """A PostgreSQL server of our own to restart: never the shared one on 127.0.0.1:5432."""
    data_dir = tmp_path / "pg"
    server = embedded_postgres.start(data_dir)
    url = db.ensure_database(server.url, "fl_restart")
    migrations.upgrade(url)
    yield data_dir, url
    embedded_postgres.stop(data_dir, delete=True)


def restart(data_dir) -> None:
    # pg_ctl restart reuses the running server's options (port, listen address), so clients reconnect
    # to the same URL; "fast" disconnects every open session, as a crash or failover would.
    result = embedded_postgres._pg(
        "pg_ctl", "restart", "-w", "-m", "fast", "-D", str(data_dir / "data"),
        "-l", str(data_dir / "postgres.log"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_postgres_restarted_while_clients_post_stores_every_acknowledged_event_once(
    server, throwaway_postgres, figures
):
    data_dir, url = throwaway_postgres
    with db.connect(url) as conn:
        register_toy(conn)
        conn.commit()
        traces = make_predictions(conn, "toy", 1, 50)
        conn.commit()
    clients, per_client, restarts = size(6, 12), size(40, 150), size(2, 5)
    events = [
        {
            "trace_id": str(traces[(c * per_client + i) % len(traces)]),
            "kind": "rating",
            "rating": 1 + i % 5,
            "comment": "please check" if i % 5 < 2 else None,
            "client_event_id": f"c{c}-e{i}",
        }
        for c in range(clients)
        for i in range(per_client)
    ]
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    env = {**server.env, db.ENV_URL: url}
    with api_server(env, server.tmp / "restart-server.log") as base:
        workers = [RetryingClient(base, server.writer) for _ in range(clients)]

        def post_all(c: int) -> None:
            for event in events[c * per_client : (c + 1) * per_client]:
                answer = workers[c].post(event)
                with lock:
                    previous = acknowledged.setdefault(event["client_event_id"], answer["id"])
                assert previous == answer["id"], "a retry must return the first stored row"
                time.sleep(0.01)

        with ThreadPoolExecutor(max_workers=clients) as pool:
            futures = [pool.submit(post_all, c) for c in range(clients)]
            during = 0
            for k in range(1, restarts + 1):
                # restart at evenly spread points of progress, so every restart hits clients mid-stream
                while len(acknowledged) < k * len(events) // (restarts + 1):
                    if any(f.done() and f.exception() for f in futures):
                        break
                    time.sleep(0.02)
                during += any(not f.done() for f in futures)
                restart(data_dir)
            for future in futures:
                future.result()
        pool = httpx.get(f"{base}/healthz").json()["pool"]
    with db.connect(url) as conn:
        stored = conn.execute(
            "SELECT idempotency_key, count(*) AS n, min(id) AS id FROM feedback GROUP BY idempotency_key"
        ).fetchall()
    outcomes = sum((w.outcomes for w in workers), Counter())
    figures.update(
        clients=clients,
        events=len(events),
        restarts=restarts,
        restarts_while_posting=during,
        attempts=sum(w.attempts for w in workers),
        broken_connections_found=pool["connections_lost"] + pool["returns_bad"],
        acknowledged=len(acknowledged),
        rows_stored=sum(r["n"] for r in stored),
        **{f"answer_{k}": v for k, v in sorted(outcomes.items())},
    )
    assert len(acknowledged) == len(events)
    assert all(r["n"] == 1 for r in stored), "an event was stored twice"
    assert {r["idempotency_key"]: r["id"] for r in stored} == acknowledged
    assert figures.get("answer_500", 0) == 0, "a lost database connection must be a 503 (retry), not 500"
    # Each restart breaks the server's pooled connections: found broken either on check-out (the pool
    # then opens fresh ones and the request goes through) or by a request they failed (a 503, retried).
    assert figures["broken_connections_found"] >= restarts, (
        "the restarts must actually have interrupted requests"
    )
    assert during == restarts, "every restart must come while clients are posting"


# ---- (b) a retraining killed at each step ------------------------------------------------------------
# The kill between registering and promoting is tests/integration/test_retraining_safety.py; these are
# the two other steps. The worker dies with os._exit: no finally blocks, no rollback, no cleanup.

KILL = textwrap.dedent(
    """
    import os, sys
    from feedback_loop.core import config, db
    from feedback_loop.registry import versions as registry
    from feedback_loop.retrain import pipeline, planning, run_records
    step = sys.argv[1]
    if step == "after_training":
        trained = pipeline.train_candidate
        def train_then_die(*args, **kwargs):
            trained(*args, **kwargs)
            os._exit(9)
        pipeline.train_candidate = train_then_die
    elif step == "mid_promotion":
        move = registry._move_alias
        def move_then_die(*args, **kwargs):
            move(*args, **kwargs)  # the alias row is written inside the open promotion transaction
            os._exit(9)
        registry._move_alias = move_then_die
    model = config.load().model("digits")
    with db.connect() as conn:
        pipeline.run(conn, model, planning.resolve_params(model, triggered_by="kill-test"))
    """
)


def champions(conn, model_name: str) -> list[dict]:
    conn.rollback()
    return conn.execute(
        "SELECT version FROM model_aliases WHERE model_name = %s AND alias = 'champion'", (model_name,)
    ).fetchall()


@pytest.mark.parametrize("step", ["after_training", "mid_promotion"])
def test_a_retraining_killed_at_a_step_leaves_exactly_one_verified_champion(conn, db_url, step, figures):
    model = digits_model()
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 200)))
    conn.commit()
    killed = subprocess.run([sys.executable, "-c", KILL, step], capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr[-2000:]

    assert champions(conn, "digits") == [{"version": 1}]
    estimator, serving = registry.load(conn, "digits")  # verifies the sha256 and the trusted types
    assert serving.version == 1 and serving.sha256 == registry.sha256_file(serving.artifact_path)
    alias_events = conn.execute("SELECT count(*) AS n FROM model_alias_events").fetchone()["n"]
    assert alias_events == 1, "the half-done promotion must have left no alias event"
    registered = [v.version for v in registry.list_versions(conn, "digits")]
    assert registered == ([1] if step == "after_training" else [1, 2])
    (dead,) = runs(conn)
    assert dead["status"] == "running"
    # the DAG's teardown closes the run (the dead worker's lock went with its connection)
    assert run_records.finish_run(conn, dead["id"]) == "failed"
    again = pipeline.run(conn, model, planning.resolve_params(model, triggered_by="test"), url=db_url)
    assert again.status == "promoted"
    assert champions(conn, "digits") == [{"version": again.candidate_version}]
    _, serving = registry.load(conn, "digits")
    figures.update(
        killed_exit_code=killed.returncode,
        versions_after_kill=len(registered),
        champions_after_kill=1,
        champion_after_rerun=serving.version,
    )


# ---- (c) the webhook failing or slow while urgent feedback keeps arriving ---------------------------


SLOW_S = 0.5


def test_a_failing_then_slow_webhook_leaves_ingestion_unaffected_and_deliveries_recorded(
    server, conn, webhook, figures
):
    register_toy(conn)
    conn.commit()
    traces = make_predictions(conn, "toy", 1, 60)
    conn.commit()
    n = size(10, 100)
    urgent = [
        {"trace_id": str(traces[i % len(traces)]), "kind": "rating", "rating": 1, "comment": f"wrong {i}"}
        for i in range(2 * n)
    ]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=server.base, headers=server.writer, timeout=30) as client:
        for phase, (status, delay) in enumerate([(503, 0.0), (200, SLOW_S)]):
            webhook.status, webhook.delay = status, delay
            for event in urgent[phase * n : (phase + 1) * n]:
                started = time.monotonic()
                response = client.post("/feedback", json=event)
                latencies.append(time.monotonic() - started)
                statuses[response.status_code] += 1
                assert response.status_code == 201 and response.json()["priority"] == "urgent", response.text
            settled = wait_until_settled(conn, expected=(phase + 1) * n)
    webhook.status, webhook.delay = 200, 0.0
    failed = [r for r in settled if r["status"] == "failed"]
    figures.update(
        requests=2 * n,
        status_201=statuses[201],
        p50_latency_ms=round(1000 * sorted(latencies)[len(latencies) // 2], 1),
        max_latency_ms=round(1000 * max(latencies), 1),
        webhook_delay_ms=1000 * SLOW_S,
        notifications=len(settled),
        failed_recorded=len(failed),
    )
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 2 * n
    assert len(failed) >= n and all("HTTP 503" in r["last_error"] for r in failed)
    assert max(latencies[n:]) < SLOW_S, "a request waited for the slow webhook"
    # the outbox keeps what failed; the next delivery round (the deliver-pending command) sends it
    # (urgent feedback notifications and any other topic the failing webhook left behind)
    outstanding = conn.execute(
        "SELECT count(*) AS n FROM notifications WHERE status <> 'delivered'"
    ).fetchone()
    retried = notify.deliver_pending(conn, server_notify_settings(webhook), limit=10_000)
    figures["redelivered"] = sum(d.status == "delivered" for d in retried)
    assert figures["redelivered"] == outstanding["n"] >= len(failed)
    assert (
        conn.execute("SELECT count(*) AS n FROM notifications WHERE status <> 'delivered'").fetchone()["n"]
        == 0
    )


def server_notify_settings(webhook) -> config.NotifyConfig:
    import os

    os.environ["FL_TEST_RELIABILITY_WEBHOOK"] = webhook.url
    return config.NotifyConfig(
        webhook_url_env="FL_TEST_RELIABILITY_WEBHOOK", timeout_seconds=5, max_attempts=1
    )


def wait_until_settled(conn, expected: int, timeout: float = 60) -> list[dict]:
    """The server delivers after answering; wait until it has recorded an outcome for each notification."""
    deadline = time.monotonic() + timeout
    while True:
        conn.rollback()
        rows = conn.execute(
            "SELECT status, attempts, last_error FROM notifications WHERE topic = 'urgent_feedback' ORDER BY id"
        ).fetchall()
        if len(rows) >= expected and all(r["status"] != "pending" for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(
                f"notifications not settled after {timeout}s: {Counter(r['status'] for r in rows)}"
            )
        time.sleep(0.2)


# ---- (d) a task retried after failing half-way gives the clean run's result -------------------------


class Interrupted(RuntimeError):
    pass


def fail_on(monkeypatch, query_name: str) -> None:
    """Make the task fail when it reaches `query_name`, after the work before it is done."""
    original = queries.sql

    def failing(name: str) -> str:
        if name == query_name:
            raise Interrupted(f"worker lost before {name}")
        return original(name)

    monkeypatch.setattr(queries, "sql", failing)


def test_aggregation_retried_after_failing_half_way_equals_a_clean_run(conn, monkeypatch, figures):
    settings = settings_for("toy", "region")
    register_profiled(conn, settings, "toy", "region", seed=0)
    register_profiled(conn, settings, "toy", "region", seed=1)
    conn.commit()
    Replayer(conn).until(event_stream("toy", [1, 2], hours=2, slice_column="region"), T0 + 2 * HOUR)
    model, start, end = settings.model("toy"), T0 + HOUR, T0 + 2 * HOUR

    with monkeypatch.context() as patch:
        fail_on(patch, "aggregation/delete_stale_rollups")  # after every version's row was upserted
        with pytest.raises(Interrupted):
            aggregation.aggregate_interval(conn, model, settings, start, end)
    assert rollup_values(conn, "toy") == [], "the failed attempt must leave nothing behind"
    aggregation.aggregate_interval(conn, model, settings, start, end)  # the retry
    retried = rollup_values(conn, "toy")
    conn.execute("DELETE FROM feedback_rollups")
    conn.commit()
    aggregation.aggregate_interval(conn, model, settings, start, end)  # a clean run
    clean = rollup_values(conn, "toy")
    figures.update(rollup_rows_retry=len(retried), rollup_rows_clean=len(clean))
    assert len(clean) == 2 and retried == clean


INFERENCE = config.parse(
    """
models:
  - name: toy
    label_column: y
    slice_columns: [region]
    training_data: {path: unused.csv}
""",
    "toy.yaml",
).model("toy")


def scored_rows(conn) -> list[tuple]:
    rows = conn.execute(
        """
        SELECT r.input, r.status, p.output_label, p.confidence, p.slice
        FROM inference_requests r LEFT JOIN predictions p ON p.trace_id = r.trace_id
        ORDER BY r.id
        """
    ).fetchall()
    return [(r["input"]["f0"], r["status"], r["output_label"], r["confidence"], r["slice"]) for r in rows]


def test_inference_round_retried_after_failing_half_way_equals_a_clean_run(conn, monkeypatch, figures):
    version = register_toy(conn)
    registry.promote(conn, "toy", version.version, actor="test")
    conn.commit()
    n = size(200, 2000)
    rng = random.Random(4)
    inputs = [
        ({"f0": rng.uniform(-2, 2), "f1": rng.uniform(-2, 2)}, {"region": f"r{i % 3}"}) for i in range(n)
    ]

    def round_(with_failure: bool) -> list[tuple]:
        conn.execute("TRUNCATE inference_requests, review_items, predictions RESTART IDENTITY CASCADE")
        inference.enqueue_requests(conn, "toy", inputs)
        conn.commit()
        if with_failure:
            with monkeypatch.context() as patch:
                fail_on(patch, "inference/mark_scored")  # predictions written, requests not yet marked
                with pytest.raises(Interrupted):
                    inference.score_batch(conn, INFERENCE, threshold=0.8, batch_size=n)
            assert conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"] == 0
        inference.score_batch(conn, INFERENCE, threshold=0.8, batch_size=n)
        queued = conn.execute("SELECT count(*) AS n FROM review_items").fetchone()["n"]
        return [*scored_rows(conn), ("review_items", queued)]

    retried, clean = round_(with_failure=True), round_(with_failure=False)
    figures.update(requests=n, scored_retry=len(retried) - 1, review_items=retried[-1][1])
    assert all(row[1] == "scored" for row in retried[:-1])
    assert retried == clean
