"""
### feedback_aggregation

Rolls up feedback per model version for each interval of the model's `schedules.aggregation` (UTC,
default hourly): counts by kind, mean rating, positive/negative/correction rates, accuracy on labelled
feedback, review latency p50/p95, review backlog and its oldest age, label yield, the same metrics per
slice value (bias audit), and drift of every input feature and of confidence against the version's
training-time reference (PSI, KS, chi-square). Rows go to `feedback_rollups`, upserted per
(model, version, interval): re-running or backfilling an interval rewrites the same rows.

The DAG fires at every model's aggregation schedule; a scheduled run rolls up, for each model whose own
schedule fires at its time, the interval since that schedule's previous fire time. It never reads "now",
so catch-up and backfills are safe:
`airflow backfill create --dag-id feedback_aggregation --from-date ... --to-date ...`.
A manual trigger (with or without a logical date) rolls up each chosen model's last complete interval
before the run's time.

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

from feedback_loop.adapters.airflow_dags import (
    DEFAULT_ARGS,
    RETRAINING_NEEDED,
    ROLLUPS,
    TAGS,
    model_names,
    models_schedule,
    run_time,
    run_type,
)


@dag(
    schedule=models_schedule("aggregation"),
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
            description="Models to aggregate (manual runs). Empty = every configured model.",
        ),
    },
)
def feedback_aggregation():
    @task
    def plan_intervals() -> list[dict]:
        from feedback_loop.core import config
        from feedback_loop.monitoring import intervals

        context = get_current_context()
        planned = intervals.plan(
            config.load(),
            run_type=run_type(context),
            at=run_time(context),
            model_names=context["params"].get("model_names") or [],
        )
        for interval in planned:
            print(f"{interval.model_name}: [{interval.start.isoformat()}, {interval.end.isoformat()})")
        return [interval.to_dict() for interval in planned]

    @task(outlets=[ROLLUPS])
    def roll_up(interval: dict) -> dict:
        from feedback_loop.core import config, db
        from feedback_loop.monitoring import aggregation
        from feedback_loop.monitoring.intervals import Interval

        planned = Interval.from_dict(interval)
        settings = config.load()
        with db.connect() as conn:
            rollups = aggregation.aggregate_interval(
                conn, settings.model(planned.model_name), settings, planned.start, planned.end
            )
        versions = [r["model_version"] for r in rollups]
        print(
            f"{planned.model_name}: [{planned.start.isoformat()}, {planned.end.isoformat()}) "
            f"rolled up versions {versions or 'none'}"
        )
        return {**interval, "versions": versions}

    @task(outlets=[RETRAINING_NEEDED])
    def check_alerts(rolled: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from feedback_loop.core import config, db
        from feedback_loop.monitoring import aggregation
        from feedback_loop.monitoring.intervals import Interval

        context = get_current_context()
        planned = Interval.from_dict(rolled)
        model_name, start, end = planned.model_name, planned.start, planned.end
        settings = config.load()
        with db.connect() as conn:
            found = aggregation.evaluate_alerts(conn, settings, model_name, start, end)
            if not found:
                raise AirflowSkipException(f"{model_name}: no alert threshold crossed in this interval")
            delivery = aggregation.notify_alerts(conn, settings, model_name, start, end, found)
        if delivery is None:
            # The same alerts of this interval were raised by an earlier run: one page, one retraining.
            raise AirflowSkipException(
                f"{model_name}: these alerts were already raised for this interval; not triggering retraining again"
            )
        extra = aggregation.event_extra(model_name, start, end, found)
        context["outlet_events"][RETRAINING_NEEDED].extra = extra
        print(f"retraining needed: {extra['reason']} (webhook: {delivery.status})")
        return extra

    check_alerts.expand(rolled=roll_up.expand(interval=plan_intervals()))


feedback_aggregation()
