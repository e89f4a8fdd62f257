"""What must hold when things go wrong or happen at once: serialised runs, a crash between registering
and promoting, rollback, approval, eval-case idempotency and the conflict rule on real rows."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.core import db, store
from feedback_loop.core.errors import ConflictError
from feedback_loop.registry import locks
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import eval_cases, pipeline, planning, run_records, training_data

from ..support.retraining import (
    add_feedback,
    champion_v1,
    digits_model,
    honest_feedback,
    log_scored,
    production_rows,
    runs,
)

pytestmark = pytest.mark.integration


def params(model, **overrides):
    return planning.resolve_params(model, triggered_by="test", **overrides)


@pytest.fixture
def with_feedback(conn):
    model = digits_model()
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 200)))
    return model


def test_a_run_waits_for_the_lock_held_by_another_run(conn, db_url, with_feedback):
    model = with_feedback
    outcome: dict = {}

    def second_deployment():
        with db.connect(db_url) as other:
            outcome["result"] = pipeline.run(other, model, params(model), url=db_url)

    with locks.model_lock(model.name, url=db_url):
        worker = threading.Thread(target=second_deployment)
        worker.start()
        deadline = time.monotonic() + 20
        while not runs(conn) and time.monotonic() < deadline:
            time.sleep(0.1)
            conn.commit()
        time.sleep(2)
        conn.commit()
        (waiting,) = runs(conn)
        assert waiting["status"] == "running" and waiting["data_snapshot"] == {}, "it must not start working"
        assert worker.is_alive()
    worker.join(timeout=120)
    assert outcome["result"].status == "promoted"


def test_two_concurrent_runs_are_serialised(conn, db_url, with_feedback):
    model = with_feedback
    outcomes: list = []
    errors: list = []
    barrier = threading.Barrier(2)

    def one_run(tag: str):
        try:
            with db.connect(db_url) as own:
                barrier.wait()
                outcomes.append(pipeline.run(own, model, params(model, reason=tag), url=db_url))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one_run, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert errors == []
    # The second run saw the first one's result: it found v2 trained on exactly its data and registered
    # nothing. Interleaved runs would both have gated against v1 and the second promotion would have
    # conflicted (or, before the check for new data, registered a twin).
    assert sorted((o.champion_version, o.candidate_version or 0, o.status) for o in outcomes) == [
        (1, 2, "promoted"),
        (2, 0, "skipped"),
    ]
    skipped = next(o for o in outcomes if o.status == "skipped")
    assert "no new training data since the champion v2" in skipped.decision
    by_status = {r["status"]: r for r in runs(conn)}
    assert by_status["promoted"]["finished_at"] <= by_status["skipped"]["finished_at"]
    assert [v.version for v in registry.list_versions(conn, "digits")] == [1, 2]
    assert [e.version for e in registry.alias_history(conn, "digits")] == [1, 2]


CRASH = textwrap.dedent(
    """
    import os
    from feedback_loop.core import config, db
    from feedback_loop.retrain import pipeline, planning, run_records
    from feedback_loop.registry import locks
    model = config.load().model("digits")
    with db.connect() as conn:
        p = planning.resolve_params(model, triggered_by="crash-test")
        run_id = run_records.start_run(conn, p)
        with locks.model_lock(model.name):
            data = pipeline.pull(conn, model, p)
            trained = pipeline.train_candidate(model, data)
            result = pipeline.evaluate_and_gate(conn, model, data, trained)
            pipeline.register_candidate(conn, model, run_id, trained, data, result, created_by="crash-test")
            assert result.verdict.passed
            os._exit(9)  # the worker dies between registering and promoting: no cleanup at all
    """
)


def test_a_crash_between_registering_and_promoting_leaves_the_old_champion_serving(
    conn, db_url, with_feedback
):
    model = with_feedback
    crashed = subprocess.run([sys.executable, "-c", CRASH], capture_output=True, text=True, timeout=180)
    assert crashed.returncode == 9, crashed.stderr[-2000:]

    estimator, serving = registry.load(conn, "digits")
    assert serving.version == 1, "the old champion still serves and loads"
    assert registry.get_version(conn, "digits", 2).status == "registered"
    (crashed_run,) = runs(conn)
    assert (crashed_run["status"], crashed_run["candidate_version"]) == ("running", 2)
    # the dead worker's connection took the lock with it; the DAG's teardown closes the run
    with locks.model_lock(model.name, url=db_url, timeout_s=5):
        pass
    assert run_records.finish_run(conn, crashed_run["id"]) == "failed"
    closed = run_records.get_run(conn, crashed_run["id"])
    assert "before promoting" in closed["decision"] and "unchanged (v1)" in closed["decision"]
    # and the next run starts afresh
    again = pipeline.run(conn, model, params(model), url=db_url)
    assert (again.status, again.champion_version, again.candidate_version) == ("promoted", 1, 3)


def test_rollback_restores_the_earlier_version_and_its_artifact_checksum(conn, with_feedback):
    model = with_feedback
    v1 = registry.get_version(conn, "digits", 1)
    v1_estimator = registry.load_artifact(v1)
    assert pipeline.run(conn, model, params(model)).status == "promoted"

    event = registry.rollback(conn, "digits", actor="test", reason="v2 misbehaves in production")

    assert (event.action, event.version, event.previous_version) == ("rollback", 1, 2)
    estimator, entry = registry.load(conn, "digits")
    assert entry.version == 1 and registry.sha256_file(entry.artifact_path) == v1.sha256
    rows = production_rows(model, 50)[entry.feature_columns]
    assert (estimator.predict(rows) == v1_estimator.predict(rows)).all()
    assert registry.alias_history(conn, "digits")[-1].reason == "v2 misbehaves in production"


def test_approval_required_waits_then_promotes_only_when_approved(conn, db_url):
    model = digits_model(require_approval=True)
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 300)))

    waiting = pipeline.run(conn, model, params(model), url=db_url)
    assert waiting.status == "awaiting_approval" and "| check |" in waiting.table
    assert registry.champion(conn, "digits").version == 1
    event = pipeline.approve(conn, waiting.run_id, actor="airflow:lead", url=db_url)
    assert event.version == 2 and event.actor == "airflow:lead"
    assert run_records.get_run(conn, waiting.run_id)["status"] == "promoted"

    honest_feedback(conn, log_scored(conn, model, production_rows(model, 100, offset=300)))  # something new
    declined = pipeline.run(conn, model, params(model), url=db_url)
    pipeline.reject(conn, declined.run_id, actor="airflow:lead")
    assert registry.get_version(conn, "digits", 3).status == "rejected"
    assert run_records.get_run(conn, declined.run_id)["status"] == "rejected"
    assert registry.champion(conn, "digits").version == 2


def test_approval_after_the_champion_moved_is_refused(conn, db_url):
    model = digits_model(require_approval=True)
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 300)))
    waiting = pipeline.run(conn, model, params(model), url=db_url)
    champion_v1(conn, model)  # someone registers and promotes v3 while the approver thinks
    with pytest.raises(ConflictError, match="moved it meanwhile"):
        pipeline.approve(conn, waiting.run_id, actor="airflow:lead", url=db_url)
    assert registry.champion(conn, "digits").version == 3
    assert run_records.get_run(conn, waiting.run_id)["status"] == "failed"


def _prediction(conn, label: str) -> uuid.UUID:
    trace = uuid.uuid4()
    store.log_predictions(
        conn,
        [
            store.Prediction(
                trace_id=trace,
                model_name="digits",
                model_version=1,
                input={f"pixel_{i}": 0.0 for i in range(64)},
                output_label=label,
                confidence=0.6,
                slice={"writer_group": "a"},
            )
        ],
    )
    return trace


def test_pull_applies_the_conflict_rule_window_and_counts_what_it_dropped(conn):
    model = digits_model()
    champion_v1(conn, model)
    reviewed, confirmed, conflict, negative, old = (_prediction(conn, "7") for _ in range(5))
    add_feedback(
        conn,
        [
            (reviewed, "thumbs_up", None, None, "api", "user"),
            (reviewed, "correction", None, "1", "review", "r1"),
            (reviewed, "correction", None, "1", "review", "r2"),
            (reviewed, "thumbs_up", None, "7", "review", "r3"),
            (confirmed, "rating", 5, None, "api", "u"),
            (conflict, "thumbs_up", None, None, "api", "a"),
            (conflict, "thumbs_down", None, None, "api", "b"),
            (negative, "thumbs_down", None, None, "api", "c"),
            (old, "rating", 5, None, "api", "d"),
        ],
    )
    conn.execute("UPDATE feedback SET created_at = now() - interval '30 days' WHERE trace_id = %s", (old,))
    conn.commit()
    now = datetime.now(UTC) + timedelta(seconds=1)

    data = training_data.build(
        conn, model, start=now - timedelta(days=7), end=now, min_rating=4, include_corrections=True
    )

    fb = data.snapshot["feedback"]
    assert (fb["traces_with_feedback"], fb["rows"], fb["corrected"], fb["confirmed"]) == (4, 2, 1, 1)
    assert (fb["dropped_conflict"], fb["dropped_negative_without_label"], fb["disputes_resolved"]) == (
        1,
        1,
        1,
    )
    labels = dict(
        zip(data.feedback.frame[training_data.TRACE_COLUMN], data.feedback.frame["label"], strict=True)
    )
    assert labels == {str(reviewed): "1", str(confirmed): "7"}
    assert data.snapshot["rows"] == data.snapshot["base"]["rows"] + 2
    assert data.train["pixel_0"].dtype.kind == "f" and data.train["writer_group"].isin(["a", "b", "c"]).all()
    (case,) = data.feedback.corrected
    newest_r = conn.execute(
        "SELECT max(id) AS id FROM feedback WHERE trace_id = %s AND label = '1'", (reviewed,)
    ).fetchone()["id"]
    assert case == {
        "trace_id": str(reviewed),
        "expected_label": "1",
        "wrong_label": "7",
        "feedback_id": newest_r,
        "corroborated": True,  # r1 and r2 agree: a must-pass case
    }

    no_corrections = training_data.build(
        conn, model, start=now - timedelta(days=7), end=now, min_rating=4, include_corrections=False
    )
    assert no_corrections.snapshot["feedback"]["corrected"] == 0


def test_eval_cases_from_failures_are_idempotent_and_follow_the_resolved_label(conn):
    model = digits_model()
    champion_v1(conn, model)
    trace = _prediction(conn, "7")
    add_feedback(conn, [(trace, "correction", None, "1", "api", "u1")])
    now = datetime.now(UTC) + timedelta(seconds=1)

    def promote():
        data = training_data.build(
            conn, model, start=now - timedelta(days=1), end=now, min_rating=4, include_corrections=True
        )
        return eval_cases.promote_failures(conn, "digits", data.feedback.corrected)

    assert promote() == {"inserted": 1, "updated": 0, "unchanged": 0}
    assert promote() == {"inserted": 0, "updated": 0, "unchanged": 1}
    (case,) = eval_cases.load(conn, "digits")
    # One person's correction is watched, not must-pass: it could be a slip.
    assert (case["expected_label"], case["wrong_label"], case["must_pass"]) == ("1", "7", False)
    first_feedback = conn.execute("SELECT id FROM feedback WHERE trace_id = %s", (trace,)).fetchone()["id"]
    assert case["feedback_id"] == first_feedback and case["input"]["pixel_0"] == 0.0

    add_feedback(conn, [(trace, "correction", None, "2", "review", "r1")])  # a reviewer overrules the user
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert promote() == {"inserted": 0, "updated": 1, "unchanged": 0}
    (case,) = eval_cases.load(conn, "digits")
    assert case["expected_label"] == "2" and case["feedback_id"] != first_feedback
    assert case["must_pass"] is False

    add_feedback(conn, [(trace, "correction", None, "2", "review", "r2")])  # a second reviewer agrees
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert promote() == {"inserted": 0, "updated": 1, "unchanged": 0}
    (case,) = eval_cases.load(conn, "digits")
    assert (case["expected_label"], case["must_pass"]) == ("2", True)


def test_approving_a_candidate_whose_artifact_was_tampered_with_is_refused(conn, db_url):
    from feedback_loop.core.errors import IntegrityError

    from ..support.artifacts import flip_byte

    model = digits_model(require_approval=True)
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 300)))
    waiting = pipeline.run(conn, model, params(model), url=db_url)
    flip_byte(registry.get_version(conn, "digits", 2).artifact_path)  # while the approver thinks
    with pytest.raises(IntegrityError, match="digits v2: artifact checksum mismatch"):
        pipeline.approve(conn, waiting.run_id, actor="airflow:lead", url=db_url)
    assert registry.champion(conn, "digits").version == 1
    run = run_records.get_run(conn, waiting.run_id)
    assert run["status"] == "failed" and "checksum mismatch" in run["decision"], run
