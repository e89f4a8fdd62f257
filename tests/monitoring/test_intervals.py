"""Which interval of which model one feedback_aggregation run rolls up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.core import config
from feedback_loop.monitoring import intervals

pytestmark = pytest.mark.unit

SETTINGS = config.parse(
    """
models:
  - {name: a, label_column: y, training_data: {path: a.csv}, schedules: {aggregation: "@hourly"}}
  - {name: b, label_column: y, training_data: {path: a.csv}, schedules: {aggregation: "@daily"}}
  - {name: c, label_column: y, training_data: {path: a.csv}, schedules: {aggregation: null}}
""",
    "three.yaml",
)
MIDNIGHT = datetime(2026, 11, 30, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def test_a_scheduled_run_rolls_up_each_due_model_over_its_own_interval():
    planned = intervals.plan(SETTINGS, run_type="scheduled", at=MIDNIGHT)
    assert planned == [
        intervals.Interval("a", MIDNIGHT - HOUR, MIDNIGHT),
        intervals.Interval("b", MIDNIGHT - DAY, MIDNIGHT),
    ]
    assert [i.model_name for i in intervals.plan(SETTINGS, run_type="scheduled", at=MIDNIGHT + HOUR)] == ["a"]


def test_a_manual_run_without_a_logical_date_rolls_up_the_last_complete_interval():
    moment = MIDNIGHT + 90 * timedelta(minutes=1)
    planned = intervals.plan(SETTINGS, run_type="manual", at=moment, model_names=["a", "c"])
    assert planned == [
        intervals.Interval("a", MIDNIGHT, MIDNIGHT + HOUR),
        intervals.Interval("c", MIDNIGHT, MIDNIGHT + HOUR),  # no schedule: hourly intervals
    ]


def test_intervals_travel_through_xcom_as_plain_values():
    interval = intervals.Interval("a", MIDNIGHT, MIDNIGHT + HOUR)
    assert intervals.Interval.from_dict(interval.to_dict()) == interval
