"""Run eval_case_review through Airflow's real dag.test() against the real feedback database."""

from __future__ import annotations

import pytest

from feedback_loop.registry import versions as registry
from feedback_loop.retrain import eval_cases

from ..support.helpers import make_predictions, register_toy

pytestmark = pytest.mark.dags


@pytest.fixture
def two_cases(conn) -> list[int]:
    """Two must-pass eval cases of 'digits' (predicted 'a', the corrections said 'b')."""
    register_toy(conn, model_name="digits")
    registry.promote(conn, "digits", 1, actor="test")
    traces = make_predictions(conn, "digits", 1, 2)
    conn.commit()
    failures = [
        {"trace_id": t, "expected_label": "b", "wrong_label": "a", "feedback_id": None} for t in traces
    ]
    assert eval_cases.promote_failures(conn, "digits", failures)["inserted"] == 2
    return [c["id"] for c in eval_cases.load(conn, "digits")]


def run(dagbag, **params):
    return dagbag.dags["eval_case_review"].test(run_conf=params)


def test_demote_then_restore_from_the_trigger_form(airflow_db, dagbag, conn, two_cases):
    first, second = two_cases
    dag_run = run(dagbag, model_name="digits", case_ids=[first], action="demote", reason="reviewer slip")
    assert dag_run.state == "success"
    states = {c["id"]: c["must_pass"] for c in eval_cases.load(conn, "digits")}
    assert states == {first: False, second: True}
    (listed,) = eval_cases.list_cases(conn, "digits", [first])
    assert listed["change_reason"] == "reviewer slip" and listed["changed_by"].startswith("airflow")

    dag_run = run(dagbag, model_name="digits", case_ids=[first], action="restore", reason="it was right")
    assert dag_run.state == "success"
    assert all(c["must_pass"] for c in eval_cases.load(conn, "digits"))


def test_an_id_of_another_model_fails_the_run_and_changes_nothing(airflow_db, dagbag, conn, two_cases):
    dag_run = run(
        dagbag, model_name="digits", case_ids=[two_cases[0], 424242], action="demote", reason="typo"
    )
    assert dag_run.state == "failed"
    assert all(c["must_pass"] for c in eval_cases.load(conn, "digits"))
    assert conn.execute("SELECT count(*) AS n FROM eval_case_events").fetchone()["n"] == 0
