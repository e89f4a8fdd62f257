"""Airflow adapter for the registry DAGs: when model_retraining and model_rollback run by themselves, and
who answered an approval. Light at import (DAG parse time): no pandas, no scikit-learn, no database.
"""

from __future__ import annotations

from typing import Any

from feedback_loop.core import dag_config


def schedule() -> Any:
    """Every model's `schedules.retraining` (UTC) OR the retraining_needed asset, whichever comes first."""
    from airflow.sdk import AssetOrTimeSchedule

    from feedback_loop.adapters.airflow_dags import RETRAINING_NEEDED, models_schedule

    timetable = models_schedule("retraining")
    if timetable is None:
        return [RETRAINING_NEEDED]
    return AssetOrTimeSchedule(timetable=timetable, assets=[RETRAINING_NEEDED])


def responder(result: Any) -> str:
    """Who answered an approval task, for the audit trail."""
    user = (result or {}).get("responded_by_user") if isinstance(result, dict) else None
    if isinstance(user, dict):
        name = user.get("name") or user.get("id")
    else:
        name = user
    return f"airflow:{name}" if name else "airflow:approver"


def auto_rollback_schedule() -> list | None:
    """model_rollback also runs on new rollups, but only when some model enables automatic rollback."""
    from feedback_loop.adapters.airflow_dags import ROLLUPS

    enabled = any(m.auto_rollback_accuracy_drop is not None for m in dag_config.models())
    return [ROLLUPS] if enabled else None
