"""Which models a feedback_inference run serves, with which threshold, budget and batch size."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feedback_loop.core import config
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import rounds

pytestmark = pytest.mark.unit

SETTINGS = config.parse(
    """
models:
  - {name: a, label_column: y, training_data: {path: a.csv}, confidence_threshold: 0.7, review_budget: 5,
     schedules: {inference: "*/10 * * * *"}}
  - {name: b, label_column: y, training_data: {path: a.csv}, schedules: {inference: "0 * * * *"}}
""",
    "two.yaml",
)


def test_a_manual_run_takes_the_form_and_falls_back_to_the_models_values():
    params = {"model_name": "a", "confidence_threshold": None, "review_budget": 0, "batch_size": 50}
    (planned,) = rounds.plan(SETTINGS, run_type="manual", params=params, at=datetime.now(UTC))
    assert planned == rounds.Round("a", 0.7, 0, 50)


def test_a_scheduled_run_serves_the_models_due_at_its_time():
    at = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
    assert [r.model_name for r in rounds.plan(SETTINGS, run_type="scheduled", params={}, at=at)] == ["a", "b"]
    later = datetime(2026, 11, 30, 4, 10, tzinfo=UTC)
    assert [r.model_name for r in rounds.plan(SETTINGS, run_type="scheduled", params={}, at=later)] == ["a"]


def test_a_bad_batch_size_names_the_field():
    with pytest.raises(InvalidInputError, match="^batch_size:"):
        rounds.plan(
            SETTINGS, run_type="manual", params={"model_name": "a", "batch_size": 0}, at=datetime.now(UTC)
        )
