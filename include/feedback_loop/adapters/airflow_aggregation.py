"""Airflow adapter for the aggregation DAG: its timetable, derived from the configured models.

One DAG aggregates every configured model, so the models' `schedules.aggregation` must agree (null means
"not aggregated on a schedule"). The timetable is a data-interval one: each run covers the interval
between two schedule points, which is what makes catch-up and backfill runs compute the same rollups
as the live run would have.
"""

from __future__ import annotations

from airflow.sdk import CronDataIntervalTimetable

from feedback_loop.core import config
from feedback_loop.core.errors import ConfigError


def aggregation_schedule(settings: config.Settings) -> str | None:
    """The one aggregation schedule shared by the configured models (None: triggered only)."""
    schedules = {m.name: m.schedules.aggregation for m in settings.models if m.schedules.aggregation}
    distinct = sorted(set(schedules.values()))
    if len(distinct) > 1:
        listed = ", ".join(f"{name}={value!r}" for name, value in sorted(schedules.items()))
        raise ConfigError(
            f"models[*].schedules.aggregation: one aggregation DAG serves every model, so the schedules must "
            f"agree (got {listed})"
        )
    return distinct[0] if distinct else None


def timetable() -> CronDataIntervalTimetable | None:
    schedule = aggregation_schedule(config.load())
    return CronDataIntervalTimetable(schedule, timezone="UTC") if schedule else None
