"""Airflow adapter for the registry DAGs: when model_retraining and model_rollback run by themselves, and
who answered an approval. Light at import (DAG parse time): no pandas, no scikit-learn, no database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from feedback_loop.core import dag_config

# The Celery queue the tasks that train models are sent to (`make up EXECUTOR=celery` and
# docker-compose.yaml set `training`, which one worker serves). Unset: Airflow's default queue, so a
# deployment without a training worker never leaves a retraining queued forever.
ENV_TRAINING_QUEUE = "FEEDBACK_LOOP_TRAINING_QUEUE"


def schedule() -> Any:
    """Every model's `schedules.retraining` (UTC) OR the retraining_needed asset, whichever comes first."""
    from airflow.sdk import AssetOrTimeSchedule

    from feedback_loop.adapters.airflow_dags import RETRAINING_NEEDED, models_schedule

    timetable = models_schedule("retraining")
    if timetable is None:
        return [RETRAINING_NEEDED]
    return AssetOrTimeSchedule(timetable=timetable, assets=[RETRAINING_NEEDED])


def training_queue() -> str:
    """FEEDBACK_LOOP_TRAINING_QUEUE, else Airflow's `[operators] default_queue`; executors without queues
    (LocalExecutor) ignore it."""
    from airflow.sdk import conf

    return os.environ.get(ENV_TRAINING_QUEUE, "").strip() or conf.get("operators", "default_queue")


@contextmanager
def no_retry_on_error() -> Iterator[None]:
    """An exception inside fails the task without its retry: a run that failed is recorded as failed and
    the next trigger starts afresh. The retry is kept for an attempt that never reported back (a worker
    killed mid-run, its host gone), which Airflow fails through the missing heartbeat."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except AirflowFailException:
        raise
    except Exception as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


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
