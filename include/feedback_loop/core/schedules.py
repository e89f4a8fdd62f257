"""When each model's work is due: the cron expressions of `schedules` in the config, in UTC.

One DAG serves every model (feedback_inference, feedback_aggregation, model_retraining). It fires at the
union of the models' cron times, and each run serves the models whose own schedule fires at the run's
time; an aggregation run rolls up, per model, the interval from that model's previous fire time to this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from croniter import croniter


class Scheduled(Protocol):
    """A configured model, as far as scheduling goes (config imports this module to validate crons)."""

    name: str
    schedules: Any


M = TypeVar("M", bound=Scheduled)

# The presets Airflow accepts for a cron schedule, as cron expressions.
PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
KINDS = ("inference", "aggregation", "retraining")
# A model without an aggregation schedule is rolled up by hand in hourly intervals.
DEFAULT_INTERVAL = "@hourly"


def expression(cron: str) -> str:
    """The cron expression of a schedule (presets resolved); ValueError naming what is wrong."""
    resolved = PRESETS.get(cron.strip(), cron.strip())
    if not croniter.is_valid(resolved):
        raise ValueError(f"{cron!r} is not a cron expression or one of {', '.join(PRESETS)} (times are UTC)")
    return resolved


def _utc(moment: datetime) -> datetime:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def crons(models: Iterable[Scheduled], kind: str) -> list[str]:
    """The distinct cron expressions of `kind` over `models`, in model order (empty: not scheduled)."""
    found = [expression(getattr(m.schedules, kind)) for m in models if getattr(m.schedules, kind)]
    return list(dict.fromkeys(found))


def is_due(cron: str, at: datetime) -> bool:
    """Does the schedule fire at `at` (to the minute)?"""
    return bool(croniter.match(expression(cron), _utc(at)))


def due(models: Sequence[M], kind: str, at: datetime) -> list[M]:
    """The models whose `kind` schedule fires at `at`."""
    return [m for m in models if getattr(m.schedules, kind) and is_due(getattr(m.schedules, kind), at)]


def last_fire(cron: str, at: datetime) -> datetime:
    """The latest fire time at or before `at`."""
    moment = _utc(at)
    if croniter.match(expression(cron), moment):
        return moment
    return croniter(expression(cron), moment).get_prev(datetime)


def next_fire(cron: str, after: datetime) -> datetime:
    """The first fire time strictly after `after`."""
    return croniter(expression(cron), _utc(after)).get_next(datetime)


def interval_ending(cron: str, end: datetime) -> tuple[datetime, datetime]:
    """[previous fire time, end): the interval a run at fire time `end` covers."""
    end = _utc(end)
    return croniter(expression(cron), end).get_prev(datetime), end


def last_complete_interval(cron: str, now: datetime) -> tuple[datetime, datetime]:
    """The newest interval of the schedule that has ended by `now`."""
    return interval_ending(cron, last_fire(cron, now))


def period(cron: str, samples: int = 12) -> timedelta | None:
    """The fixed time between fire times, or None when it varies (e.g. '0 9,17 * * *' or monthly)."""
    moments = croniter(expression(cron), datetime(2026, 1, 1, tzinfo=UTC))
    fires = [moments.get_next(datetime) for _ in range(samples + 1)]
    gaps = {b - a for a, b in zip(fires, fires[1:], strict=False)}
    return gaps.pop() if len(gaps) == 1 else None
