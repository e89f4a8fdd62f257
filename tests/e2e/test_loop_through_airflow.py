"""The demo's path in short form (one round) against real Airflow processes on the CeleryExecutor:
api-server, scheduler, dag-processor, triggerer and two Celery workers (Redis broker) started by
`feedback_loop.lab.stack`, driven only through HTTP. Retraining runs on the worker that serves the
`training` queue; then that worker is killed with SIGKILL in the middle of a retraining task.

Celery because it is the deployment with the most moving parts (docker-compose.yaml); the LocalExecutor
stack runs in test_review_answers_through_airflow.py and in `make demo`. Both tests share one stack.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from feedback_loop.core import db, queries
from feedback_loop.lab import celery_stack, demo, stack
from feedback_loop.lab.airflow_rest import AirflowClient
from feedback_loop.registry import locks
from feedback_loop.registry import versions as registry

from ..support.processes import sigkill_tree
from ..support.retraining import champion_v1, digits_model, honest_feedback, log_scored, production_rows

pytestmark = pytest.mark.e2e

TRAINING_WORKER = "celery-worker-training"
OTHER_WORKER = "celery-worker"


@pytest.fixture(scope="module")
def celery_airflow(db_url):
    """Celery for every stack this module starts; the stack is stopped and its metadata dropped after."""
    previous = os.environ.get(celery_stack.ENV_EXECUTOR)
    os.environ[celery_stack.ENV_EXECUTOR] = "celery"
    try:
        yield
    finally:
        stack.down(quiet=True, stop_database=False)
        db.drop_database(db_url, stack.metadata_database_name())
        if previous is None:
            os.environ.pop(celery_stack.ENV_EXECUTOR, None)
        else:
            os.environ[celery_stack.ENV_EXECUTOR] = previous


def worker_log(state: stack.StackState, worker: str) -> str:
    return (Path(state.airflow_home) / "logs" / f"{worker}.log").read_text(errors="replace")


def executed_by(state: stack.StackState, run_id: str, task_id: str) -> list[str]:
    """The workers whose log shows them executing that task of that run (one line per attempt)."""
    needle = f"run_id={run_id}/task_id={task_id}/"
    return [
        worker
        for worker in (TRAINING_WORKER, OTHER_WORKER)
        for line in worker_log(state, worker).splitlines()
        if "Executing workload" in line and needle in line
    ]


@pytest.mark.timeout(1500)
def test_one_cycle_of_the_loop_through_celery_workers(celery_airflow, conn, tmp_path):
    settings = demo.DemoSettings(
        requests_per_round=80,
        review_budget=4,
        rounds=1,
        aggregation_every_minutes=1,
        output_dir=tmp_path / "demo-output",
        keep_running=True,  # the killed-worker test below goes on with this stack
    )
    result = demo.run(settings)

    # Reviewers answered the review tasks through PATCH .../hitlDetails; answers became feedback.
    assert result.reviews_answered == 4
    reviewed = conn.execute(
        "SELECT count(*) AS n FROM feedback WHERE source = 'review' AND user_id = 'reviewer'"
    ).fetchone()["n"]
    assert reviewed == 4
    # Users posted feedback through the plugin API; PII in comments was masked before storing.
    api_rows = conn.execute("SELECT count(*) AS n FROM feedback WHERE source = 'api'").fetchone()["n"]
    assert api_rows > 0
    leaked = conn.execute(
        "SELECT count(*) AS n FROM feedback WHERE comment ~ '@example.com|4111 1111|555 0100'"
    ).fetchone()["n"]
    assert leaked == 0
    # The scheduler's aggregation rolled up the interval holding the feedback.
    assert result.rollups >= 1
    # Retraining registered v2 through the gate; the rollback was shown and undone, all audited.
    versions = registry.list_versions(conn, "digits")
    assert len(versions) >= 2
    runs = conn.execute(
        "SELECT status, reason, airflow_run_id FROM training_runs WHERE model_name = 'digits' ORDER BY id"
    ).fetchall()
    (demo_run,) = [r for r in runs if r["reason"] == "demo: feedback arrived"]
    assert demo_run["status"] in ("promoted", "rejected")
    # A retraining the aggregation's alerts triggered ends too; after the demo's own run it may find no
    # feedback newer than the champion's and skip, saying so.
    assert {r["status"] for r in runs} <= {"promoted", "rejected", "skipped"}, runs
    if result.rollback.get("shown"):
        actions = [e.action for e in registry.alias_history(conn, "digits")]
        assert actions[-2:] == ["rollback", "promote"]
    assert all(os.path.isfile(p) for p in result.plots)

    # Every task ran on a Celery worker; retraining only on the one serving the training queue.
    state = stack.read_state()
    assert state is not None and state.executor == "celery"
    assert executed_by(state, demo_run["airflow_run_id"], "retrain") == [TRAINING_WORKER]
    assert "Executing workload" in worker_log(state, OTHER_WORKER)


def pause(client: AirflowClient, dag_id: str) -> None:
    client.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})


def wait_until(what: str, check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


@pytest.mark.timeout(900)
def test_a_training_worker_killed_mid_retraining_is_retried_and_leaves_one_verified_champion(
    celery_airflow, conn, db_url
):
    state = stack.up()  # the stack of the test above, or a fresh one when it runs alone
    admin = AirflowClient(state.api_url, "admin", state.passwords["admin"])
    admin.wait_for_dags(["model_retraining", "feedback_aggregation"], timeout=180)
    # Nothing else may retrain digits while this test holds its lock: no more aggregation alerts.
    pause(admin, "feedback_aggregation")
    admin.unpause("model_retraining")
    wait_until(
        "feedback_aggregation runs in flight end (they may still trigger a retraining)",
        lambda: (
            not admin.request(
                "GET",
                "/api/v2/dags/feedback_aggregation/dagRuns",
                params={"state": ["queued", "running"], "limit": 20},
            )["dag_runs"]
        ),
        timeout=300,
    )
    time.sleep(5)  # the scheduler turns a last alert's asset event into a run
    demo.settle_retraining(admin)
    model = digits_model()
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 200)))
    conn.commit()

    lock_key = {"lock_class": locks.LOCK_CLASS, "model_name": "digits"}
    with db.connect(db_url, autocommit=True) as holder:
        # Holding the model's retraining lock parks the retrain task inside its run (row written, waiting
        # for the lock), so the kill lands mid-task, not before or after it.
        assert holder.execute(queries.sql("retraining/try_lock"), lock_key).fetchone()["ok"]
        run_id = admin.trigger("model_retraining", {"model_name": "digits", "reason": "kill test"})
        wait_until(
            "the retrain task waits for the lock on the training worker",
            lambda: (
                executed_by(state, run_id, "retrain") == [TRAINING_WORKER]
                and conn.execute(
                    "SELECT 1 FROM training_runs WHERE airflow_run_id = %s AND status = 'running'", (run_id,)
                ).fetchone()
            ),
            timeout=240,  # plan_runs, then retrain, each a Celery task: slow on a busy 2-core machine
        )
        conn.commit()
        killed = sigkill_tree(state.pids[TRAINING_WORKER])
        assert len(killed) > 2, "the worker, its pool and the task's processes"
        stack.restart_worker(TRAINING_WORKER)  # as a supervisor (compose: restart) brings it back
        holder.execute(queries.sql("retraining/unlock"), lock_key)

    # Airflow notices the missing heartbeats, fails the attempt and retries it on the training worker.
    assert admin.wait_for_run("model_retraining", run_id, timeout=400) == "success"
    (retrain,) = [t for t in admin.task_instances("model_retraining", run_id) if t["task_id"] == "retrain"]
    assert (retrain["state"], retrain["try_number"], retrain["queue"]) == ("success", 2, "training")
    assert executed_by(state, run_id, "retrain") == [TRAINING_WORKER, TRAINING_WORKER]

    attempts = conn.execute(
        "SELECT status FROM training_runs WHERE airflow_run_id = %s ORDER BY id", (run_id,)
    ).fetchall()
    assert [a["status"] for a in attempts] == ["failed", "promoted"], attempts
    champions = conn.execute(
        "SELECT version FROM model_aliases WHERE model_name = 'digits' AND alias = 'champion'"
    ).fetchall()
    assert len(champions) == 1
    _, serving = registry.load(conn, "digits")  # verifies the artifact's sha256
    assert serving.version == champions[0]["version"] == 2
    assert serving.sha256 == registry.sha256_file(serving.artifact_path)
