"""
### feedback_aggregation

Rolls up feedback per model version for each data interval (default hourly, `schedules.aggregation` in
the config): counts by kind, mean rating, positive/negative/correction rates, accuracy on labelled
feedback, review latency p50/p95, review backlog and its oldest age, label yield, the same metrics per
slice value (bias audit), and drift of every input feature and of confidence against the version's
training-time reference (PSI, KS, chi-square). Rows go to `feedback_rollups`, upserted per
(model, version, interval): re-running or backfilling an interval rewrites the same rows.

Each run works on its data interval only (never "now"), so catch-up and backfills are safe:
`airflow backfill create --dag-id feedback_aggregation --from-date ... --to-date ...`.
A manual trigger aggregates the last complete interval before its logical date.

When a threshold in `alerts` is crossed (negative rate, accuracy drop against training, PSI, backlog age)
the run notifies the webhook and emits `feedback_loop://retraining_needed` with the reason in the
event's extra; otherwise `check_alerts` is skipped and no event is emitted. The charts live in the
Airflow UI under *Feedback dashboard*.

Needs: Airflow connection `feedback_db` (PostgreSQL), or `FEEDBACK_LOOP_DB_URL`; `FEEDBACK_LOOP_CONFIG`
for models and thresholds (defaults to the bundled example); optionally `FEEDBACK_LOOP_WEBHOOK_URL`
for alert messages.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Param, dag, get_current_context, task

from feedback_loop.adapters.airflow_aggregation import timetable
from feedback_loop.adapters.airflow_dags import DEFAULT_ARGS, RETRAINING_NEEDED, ROLLUPS, TAGS, model_names


def _interval(context) -> tuple[datetime, datetime]:
    """The run's data interval as plain aware datetimes (the rollup key)."""
    start, end = context["data_interval_start"], context["data_interval_end"]
    return (
        datetime.fromtimestamp(start.timestamp(), tz=UTC),
        datetime.fromtimestamp(end.timestamp(), tz=UTC),
    )


@dag(
    schedule=timetable(),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "aggregation", "monitoring"],
    doc_md=__doc__,
    params={
        "model_names": Param(
            [],
            type="array",
            items={"type": "string", "enum": model_names()},
            title="Models",
            description="Models to aggregate. Empty = every configured model.",
        ),
    },
)
def feedback_aggregation():
    @task
    def models_to_aggregate() -> list[str]:
        from feedback_loop.core import config

        chosen = get_current_context()["params"].get("model_names") or []
        return list(chosen) or [m.name for m in config.load().models]

    @task(outlets=[ROLLUPS])
    def roll_up(model_name: str) -> dict:
        from feedback_loop.core import config, db
        from feedback_loop.monitoring import aggregation

        start, end = _interval(get_current_context())
        settings = config.load()
        with db.connect() as conn:
            rollups = aggregation.aggregate_interval(conn, settings.model(model_name), settings, start, end)
        versions = [r["model_version"] for r in rollups]
        print(
            f"{model_name}: [{start.isoformat()}, {end.isoformat()}) rolled up versions {versions or 'none'}"
        )
        return {"model_name": model_name, "versions": versions}

    @task(outlets=[RETRAINING_NEEDED])
    def check_alerts(rolled: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from feedback_loop.core import config, db
        from feedback_loop.monitoring import aggregation

        context = get_current_context()
        start, end = _interval(context)
        model_name = rolled["model_name"]
        settings = config.load()
        with db.connect() as conn:
            found = aggregation.evaluate_alerts(conn, settings, model_name, start, end)
            if not found:
                raise AirflowSkipException(f"{model_name}: no alert threshold crossed in this interval")
            delivery = aggregation.notify_alerts(conn, settings, model_name, start, end, found)
        extra = aggregation.event_extra(model_name, start, end, found)
        context["outlet_events"][RETRAINING_NEEDED].extra = extra
        print(
            f"retraining needed: {extra['reason']} (webhook: {delivery.status if delivery else 'already sent'})"
        )
        return extra

    check_alerts.expand(rolled=roll_up.expand(model_name=models_to_aggregate()))


feedback_aggregation()
