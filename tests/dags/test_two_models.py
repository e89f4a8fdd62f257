"""With two models in the config, a scheduled run of each DAG serves both, each on its own schedule.

dag.test() always creates a manual run; `scheduled_runs` (conftest) makes it create the run the scheduler
would, from the DAG's own timetable. Everything after that is Airflow's own code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.core import config
from feedback_loop.inference import scoring
from feedback_loop.registry import versions as registry

from ..support.helpers import register_toy

pytestmark = pytest.mark.dags

CONFIG = """
models:
  - name: alpha
    label_column: y
    training_data: {path: BASE_CSV}
    review_budget: 0
    schedules: {inference: "*/10 * * * *", aggregation: "@hourly", retraining: "0 3 * * *"}
  - name: beta
    label_column: y
    training_data: {path: BASE_CSV}
    review_budget: 0
    schedules: {inference: "*/15 * * * *", aggregation: "0 */3 * * *", retraining: "0 3 * * 1"}
"""
# 2026-11-30 was a Monday: at 03:00 every schedule of both models fires; at 03:10 only alpha's inference.
BOTH_DUE = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
ALPHA_ONLY = datetime(2026, 11, 30, 3, 10, tzinfo=UTC)


@pytest.fixture
def two_models(tmp_path, monkeypatch, conn):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    base = tmp_path / "base.csv"
    pd.DataFrame({"f0": x[:, 0], "f1": x[:, 1], "y": np.where(x[:, 0] > 0, "b", "a")}).to_csv(
        base, index=False
    )
    path = tmp_path / "two_models.yaml"
    path.write_text(CONFIG.replace("BASE_CSV", str(base)))
    monkeypatch.setenv(config.ENV_CONFIG, str(path))
    for name in ("alpha", "beta"):
        register_toy(conn, model_name=name)
        registry.promote(conn, name, 1, actor="test")
    conn.commit()
    return config.load(path)


@pytest.fixture
def two_model_dags(two_models, airflow_db):
    """The DAG files parsed with the two-model config (schedules are read at parse time)."""
    from airflow.dag_processing.dagbag import DagBag

    from ..conftest import ROOT

    return DagBag(dag_folder=str(ROOT / "dags"))


def enqueue(conn, model_name: str, n: int) -> None:
    scoring.enqueue_requests(conn, model_name, [({"f0": 0.5 * i, "f1": 0.0}, {}) for i in range(n)])
    conn.commit()


def scored_models(conn) -> dict[str, int]:
    rows = conn.execute("SELECT model_name, count(*) AS n FROM predictions GROUP BY model_name").fetchall()
    return {r["model_name"]: r["n"] for r in rows}


def test_a_scheduled_inference_run_scores_every_model_due_at_its_time(conn, two_model_dags, scheduled_runs):
    enqueue(conn, "alpha", 4)
    enqueue(conn, "beta", 3)
    dag = two_model_dags.dags["feedback_inference"]
    run = dag.test(run_after=BOTH_DUE)
    assert run.run_type == "scheduled"
    assert run.state == "success"
    assert scored_models(conn) == {"alpha": 4, "beta": 3}

    enqueue(conn, "alpha", 2)
    enqueue(conn, "beta", 2)
    run = dag.test(run_after=ALPHA_ONLY)
    assert run.state == "success"
    assert scored_models(conn) == {"alpha": 6, "beta": 3}, "beta's schedule does not fire at 03:10"


def test_a_scheduled_aggregation_run_rolls_up_each_model_over_its_own_interval(
    conn, two_model_dags, scheduled_runs
):
    run = two_model_dags.dags["feedback_aggregation"].test(run_after=BOTH_DUE)
    assert run.state == "success"
    planned = {
        ti.map_index: ti.xcom_pull(task_ids="roll_up", map_indexes=ti.map_index)
        for ti in run.get_task_instances()
        if ti.task_id == "roll_up"
    }
    intervals = {p["model_name"]: (p["start"], p["end"]) for p in planned.values()}
    end = BOTH_DUE.isoformat()
    assert intervals == {
        "alpha": ((BOTH_DUE - timedelta(hours=1)).isoformat(), end),
        "beta": ((BOTH_DUE - timedelta(hours=3)).isoformat(), end),
    }


def test_a_scheduled_retraining_run_retrains_every_model_due_at_its_time(
    conn, two_model_dags, scheduled_runs
):
    run = two_model_dags.dags["model_retraining"].test(run_after=BOTH_DUE)
    assert run.state == "success"
    rows = conn.execute("SELECT model_name, status, reason, decision FROM training_runs").fetchall()
    assert sorted(r["model_name"] for r in rows) == ["alpha", "beta"]
    assert {r["reason"] for r in rows} == {"scheduled retraining"}
    # No feedback yet: each model's run reads its base data and says there is nothing new to learn.
    assert {r["status"] for r in rows} == {"skipped"}

    conn.execute("TRUNCATE training_runs CASCADE")
    conn.commit()
    tuesday = BOTH_DUE + timedelta(days=1)
    run = two_model_dags.dags["model_retraining"].test(run_after=tuesday)
    assert run.state == "success"
    rows = conn.execute("SELECT model_name FROM training_runs").fetchall()
    assert [r["model_name"] for r in rows] == ["alpha"], "beta retrains on Mondays only"
