"""Run model_retraining through Airflow's real dag.test() against the real feedback database."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from feedback_loop.registry import versions as registry

from ..support.retraining import (
    champion_v1,
    digits_model,
    flipped_feedback,
    honest_feedback,
    log_scored,
    production_rows,
    runs,
)

pytestmark = pytest.mark.dags

# dag.test() runs tasks in-process on the shared DAG object, and a run's conf leaks into the params of the
# next run in the same session; every run therefore passes the whole form.
FORM = {
    "model_name": "digits",
    "min_rating": 4,
    "include_corrections": True,
    "window_start": None,
    "window_end": None,
    "window_days": None,
    "dry_run": False,
    "reason": "",
}


def run(dagbag, **conf):
    return dagbag.dags["model_retraining"].test(run_conf={**FORM, **conf})


def task_states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def champion_events(dag_run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_run_id == dag_run_id).all()
        return [{"uri": e.asset.uri, "extra": e.extra} for e in events]


def test_schedule_asset_and_params_form(dagbag):
    dag = dagbag.dags["model_retraining"]
    assert dag.max_active_runs == 1
    assert "retraining_needed" in repr(dag.timetable) or "retraining_needed" in str(dag.timetable.description)
    assert set(dag.params) == {
        "model_name",
        "min_rating",
        "include_corrections",
        "window_start",
        "window_end",
        "window_days",
        "dry_run",
        "reason",
    }
    assert dag.params["min_rating"] == 4


def test_retrain_goes_to_the_training_queue_and_is_retried_only_when_its_worker_is_lost(dagbag, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from feedback_loop.adapters import airflow_retraining

    retrain = dagbag.dags["model_retraining"].get_task("retrain")
    # Parsed without FEEDBACK_LOOP_TRAINING_QUEUE: Airflow's default queue, which every worker serves.
    assert retrain.queue == "default" and retrain.retries == 1
    monkeypatch.setenv(airflow_retraining.ENV_TRAINING_QUEUE, "training")
    assert airflow_retraining.training_queue() == "training"
    # An error inside the task fails it without the retry (the retry is for a lost worker).
    with pytest.raises(AirflowFailException, match="ValueError: bad window"):
        with airflow_retraining.no_retry_on_error():
            raise ValueError("bad window")


def test_dry_run_reports_what_it_would_train_on_and_changes_nothing(airflow_db, dagbag, conn):
    model = digits_model()
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 60)))
    versions_before = [v.version for v in registry.list_versions(conn, "digits")]

    dag_run = run(dagbag, model_name="digits", dry_run=True, reason="what would we train on?")

    assert dag_run.state == "success", task_states(dag_run)
    assert [v.version for v in registry.list_versions(conn, "digits")] == versions_before
    assert len(registry.alias_history(conn, "digits")) == 1
    assert conn.execute("SELECT count(*) AS n FROM eval_cases").fetchone()["n"] == 0
    (only,) = runs(conn)
    assert only["status"] == "dry_run" and only["candidate_version"] is None
    snapshot = only["data_snapshot"]
    assert snapshot["feedback"]["rows"] == 60
    assert snapshot["rows"] == snapshot["base"]["rows"] + 60
    assert len(snapshot["class_counts"]) == 10 and snapshot["window"]["end"]
    assert "dry run: would train on" in only["decision"] and only["reason"] == "what would we train on?"
    assert only["triggered_by"].startswith("airflow")
    assert task_states(dag_run)["publish_champion"] == "skipped"
    assert not [e for e in champion_events(dag_run.run_id) if e["uri"] == "feedback_loop://champion"]


def test_real_run_registers_promotes_and_emits_the_champion_asset(airflow_db, dagbag, conn):
    model = digits_model()
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 300)))

    dag_run = run(dagbag, model_name="digits", reason="on-call retrain")

    assert dag_run.state == "success", task_states(dag_run)
    v2 = registry.get_version(conn, "digits", 2)
    assert v2.metrics["accuracy"] > 0 and v2.metrics["slices"]["writer_group"]
    assert v2.data_snapshot["feedback"]["rows"] > 0 and v2.data_snapshot["base"]["rows"] > 0
    assert len(v2.data_snapshot["feedback"]["trace_ids_sha256"]) == 64
    assert registry.champion(conn, "digits").version == 2
    assert registry.alias_history(conn, "digits")[-1].reason == "on-call retrain"
    (only,) = runs(conn)
    assert only["status"] == "promoted" and only["finished_at"] is not None
    events = [e for e in champion_events(dag_run.run_id) if e["uri"] == "feedback_loop://champion"]
    assert events and events[0]["extra"]["promoted"][0]["version"] == 2


def test_gate_rejection_in_the_dag_keeps_the_champion(airflow_db, dagbag, conn):
    model = digits_model()
    champion_v1(conn, model)
    flipped_feedback(conn, log_scored(conn, model, production_rows(model, 300)))

    dag_run = run(dagbag, model_name="digits", reason="poisoned feedback")

    assert dag_run.state == "success", task_states(dag_run)
    assert registry.champion(conn, "digits").version == 1
    assert registry.get_version(conn, "digits", 2).status == "rejected"
    (only,) = runs(conn)
    assert only["status"] == "rejected" and "holdout accuracy" in only["decision"]
    assert task_states(dag_run)["publish_champion"] == "skipped"


def test_bad_window_fails_the_run_naming_the_field_and_stores_nothing(airflow_db, dagbag, conn):
    model = digits_model()
    champion_v1(conn, model)
    dag_run = run(
        dagbag, model_name="digits", window_start="2026-02-01T00:00:00Z", window_end="2026-01-01T00:00:00Z"
    )
    assert dag_run.state == "failed"
    assert task_states(dag_run)["plan_runs"] == "failed"
    assert runs(conn) == []


class Approver(threading.Thread):
    """Answers the approval task through Airflow's real REST API (in-process), as a human would."""

    def __init__(self, option: str, user: str = "lead"):
        super().__init__(daemon=True)
        self.option, self.user = option, user
        self.detail: dict | None = None
        self.status: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            from airflow.api_fastapi.app import create_app, get_auth_manager
            from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
            from fastapi.testclient import TestClient

            client = TestClient(create_app(apps="core"))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and self.detail is None:
                response = client.get(
                    "/api/v2/dags/model_retraining/dagRuns/~/hitlDetails",
                    params={"response_received": "false", "state": ["deferred", "awaiting_input"]},
                )
                found = response.json()["hitl_details"]
                self.detail = found[0] if found else None
                time.sleep(0.2)
            ti = self.detail["task_instance"]
            token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=self.user, role="admin"))
            response = client.patch(
                f"/api/v2/dags/model_retraining/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
                f"{ti['task_id']}/{ti['map_index']}/hitlDetails",
                json={"chosen_options": [self.option], "params_input": {}},
                headers={"Authorization": f"Bearer {token}"},
            )
            self.status = response.status_code
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


