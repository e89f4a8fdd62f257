"""When each model's work is due: cron expressions and presets, in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.core import config, schedules

pytestmark = pytest.mark.unit

SETTINGS = config.parse(
    """
models:
  - {name: hourly, label_column: y, training_data: {path: a.csv}, schedules: {aggregation: "@hourly"}}
  - {name: every3h, label_column: y, training_data: {path: a.csv}, schedules: {aggregation: "0 */3 * * *"}}
  - {name: manual_only, label_column: y, training_data: {path: a.csv}, schedules: {aggregation: null}}
""",
    "three.yaml",
)
T = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def test_presets_resolve_and_nonsense_is_refused_naming_the_value():
    assert schedules.expression("@weekly") == "0 0 * * 0"
    with pytest.raises(ValueError, match="'every hour' is not a cron expression"):
        schedules.expression("every hour")


def test_a_bad_schedule_fails_the_config_naming_the_key():
    from feedback_loop.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"models\[0\]\.schedules\.retraining: .*'weekly'"):
        config.parse(
            "models:\n  - {name: m, label_column: y, training_data: {path: a.csv}, schedules: {retraining: weekly}}\n"
        )


def test_due_models_and_their_own_intervals():
    assert schedules.crons(SETTINGS.models, "aggregation") == ["0 * * * *", "0 */3 * * *"]
    assert [m.name for m in schedules.due(SETTINGS.models, "aggregation", T)] == ["hourly", "every3h"]
    assert [m.name for m in schedules.due(SETTINGS.models, "aggregation", T + timedelta(hours=1))] == [
        "hourly"
    ]
    assert schedules.interval_ending("0 */3 * * *", T) == (T - timedelta(hours=3), T)


def test_last_complete_interval_before_any_moment():
    assert schedules.last_complete_interval("@hourly", T + timedelta(minutes=42)) == (
        T - timedelta(hours=1),
        T,
    )
    assert schedules.last_complete_interval("@hourly", T) == (T - timedelta(hours=1), T)


def test_period_is_known_only_for_regular_schedules():
    assert schedules.period("*/2 * * * *") == timedelta(minutes=2)
    assert schedules.period("0 9,17 * * *") is None
