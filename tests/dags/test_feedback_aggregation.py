"""Run feedback_aggregation through Airflow's real dag.test() against the real feedback database."""

from __future__ import annotations

import pytest

from feedback_loop.core import config
from feedback_loop.monitoring import aggregation
from feedback_loop.registry import versions as registry

from ..support.aggregation import (
    HOUR,
    T0,
    Replayer,
    event_stream,
    register_profiled,
    rollup_values,
    settings_for,
)

pytestmark = pytest.mark.dags

MODEL = "digits"  # the model of the bundled config the DAG maps over
SLICE = "writer_group"


@pytest.fixture
def digits_with_drifted_hour(conn):
    """digits v1 with a reference profile; hour T0 normal, hour T0+1h with feature f1 shifted."""
    register_profiled(conn, settings_for(MODEL, SLICE), MODEL, SLICE)
    conn.commit()
    estimator, _ = registry.load(conn, MODEL, 1)
    calm = event_stream(
        MODEL, [1], hours=1, slice_column=SLICE, per_hour=300, estimator=estimator, happy=True
    )
    drifted = event_stream(
        MODEL,
        [1],
        hours=1,
        slice_column=SLICE,
        per_hour=300,
        estimator=estimator,
        shift={"f1": 1.5},
        seed=7,
        start=T0 + HOUR,
        happy=True,
    )
    events = sorted([*calm, *drifted], key=lambda e: (e.at, e.kind, str(e.data.get("trace_id"))))
    Replayer(conn).until(events, T0 + 2 * HOUR)


def retraining_events() -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == "feedback_loop://retraining_needed")
            .order_by(AssetEvent.id)
        ).all()
        return [dict(r.extra) for r in rows]


def run_interval(dagbag, start):
    """A run whose data interval is [start, start + 1h). dag.test() creates a manual run, and a manual
    run covers the last complete interval before its logical date, hence start + 1h."""
    dag = dagbag.dags["feedback_aggregation"]
    return dag.test(logical_date=start + HOUR)


def test_dag_rolls_up_its_data_interval_and_reruns_identically(
    airflow_db, dagbag, conn, digits_with_drifted_hour
):
    settings = config.load()
    first = run_interval(dagbag, T0)
    assert first.state == "success"
    assert (first.data_interval_start, first.data_interval_end) == (T0, T0 + HOUR)
    via_dag = rollup_values(conn, MODEL)
    assert len(via_dag) == 1
    assert [t.state for t in first.get_task_instances() if t.task_id == "check_alerts"] == ["skipped"]

    for _ in range(2):
        assert run_interval(dagbag, T0).state == "success"
        assert rollup_values(conn, MODEL) == via_dag

    conn.execute("DELETE FROM feedback_rollups")
    conn.commit()
    aggregation.aggregate_interval(conn, settings.model(MODEL), settings, T0, T0 + HOUR)
    assert rollup_values(conn, MODEL) == via_dag


def test_injected_drift_emits_retraining_needed_with_the_reason(
    airflow_db, dagbag, conn, digits_with_drifted_hour
):
    before = len(retraining_events())
    dag_run = run_interval(dagbag, T0 + HOUR)
    assert dag_run.state == "success"
    (rollup,) = aggregation.read_rollups(conn, MODEL, T0 + HOUR, T0 + 2 * HOUR)
    assert rollup["drift"]["features"]["f1"]["psi"] > config.load().alerts.psi

    events = retraining_events()[before:]
    assert len(events) == 1
    extra = events[0]
    assert extra["model_name"] == MODEL
    assert extra["interval_start"] == (T0 + HOUR).isoformat()
    assert "'f1' drifted" in extra["reason"]
    assert [a["metric"] for a in extra["alerts"] if a["kind"] == "drift"] == ["drift.f1.psi"]
    notified = conn.execute("SELECT topic FROM notifications").fetchall()
    assert [n["topic"] for n in notified] == [
        f"retraining_needed:{MODEL}:{extra['interval_start']}/{extra['interval_end']}"
    ]

    # The same interval aggregated again (a manual rerun, a backfill over it): no second page, no second
    # retraining trigger.
    again = run_interval(dagbag, T0 + HOUR)
    assert again.state == "success"
    assert [t.state for t in again.get_task_instances() if t.task_id == "check_alerts"] == ["skipped"]
    assert len(retraining_events()) == before + 1
    assert conn.execute("SELECT count(*) AS n FROM notifications").fetchone()["n"] == 1


def test_a_manual_run_without_a_logical_date_rolls_up_the_last_complete_interval(
    airflow_db, dagbag, conn, digits_with_drifted_hour
):
    """The REST API's default trigger has no logical date: the run stands for the time it was queued."""
    from datetime import UTC, datetime

    from feedback_loop.core import schedules

    run = dagbag.dags["feedback_aggregation"].test(logical_date=None)
    assert run.state == "success", "a manual run without a logical date must not fail"
    (planned,) = [
        ti.xcom_pull(task_ids="plan_intervals")
        for ti in run.get_task_instances()
        if ti.task_id == "plan_intervals"
    ]
    assert run.logical_date is None
    start, end = schedules.last_complete_interval(
        "@hourly", datetime.fromtimestamp(run.run_after.timestamp(), UTC)
    )
    assert planned == [{"model_name": MODEL, "start": start.isoformat(), "end": end.isoformat()}]


def test_a_scheduled_run_rolls_up_the_interval_that_just_ended(
    airflow_db, dagbag, conn, digits_with_drifted_hour, scheduled_runs
):
    """The shipped config's hourly schedule: the run the scheduler creates when it fires at T0 + 1h (its
    logical date is T0, the start of its data interval) rolls up [T0, T0 + 1h), not the hour before."""
    run = dagbag.dags["feedback_aggregation"].test(run_after=T0 + HOUR)
    assert run.run_type == "scheduled" and run.logical_date == T0
    assert run.state == "success"
    (rolled,) = [ti.xcom_pull(task_ids="roll_up", map_indexes=0) for ti in run.get_task_instances()][:1]
    assert (rolled["start"], rolled["end"]) == (T0.isoformat(), (T0 + HOUR).isoformat())
    assert rolled["versions"] == [1]
    assert len(rollup_values(conn, MODEL)) == 1
