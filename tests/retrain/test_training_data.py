"""The label-resolution rule, the feedback cap and run parameters: plain functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from feedback_loop.core import config
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.retrain import planning
from feedback_loop.retrain.training_data import (
    ORIGIN_COLUMN,
    TRACE_COLUMN,
    Vote,
    apply_cap,
    feedback_cap,
    resolve,
)

pytestmark = pytest.mark.unit

_ids = iter(range(1, 10_000))


def vote(kind: str, *, label=None, rating=None, source="api", user=None) -> Vote:
    return Vote(feedback_id=next(_ids), kind=kind, rating=rating, label=label, source=source, user_id=user)


def test_thumbs_up_and_high_rating_confirm_the_prediction():
    assert resolve([vote("thumbs_up")], "7").label == "7"
    assert resolve([vote("rating", rating=4)], "7", min_rating=4).outcome == "confirmed"
    assert resolve([vote("rating", rating=3)], "7", min_rating=4).outcome == "no_signal"
    assert resolve([vote("rating", rating=3)], "7", min_rating=3).label == "7"


def test_correction_gives_the_corrected_label_with_provenance():
    correction = vote("correction", label="1")
    result = resolve([correction], "7")
    assert (result.label, result.outcome, result.feedback_id) == ("1", "corrected", correction.feedback_id)


def test_corrections_can_be_excluded():
    assert resolve([vote("correction", label="1")], "7", include_corrections=False).outcome == "no_signal"


def test_negative_without_a_label_is_dropped():
    assert resolve([vote("thumbs_down")], "7").outcome == "negative_without_label"
    assert resolve([vote("rating", rating=1)], "7").label is None


def test_reviewers_outrank_end_users():
    votes = [
        vote("thumbs_up", user="u1"),
        vote("thumbs_up", user="u2"),
        vote("correction", label="1", source="review"),
    ]
    assert resolve(votes, "7").label == "1"


def test_majority_of_reviewers_wins():
    votes = [
        vote("correction", label="1", source="review", user="r1"),
        vote("thumbs_up", label="7", source="review", user="r2"),
        vote("thumbs_up", label="7", source="review", user="r3"),
    ]
    result = resolve(votes, "7")
    assert (result.label, result.outcome, result.disputed, result.voters) == ("7", "confirmed", True, 3)


def test_a_person_counts_once_with_their_latest_vote():
    votes = [
        vote("thumbs_up", user="u1"),
        vote("thumbs_up", user="u1"),
        vote("correction", label="2", user="u1"),
    ]
    assert resolve(votes, "7").label == "2"


def test_tie_goes_to_the_latest_correction():
    votes = [
        vote("correction", label="1", source="review", user="r1"),
        vote("correction", label="2", source="review", user="r2"),
    ]
    assert resolve(votes, "7").label == "2"
    confirm_then_correct = [vote("thumbs_up", user="a"), vote("correction", label="3", user="b")]
    assert resolve(confirm_then_correct, "7").label == "3"


def test_tie_between_confirmation_and_bare_negative_is_dropped_as_conflict():
    result = resolve([vote("thumbs_up", user="a"), vote("thumbs_down", user="b")], "7")
    assert (result.label, result.outcome) == (None, "conflict")


def test_thumbs_down_counts_against_the_prediction():
    votes = [
        vote("thumbs_up", user="a"),
        vote("thumbs_down", user="b"),
        vote("correction", label="4", user="c"),
    ]
    assert resolve(votes, "7").label == "4"


def test_plurality_among_corrections():
    votes = [
        vote("correction", label="1", user="a"),
        vote("correction", label="1", user="b"),
        vote("correction", label="2", user="c"),
    ]
    assert resolve(votes, "7").label == "1"


def test_feedback_cap_keeps_feedback_at_most_the_configured_share():
    assert feedback_cap(100, 0.5) == 100
    assert feedback_cap(100, 0.2) == 25
    assert feedback_cap(100, 1.0) is None
    base, limit = 300, feedback_cap(300, 0.3)
    assert limit / (base + limit) <= 0.3


def test_cap_prefers_corrections_and_is_deterministic():
    frame = pd.DataFrame(
        {
            TRACE_COLUMN: [f"t{i:02d}" for i in range(10)],
            ORIGIN_COLUMN: ["corrected"] * 3 + ["confirmed"] * 7,
            "x": range(10),
        }
    )
    kept, dropped = apply_cap(frame, 5, seed=1)
    assert dropped == 5 and len(kept) == 5
    assert (kept[ORIGIN_COLUMN] == "corrected").sum() == 3
    again, _ = apply_cap(frame.sample(frac=1, random_state=3), 5, seed=1)
    assert list(again[TRACE_COLUMN]) == list(kept[TRACE_COLUMN])
    assert apply_cap(frame, None, seed=1)[1] == 0


MODEL = config.load().model("digits")
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_params_default_to_all_feedback_until_now_and_the_configured_rating():
    p = planning.resolve_params(MODEL, now=NOW)
    assert (p.min_rating, p.window_end, p.window_start.year) == (4, NOW, 1970)
    assert planning.RunParams.from_dict(p.to_dict()) == p


def test_params_window_days_and_iso_dates():
    p = planning.resolve_params(MODEL, window_days=7, now=NOW)
    assert p.window_start == datetime(2026, 11, 18, 12, tzinfo=UTC)
    q = planning.resolve_params(MODEL, window_start="2026-11-01", window_end="2026-11-02T00:00Z")
    assert q.window_start == datetime(2026, 11, 1, tzinfo=UTC) and q.window_end.day == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_rating": 6}, "min_rating"),
        ({"window_start": "yesterday"}, "window_start"),
        ({"window_start": "2026-12-01"}, "window_start"),
        ({"window_days": 0}, "window_days"),
        ({"window_days": 3, "window_start": "2026-11-01"}, "window_days"),
    ],
)
def test_bad_params_name_the_field(kwargs, field):
    with pytest.raises(InvalidInputError, match=f"^{field}:"):
        planning.resolve_params(MODEL, now=NOW, **kwargs)


SETTINGS = config.load()


def test_plan_manual_uses_the_form():
    (p,) = planning.plan(
        SETTINGS,
        run_type="manual",
        params={"model_name": "digits", "min_rating": 5, "dry_run": True, "reason": "check"},
        triggered_by="airflow:oncall",
        now=NOW,
    )
    assert (p.model_name, p.min_rating, p.dry_run, p.reason) == ("digits", 5, True, "check")


def test_plan_asset_triggered_takes_models_and_reasons_from_the_events():
    planned = planning.plan(
        SETTINGS,
        run_type="asset_triggered",
        params={},
        asset_extras=[{"model_name": "digits", "reason": "negative rate 0.5"}, {"model_name": "nope"}],
        triggered_by="x",
        now=NOW,
    )
    assert [(p.model_name, p.reason) for p in planned] == [("digits", "retraining_needed: negative rate 0.5")]


def test_plan_scheduled_covers_every_model_whose_schedule_fires_at_the_run_time():
    two = config.parse(
        """
models:
  - {name: weekly, label_column: y, training_data: {path: a.csv}, schedules: {retraining: "@weekly"}}
  - {name: daily, label_column: y, training_data: {path: a.csv}, schedules: {retraining: "0 3 * * *"}}
  - {name: never, label_column: y, training_data: {path: a.csv}, schedules: {retraining: null}}
""",
        "two.yaml",
    )
    sunday_midnight = datetime(2026, 11, 29, tzinfo=UTC)
    monday_3am = datetime(2026, 11, 30, 3, tzinfo=UTC)

    def planned(at):
        return [
            p.model_name for p in planning.plan(two, run_type="scheduled", params={}, triggered_by="x", at=at)
        ]

    assert planned(sunday_midnight) == ["weekly"]
    assert planned(monday_3am) == ["daily"]
    assert planned(datetime(2026, 11, 29, 3, tzinfo=UTC)) == ["daily"]
    assert planned(datetime(2026, 11, 29, 4, tzinfo=UTC)) == []
