"""Airflow adapter: what every DAG file shares (default args, assets, Params built from the config).

DAG files import this at parse time, so it stays light: no pandas, no scikit-learn, no database, and no
pydantic: the config keys the DAG structure needs come from `core.dag_config` (a cached digest of the
validated file).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, Param

from feedback_loop.adapters import airflow_artifacts, airflow_connection
from feedback_loop.core import dag_config, schedules

# Tasks of our DAGs read the feedback database from the `feedback_db` connection (or FEEDBACK_LOOP_DB_URL).
airflow_connection.install()
# ... and read and write model artifacts through Airflow's object storage (FEEDBACK_LOOP_ARTIFACT_DIR).
airflow_artifacts.install()

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


def models_schedule(kind: str) -> Any:
    """The timetable of a DAG that serves every model: it fires whenever any model's `schedules.<kind>`
    does (UTC); each run then serves the models due at its time. None when no model has a schedule."""
    from airflow.sdk import CronTriggerTimetable, MultipleCronTriggerTimetable

    crons = schedules.crons(dag_config.models(), kind)
    if not crons:
        return None
    if len(crons) == 1:
        # With one regular schedule the run's data interval shows what an aggregation run covers.
        interval = schedules.period(crons[0]) if kind == "aggregation" else None
        return CronTriggerTimetable(crons[0], timezone="UTC", interval=interval or timedelta())
    return MultipleCronTriggerTimetable(*crons, timezone="UTC")


def model_names() -> list[str]:
    """Configured model names; a broken config fails DAG parsing with the file, key and reason."""
    return [m.name for m in dag_config.models()]


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


def run_type(context: dict[str, Any]) -> str:
    """manual | scheduled | asset_triggered | backfill | ... of the running DAG run."""
    value = getattr(context["dag_run"], "run_type", "manual")
    return str(getattr(value, "value", value))


def run_time(context: dict[str, Any]) -> datetime:
    """The time a run stands for. A scheduled or backfill run: the time its schedule fired, which is the
    end of its data interval (with a data interval, as feedback_aggregation's timetable has when one cron
    drives it, Airflow sets the logical date to the interval's *start*). A manual run: its logical date,
    or when it was queued to run (a run triggered without a logical date, the REST API's default)."""
    dag_run = context["dag_run"]
    fired = (
        getattr(dag_run, "data_interval_end", None)
        if run_type(context) in ("scheduled", "backfill")
        else None
    )
    moment = fired or getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    if moment is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(moment.timestamp(), tz=UTC)


def asset_extras(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The extras of the asset events that triggered this run (empty for other triggers)."""
    events = context.get("triggering_asset_events") or {}
    extras = []
    for asset_events in events.values():
        for event in asset_events:
            extras.append(dict(getattr(event, "extra", None) or {}))
    return extras


def actor_from_context(context: dict[str, Any]) -> str:
    """Who triggered the run, for audit trails: the Airflow user, else the run id."""
    dag_run = context.get("dag_run")
    user = getattr(dag_run, "triggering_user_name", None) if dag_run is not None else None
    run_id = getattr(dag_run, "run_id", "unknown-run")
    return f"airflow:{user}" if user else f"airflow-run:{run_id}"


ON_CALL_NEEDS = """
Needs: Airflow connection `feedback_db` (PostgreSQL), or `FEEDBACK_LOOP_DB_URL`; `FEEDBACK_LOOP_CONFIG`
for the list of models (defaults to the bundled example).
"""


def on_call_dag(doc: str, *, model: str, params: dict[str, Param], reason: str) -> dict[str, Any]:
    """The @dag arguments of the audited on-call DAGs (model_rollback, eval_case_review): one run at a
    time, no automatic retry (a person re-triggers with a reason), the on-call tags, a model picker first
    and a required reason last in the trigger form, and what the DAG needs at the end of its doc."""
    return {
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {**DEFAULT_ARGS, "retries": 0},
        "tags": [*TAGS, "registry", "on-call"],
        "doc_md": doc.rstrip() + "\n" + ON_CALL_NEEDS,
        "params": {"model_name": model_param(model), **params, "reason": required_reason_param(reason)},
    }
