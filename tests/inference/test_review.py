"""Review content and the meaning of answers (pure functions)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import review

pytestmark = pytest.mark.unit

OPENED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(**overrides) -> review.ReviewItem:
    values = {
        "item_id": 42,
        "trace_id": uuid.UUID("00000000-0000-4000-8000-000000000042"),
        "model_name": "digits",
        "model_version": 3,
        "input": {"pixel_0": 0.0, "pixel_1": 12.5, "note": "a|b"},
        "output_label": "3",
        "confidence": 0.46,
        "probabilities": {"3": 0.46, "8": 0.31, "5": 0.13, "9": 0.06, "1": 0.03, "7": 0.01},
        "slice": {"writer_group": "b"},
        "opened_at": OPENED,
    }
    return review.ReviewItem(**{**values, **overrides})


def answer(option: str, user: str | None = "alice", seconds: float = 90, **params) -> review.Answer:
    return review.Answer(
        chosen_options=[option],
        params_input={"corrected_label": None, "comment": None, **params},
        responded_at=OPENED + timedelta(seconds=seconds),
        responded_by={"id": user, "name": user} if user else None,
    )


def test_options_are_labels_by_probability_then_none_of_these_and_skip():
    content = review.build_review(item(), threshold=0.8)
    assert content.options == ["3", "8", "5", "9", "1", review.NONE_OF_THESE, review.SKIP]
    assert content.defaults == [review.SKIP]
    assert "digits v3" in content.subject and "'3'" in content.subject and "46%" in content.subject


def test_predicted_label_comes_first_even_when_probabilities_tie():
    tied = item(output_label="8", probabilities={"3": 0.5, "8": 0.5})
    assert review.build_review(tied).options[:2] == ["8", "3"]


def test_body_shows_prediction_alternatives_input_table_and_slice():
    body = review.build_review(item(), threshold=0.8).body
    assert "**Prediction:** 3 with confidence **46.0%** (below the review threshold 80%)" in body
    assert "| 1 | 3 | 46.0% |" in body and "| 2 | 8 | 31.0% |" in body
    assert "| feature | value | feature | value | feature | value |" in body
    assert "| pixel\\_0 | 0 | pixel\\_1 | 12.5 | note | a\\|b |" in body  # pipes escaped, table intact
    assert "writer\\_group=b" in body
    assert str(item().trace_id) in body


def test_input_values_cannot_inject_markdown_html_or_templates():
    hostile = item(input={"note": "[click](http://evil.example) <img src=x> {{ conn.password }} **bold**"})
    body = review.build_review(hostile).body
    table = review.input_table(hostile.input)
    assert table in body
    unescaped = [m.group() for m in re.finditer(r"(?<!\\)[\[\]<>{}*]", table)]
    assert unescaped == [], unescaped
    assert "\\[click\\]\\(http\\://evil.example\\) \\<img src=x\\>" in body


def test_wide_inputs_wrap_into_rows_of_four_pairs():
    wide = item(input={f"pixel_{i}": float(i) for i in range(10)})
    table = review.input_table(wide.input)
    lines = table.splitlines()
    assert len(lines) == 2 + 3  # header, rule, ceil(10 / 4) rows
    assert all(line.count("|") == lines[0].count("|") for line in lines[2:])


def test_class_labels_that_clash_with_review_options_are_refused():
    with pytest.raises(InvalidInputError, match="clash with review options"):
        review.build_review(item(probabilities={"None of these": 0.6, "3": 0.4}))


def test_confirmation_is_a_thumbs_up_carrying_the_predicted_label():
    outcome = review.outcome_of_answer(item(), answer("3", seconds=90))
    assert outcome.status == "answered"
    fb = outcome.feedback
    assert (fb.kind, fb.label, fb.user_id, fb.source, fb.review_item_id) == (
        "thumbs_up",
        "3",
        "alice",
        "review",
        42,
    )
    assert fb.latency_seconds == 90
    assert fb.trace_id == item().trace_id


def test_another_listed_label_is_a_correction():
    fb = review.outcome_of_answer(item(), answer("8", user="bob", comment=" loop at the top ")).feedback
    assert (fb.kind, fb.label, fb.user_id, fb.comment) == ("correction", "8", "bob", "loop at the top")


def test_none_of_these_with_a_label_is_a_correction_to_that_label():
    fb = review.outcome_of_answer(item(), answer(review.NONE_OF_THESE, corrected_label="4")).feedback
    assert (fb.kind, fb.label) == ("correction", "4")


def test_none_of_these_naming_the_predicted_label_is_a_confirmation():
    fb = review.outcome_of_answer(item(), answer(review.NONE_OF_THESE, corrected_label="3")).feedback
    assert (fb.kind, fb.label) == ("thumbs_up", "3")


def test_none_of_these_without_a_label_is_a_thumbs_down():
    outcome = review.outcome_of_answer(item(), answer(review.NONE_OF_THESE, corrected_label="  "))
    assert (outcome.status, outcome.feedback.kind, outcome.feedback.label) == (
        "answered",
        "thumbs_down",
        None,
    )


def test_skip_closes_the_item_and_keeps_only_a_comment():
    assert review.outcome_of_answer(item(), answer(review.SKIP)).feedback is None
    with_comment = review.outcome_of_answer(item(), answer(review.SKIP, comment="blurry scan"))
    assert (with_comment.status, with_comment.feedback.kind, with_comment.feedback.comment) == (
        "answered",
        "comment",
        "blurry scan",
    )


def test_timeout_without_a_responder_expires_with_no_feedback():
    outcome = review.outcome_of_answer(item(), answer(review.SKIP, user=None))
    assert (outcome.status, outcome.feedback) == ("expired", None)


def test_latency_is_never_negative_and_absent_without_an_open_time():
    assert review.outcome_of_answer(item(), answer("3", seconds=-5)).feedback.latency_seconds == 0
    assert review.outcome_of_answer(item(opened_at=None), answer("3")).feedback.latency_seconds is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (review.Answer(["3", "8"], {}, OPENED, {"id": "a"}), "expected exactly one option"),
        (answer(review.NONE_OF_THESE, corrected_label="x" * 201), "corrected_label: at most 200"),
        (answer("3", comment="y" * 2001), "comment: at most 2000"),
    ],
)
def test_malformed_answers_name_the_field(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        review.outcome_of_answer(item(), bad)


def test_review_form_fields_are_optional_with_titles():
    schema = review.review_params_schema()
    assert set(schema) == {"corrected_label", "comment"}
    assert all(
        spec["default"] is None and "null" in spec["type"] and spec["title"] for spec in schema.values()
    )


def test_any_subset_of_the_forms_fields_is_an_answer_and_each_problem_names_its_field():
    options = ["a", "b", review.NONE_OF_THESE, review.SKIP]
    assert review.answer_problems(options, ["a"], {}) == []
    assert review.answer_problems(options, ["a"], {"comment": "only a comment"}) == []
    assert review.answer_problems(options, [review.NONE_OF_THESE], {"corrected_label": "c"}) == []
    found = review.answer_problems(
        options, ["z"], {"corrected_label": 7, "comment": "x" * 5000, "mood": "?", "other": None}
    )
    assert [field for field, _ in found] == [
        "chosen_options",
        "params_input.corrected_label",
        "params_input.comment",
        "params_input.mood",
        "params_input.other",
    ]
    assert review.answer_problems(options, ["a", "b"], {})[0] == (
        "chosen_options",
        "choose exactly one option, got 2",
    )
    (label,) = review.answer_problems(options, ["a"], {"corrected_label": "c"})
    assert label[0] == "params_input.corrected_label" and "None of these" in label[1]


def test_an_answer_airflow_accepted_unchecked_is_made_usable_never_refused():
    from datetime import UTC, datetime

    given = review.Answer(
        [],
        {"corrected_label": "L" * 300, "comment": "c" * 2100 + "\x00", "mood": "happy", "n": 3},
        datetime.now(UTC),
        {"id": "ann"},
    )
    fixed, notes = review.usable(given)
    assert fixed.chosen_options == [review.SKIP]
    assert set(fixed.params_input) == {"corrected_label", "comment"}
    assert fixed.params_input["corrected_label"] is None
    assert (
        len(fixed.params_input["comment"]) == review.MAX_COMMENT_LENGTH
        and "\x00" not in fixed.params_input["comment"]
    )
    # two unknown fields dropped, NUL removed, label kept as comment, comment cut, no option taken as skip
    assert len(notes) == 6, notes
    # A timed-out review (no responder) keeps its empty choice: it expires, it is not a skip.
    timed_out = review.Answer([], {}, datetime.now(UTC), None)
    assert review.usable(timed_out)[0].chosen_options == []
