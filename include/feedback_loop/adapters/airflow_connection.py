"""Airflow adapter: the `feedback_db` connection, read through Airflow's PostgresHook.

Only consulted when FEEDBACK_LOOP_DB_URL is not set, so plain CLI use never pays Airflow's import cost
unless an Airflow connection for the feedback database is actually configured.
"""

from __future__ import annotations

import os

CONN_ID = "feedback_db"


def _inside_airflow_task() -> bool:
    return "AIRFLOW_CTX_DAG_ID" in os.environ or "AIRFLOW__CORE__EXECUTOR" in os.environ


def feedback_db_url() -> str | None:
    """The URL of the `feedback_db` connection, or None when Airflow does not define one."""
    if f"AIRFLOW_CONN_{CONN_ID.upper()}" not in os.environ and not _inside_airflow_task():
        return None
    try:
        from airflow.providers.postgres.hooks.postgres import PostgresHook
    except ImportError:
        return None
    try:
        return PostgresHook(postgres_conn_id=CONN_ID).get_uri()
    except Exception:  # noqa: BLE001 - a missing connection means "not configured here"
        return None
