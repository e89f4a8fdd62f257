"""Run model_rollback through Airflow's real dag.test() against the real feedback database."""

from __future__ import annotations

import pytest

from feedback_loop.registry import versions as registry

from ..support.helpers import register_toy

pytestmark = pytest.mark.dags


@pytest.fixture
def three_promotions(conn):
    for _ in range(3):
        register_toy(conn, model_name="digits")
    for version in (1, 2, 3):
        registry.promote(conn, "digits", version, actor="test")
    conn.commit()


def run(dagbag, **params):
    dag = dagbag.dags["model_rollback"]
    return dag.test(run_conf=params)


def test_rollback_dag_restores_previous_champion_in_the_audit_trail(
    airflow_db, dagbag, conn, three_promotions
):
    dag_run = run(dagbag, model_name="digits", reason="v3 hurts the 7s")
    assert dag_run.state == "success"
    history = registry.alias_history(conn, "digits")
    assert (history[-1].action, history[-1].version, history[-1].previous_version) == ("rollback", 2, 3)
    assert history[-1].reason == "v3 hurts the 7s"
    assert history[-1].actor.startswith("airflow")
    estimator, entry = registry.load(conn, "digits")
    assert entry.version == 2


def test_rollback_dag_to_explicit_version(airflow_db, dagbag, conn, three_promotions):
    dag_run = run(dagbag, model_name="digits", target_version=1, reason="back to the baseline")
    assert dag_run.state == "success"
    assert registry.champion(conn, "digits").version == 1


def test_rollback_dag_fails_cleanly_without_an_earlier_version(airflow_db, dagbag, conn):
    register_toy(conn, model_name="digits")
    registry.promote(conn, "digits", 1, actor="test")
    conn.commit()
    dag_run = run(dagbag, model_name="digits", reason="nothing to go back to")
    assert dag_run.state == "failed"
    assert registry.champion(conn, "digits").version == 1
    assert len(registry.alias_history(conn, "digits")) == 1


def test_a_task_without_a_configured_database_fails_with_one_line_saying_what_to_set(
    airflow_db, dagbag, conn, three_promotions, monkeypatch, capsys
):
    """Inside Airflow the database is explicit: no feedback_db connection and no FEEDBACK_LOOP_DB_URL is a
    one-line failure, never a fallback to 127.0.0.1 or a throwaway server on the worker."""
    from feedback_loop.core import db

    monkeypatch.delenv(db.ENV_URL)
    monkeypatch.delenv("AIRFLOW_CONN_FEEDBACK_DB")
    monkeypatch.setattr(db, "server_answers", lambda *_a, **_k: pytest.fail("probed 127.0.0.1:5432"))
    monkeypatch.setattr(db, "start_embedded", lambda: pytest.fail("started a throwaway server"))
    db.reset_resolution()
    try:
        dag_run = run(dagbag, model_name="digits", reason="no database configured")
    finally:
        db.reset_resolution()
    assert dag_run.state == "failed"
    logged = capsys.readouterr()
    lines = [
        line for line in (logged.out + logged.err).splitlines() if "no feedback database configured" in line
    ]
    assert lines, "the task log does not say what to configure"
    assert "feedback_db" in lines[0] and "FEEDBACK_LOOP_DB_URL" in lines[0]
    assert registry.champion(conn, "digits").version == 3  # nothing moved


def test_rollback_dag_refuses_a_tampered_target_and_leaves_the_champion(
    airflow_db, dagbag, conn, three_promotions, capsys
):
    from ..support.artifacts import flip_byte

    flip_byte(registry.get_version(conn, "digits", 2).artifact_path)
    # The target is explicit: dag.test() of the session's DAG keeps params of earlier runs in this file.
    dag_run = run(dagbag, model_name="digits", target_version=2, reason="v3 hurts the 7s")
    assert dag_run.state == "failed"
    logged = capsys.readouterr()
    assert "digits v2: artifact checksum mismatch" in logged.out + logged.err
    assert registry.current_version(conn, "digits") == 3
    assert len(registry.alias_history(conn, "digits")) == 3
