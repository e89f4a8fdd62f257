"""The `training_runs` record: every retraining attempt writes what each step learned to its row, committed
at once, so a run that dies part-way still explains itself."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from feedback_loop.core import queries
from feedback_loop.core.errors import NotFoundError
from feedback_loop.retrain.planning import RunParams

log = logging.getLogger(__name__)


@contextmanager
def committed(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction that really commits at its end: steps must be durable one by one (a crash after
    registering must leave the registration), so any implicit read transaction is ended first."""
    conn.commit()
    with conn.transaction():
        yield


def start_run(conn: psycopg.Connection, params: RunParams) -> int:
    """Insert the run's row (status running) and commit it, so a crash later still leaves a trace."""
    with committed(conn):
        row = conn.execute(
            queries.sql("retraining/insert_run"),
            {
                "model_name": params.model_name,
                "triggered_by": params.triggered_by,
                "reason": params.reason,
                "params": Jsonb(params.to_dict()),
                "airflow_run_id": params.airflow_run_id,
            },
        ).fetchone()
    log.info("%s: training run #%s started by %s", params.model_name, row["id"], params.triggered_by)
    return int(row["id"])


def record(
    conn: psycopg.Connection,
    run_id: int,
    *,
    status: str | None = None,
    data_snapshot: dict | None = None,
    metrics: dict | None = None,
    champion_version: int | None = None,
    candidate_version: int | None = None,
    gate_verdict: dict | None = None,
    decision: str | None = None,
    finished: bool = False,
) -> dict[str, Any]:
    """Write what a step learned to the run's row, committed at once."""

    def js(value: dict | None) -> Jsonb | None:
        return None if value is None else Jsonb(value)

    with committed(conn):
        row = conn.execute(
            queries.sql("retraining/update_run"),
            {
                "id": run_id,
                "status": status,
                "data_snapshot": js(data_snapshot),
                "metrics": js(metrics),
                "champion_version": champion_version,
                "candidate_version": candidate_version,
                "gate": js(gate_verdict),
                "decision": decision,
                "finished": finished,
            },
        ).fetchone()
    if row is None:
        raise NotFoundError(f"unknown training run #{run_id}")
    return row


def get_run(conn: psycopg.Connection, run_id: int) -> dict[str, Any]:
    row = conn.execute(queries.sql("retraining/get_run"), {"id": run_id}).fetchone()
    if row is None:
        raise NotFoundError(f"unknown training run #{run_id}")
    return row


def recent_runs(conn: psycopg.Connection, model_name: str, limit: int = 10) -> list[dict[str, Any]]:
    """The model's latest training runs, newest first."""
    return conn.execute(
        queries.sql("retraining/recent_runs"), {"model_name": model_name, "limit": limit}
    ).fetchall()


def finish_run(conn: psycopg.Connection, run_id: int) -> str:
    """Close the run: if no step recorded an outcome (a task failed, the process died), mark it failed and
    say how far it got. Returns the final status."""
    run = get_run(conn, run_id)
    if run["status"] == "running":
        if run["candidate_version"] is not None:
            decision = (
                f"stopped after registering v{run['candidate_version']} and before promoting it; "
                f"the champion is unchanged (v{run['champion_version']})"
            )
        else:
            decision = "stopped before registering a candidate; nothing changed (see the task log)"
        with committed(conn):
            conn.execute(queries.sql("retraining/close_unfinished_run"), {"id": run_id, "decision": decision})
        log.warning("%s: training run #%s failed: %s", run["model_name"], run_id, decision)
        return "failed"
    return str(run["status"])


def runs_of_airflow_run(conn: psycopg.Connection, airflow_run_id: str) -> list[dict[str, Any]]:
    return conn.execute(
        queries.sql("retraining/runs_of_airflow_run"), {"airflow_run_id": airflow_run_id}
    ).fetchall()