@pytest.fixture
def approval_config(tmp_path, monkeypatch):
    from feedback_loop.core import config

    text = Path(config.default_path()).read_text(encoding="utf-8")
    assert "require_approval: false" in text
    path = tmp_path / "approval.yaml"
    path.write_text(text.replace("require_approval: false", "require_approval: true"), encoding="utf-8")
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(path))
    return digits_model(require_approval=True)


@pytest.mark.parametrize("option", ["Approve", "Reject"])
def test_with_required_approval_only_approval_promotes(airflow_db, dagbag, conn, approval_config, option):
    model = approval_config
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 300)))
    approver = Approver(option)
    approver.start()

    dag_run = run(dagbag, reason="needs sign-off")
    approver.join(timeout=30)

    assert approver.error is None and approver.status == 200
    assert (
        "| holdout accuracy |" in approver.detail["body"] and "v2 vs champion v1" in approver.detail["body"]
    )
    assert dag_run.state == "success", task_states(dag_run)
    (only,) = runs(conn)
    if option == "Approve":
        assert registry.champion(conn, "digits").version == 2
        assert registry.alias_history(conn, "digits")[-1].actor == "airflow:lead"
        assert only["status"] == "promoted"
        assert [e for e in champion_events(dag_run.run_id) if e["uri"] == "feedback_loop://champion"]
    else:
        assert registry.champion(conn, "digits").version == 1
        assert registry.get_version(conn, "digits", 2).status == "rejected"
        assert only["status"] == "rejected" and "not approved" in only["decision"]
        assert task_states(dag_run)["promote_approved"] == "skipped"


def test_a_failing_retrain_fails_the_dag_run_and_records_the_run_as_failed(
    airflow_db, dagbag, conn, tmp_path, monkeypatch
):
    from feedback_loop.core import config

    model = digits_model()
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 60)))
    text = Path(config.default_path()).read_text(encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        text.replace("feedback_loop.retrain.training:default_pipeline", "no_such_package.models:pipeline"),
        encoding="utf-8",
    )
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(broken))

    dag_run = run(dagbag, reason="estimator import path is wrong")

    states = task_states(dag_run)
    assert dag_run.state == "failed", states
    assert states["retrain"] == "failed" and states["close_runs"] == "success"
    (only,) = runs(conn)
    assert only["status"] == "failed" and only["finished_at"] is not None
    assert "stopped before registering" in only["decision"]
    assert [v.version for v in registry.list_versions(conn, "digits")] == [1]


def test_model_rollback_listens_to_rollups_only_when_a_model_enables_auto_rollback(
    tmp_path, monkeypatch, dagbag
):
    from feedback_loop.adapters import airflow_retraining
    from feedback_loop.adapters.airflow_dags import ROLLUPS
    from feedback_loop.core import config

    assert airflow_retraining.auto_rollback_schedule() is None
    assert type(dagbag.dags["model_rollback"].timetable).__name__ == "NullTimetable"
    assert dagbag.dags["model_rollback"].task_dict["route"].downstream_task_ids == {
        "roll_back_champion",
        "check_recent_promotions",
    }
    text = Path(config.default_path()).read_text(encoding="utf-8")
    enabled = tmp_path / "auto.yaml"
    enabled.write_text(
        text.replace("auto_rollback_accuracy_drop: null", "auto_rollback_accuracy_drop: 0.1"),
        encoding="utf-8",
    )
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(enabled))
    assert airflow_retraining.auto_rollback_schedule() == [ROLLUPS]
