"""Airflow adapter: what every DAG file shares (default args, assets, Params built from the config).

DAG files import this at parse time, so it stays light: no pandas, no scikit-learn, no database.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Param

from feedback_loop.adapters import airflow_connection
from feedback_loop.core import config

# Tasks of our DAGs read the feedback database from the `feedback_db` connection (or FEEDBACK_LOOP_DB_URL).
airflow_connection.install()

OWNER = "feedback-loop"
TAGS = ["feedback-loop"]

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
}

PREDICTIONS = Asset("feedback_loop://predictions")
FEEDBACK = Asset("feedback_loop://feedback")
ROLLUPS = Asset("feedback_loop://rollups")
RETRAINING_NEEDED = Asset("feedback_loop://retraining_needed")
CHAMPION = Asset("feedback_loop://champion")


def model_names() -> list[str]:
    """Configured model names; a broken config fails DAG parsing with the file, key and reason."""
    return [m.name for m in config.load().models]


def required_reason_param(description: str) -> Param:
    """The reason an on-call action is audited with: required, and more than blanks."""
    return Param(
        "",
        type="string",
        minLength=3,
        maxLength=500,
        pattern=r"\S",
        title="Reason",
        description=description,
    )


def model_param(description: str) -> Param:
    names = model_names()
    return Param(
        names[0],
        type="string",
        enum=names,
        title="Model",
        description=description,
    )


def actor_from_context(context: dict[str, Any]) -> str:
    """Who triggered the run, for audit trails: the Airflow user, else the run id."""
    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None) if dag_run is not None else None
    run_id = getattr(dag_run, "run_id", "unknown-run")
    return f"airflow:{user}" if user else f"airflow-run:{run_id}"
