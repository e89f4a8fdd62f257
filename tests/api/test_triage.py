"""Triage rules: priority, failure-mode tag and the negative-rate trigger."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback_loop.api import triage
from feedback_loop.core.config import TriageConfig

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("kind", "rating", "signal", "comment", "priority"),
    [
        ("rating", 1, None, None, "urgent"),
        ("rating", 2, None, "meh", "urgent"),
        ("rating", 3, None, None, "normal"),
        ("rating", 5, None, None, "low"),
        ("thumbs_down", None, None, "it is wrong", "urgent"),
        ("thumbs_down", None, None, "   ", "high"),
        ("thumbs_down", None, None, None, "high"),
        ("correction", None, None, None, "high"),
        ("comment", None, None, "nice", "normal"),
        ("thumbs_up", None, None, None, "low"),
        ("implicit", None, "escalated", None, "urgent"),
        ("implicit", None, "abandoned", None, "high"),
        ("implicit", None, "accepted", None, "low"),
    ],
)
def test_priority(kind, rating, signal, comment, priority):
    assert triage.priority(kind, rating, signal, comment) == priority


@pytest.mark.parametrize(
    ("kind", "rating", "signal", "comment", "mode"),
    [
        ("thumbs_down", None, None, "that reply was rude", "harmful"),
        ("rating", 1, None, "way too slow", "latency"),
        ("thumbs_down", None, None, "it made up a citation", "hallucination"),
        ("thumbs_down", None, None, "the answer is incomplete", "incomplete"),
        ("rating", 2, None, "wrong digit", "wrong_output"),
        ("comment", None, None, "the wording is confusing", "confusing"),
        ("correction", None, None, None, "wrong_label"),
        ("implicit", None, "retried", None, "user_retried"),
        ("thumbs_down", None, None, None, "unspecified"),
        # Positive feedback never gets a failure mode, whatever its comment says.
        ("thumbs_up", None, None, "no mistakes at all", None),
        ("rating", 5, None, "not slow at all", None),
        ("comment", None, None, "great job", None),
    ],
)
def test_failure_mode(kind, rating, signal, comment, mode):
    assert triage.triage(kind, rating, signal, comment).failure_mode == mode


def test_is_negative_matches_the_database_definition():
    assert triage.is_negative("thumbs_down") and triage.is_negative("correction")
    assert triage.is_negative("rating", rating=2) and not triage.is_negative("rating", rating=3)
    assert triage.is_negative("implicit", signal="abandoned") and not triage.is_negative(
        "implicit", signal="accepted"
    )
    assert not triage.is_negative("comment") and not triage.is_negative("thumbs_up")


def test_negative_rate_trigger_needs_more_than_the_share_over_a_full_window():
    settings = TriageConfig(negative_share_threshold=0.3, negative_window=10)
    assert not triage.negative_share_exceeded([True] * 3 + [False] * 7, settings)  # 30% is not more than 30%
    assert triage.negative_share_exceeded([True] * 4 + [False] * 6, settings)
    assert not triage.negative_share_exceeded([True] * 9, settings)  # window not full yet
    # Only the newest `negative_window` flags count (newest first).
    assert not triage.negative_share_exceeded([False] * 10 + [True] * 10, settings)


@pytest.mark.parametrize(
    "comment",
    [
        "That reply was RUDE",
        "Way Too Slow",
        "it Made Up a source",
        "DOESN'T EXIST",
        "took too long",
        "no problem here",
        "ſlow and ſtrange",  # long s: re.I folds it to "s", lower() leaves it; must take the re.I path
        "KELVIN-sign ok",
        "İnvented numbers",
        "",
    ],
)
def test_fast_failure_check_agrees_with_the_case_insensitive_pattern(comment):
    assert triage._may_name_failure(comment) == bool(triage._ANY_FAILURE_MODE.search(comment))


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80) | st.sampled_from(["Rude", "SLOW", "Wrong!"])
)
def test_fast_failure_check_agrees_on_any_text(comment):
    assert triage._may_name_failure(comment) == bool(triage._ANY_FAILURE_MODE.search(comment))


def test_failure_mode_patterns_are_lower_case_so_the_fast_check_sees_them():
    # _may_name_failure matches lower-cased text without re.I: a capital letter in a pattern would never
    # match there. Escapes such as \b or \w are case-sensitive syntax, not text, so they are left out.
    import re

    for tag, pattern in triage.COMMENT_FAILURE_MODES:
        text = re.sub(r"\\.", "", pattern.pattern)
        assert text == text.lower(), f"failure mode {tag!r}: write its pattern in lower case"
