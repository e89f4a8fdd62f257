"""Which interval of which model one feedback_aggregation run rolls up.

A scheduled (or backfill) run at time T rolls up, for every model whose `schedules.aggregation` fires at
T, the interval from that schedule's previous fire time to T. A run triggered by hand, with or without a
logical date, rolls up the last complete interval of each chosen model before the run's time (models
without an aggregation schedule use hourly intervals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedback_loop.core import schedules
from feedback_loop.core.config import Settings

SCHEDULED = ("scheduled", "backfill")


@dataclass(frozen=True)
class Interval:
    model_name: str
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interval:
        return cls(
            data["model_name"], datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])
        )


def plan(
    settings: Settings, *, run_type: str, at: datetime, model_names: Sequence[str] = ()
) -> list[Interval]:
    """The intervals one run rolls up (empty when a scheduled run finds no model due)."""
    if run_type in SCHEDULED:
        return [
            Interval(m.name, *schedules.interval_ending(m.schedules.aggregation, at))
            for m in schedules.due(settings.models, "aggregation", at)
        ]
    chosen = [settings.model(name) for name in model_names] or list(settings.models)
    return [
        Interval(
            m.name,
            *schedules.last_complete_interval(m.schedules.aggregation or schedules.DEFAULT_INTERVAL, at),
        )
        for m in chosen
    ]
