"""Triage of incoming feedback: priority, failure-mode tag, and the negative-rate trigger.

Plain functions over plain values so the API, the review tasks and tests share one definition.

Priority (what on-call sees first):
- urgent: a rating of 2 or lower, a thumbs-down that explains itself with a comment, an escalation;
- high:   a correction (the label was wrong), a bare thumbs-down, an abandoned or retried interaction;
- normal: a comment, a rating of 3;
- low:    thumbs-up, a rating of 4 or 5, an accepted interaction.

"Negative" is defined once, by the `feedback.is_negative` generated column; `is_negative()` mirrors it for
code that has not stored the row yet.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from feedback_loop.core.config import TriageConfig

PRIORITIES = ("low", "normal", "high", "urgent")
NEGATIVE_SIGNALS = frozenset({"abandoned", "retried", "escalated"})
LOW_RATING = 2

# Failure modes named by keywords in the comment, checked in order; the first match wins.
COMMENT_FAILURE_MODES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("harmful", re.compile(r"\b(offensive|rude|toxic|harmful|unsafe|insult\w*|racist|sexist)\b", re.I)),
    ("latency", re.compile(r"\b(slow|timeout|timed out|took (too )?long|lag\w*)\b", re.I)),
    (
        "hallucination",
        re.compile(r"\b(made up|hallucinat\w*|invented|fabricat\w*|does ?n[o']t exist)\b", re.I),
    ),
    ("incomplete", re.compile(r"\b(incomplete|missing|truncated|cut off|partial)\b", re.I)),
    ("wrong_output", re.compile(r"\b(wrong|incorrect|mistake|inaccurate|not right|error)\b", re.I)),
    ("confusing", re.compile(r"\b(confus\w*|unclear|hard to understand|makes no sense)\b", re.I)),
)


# One pass that tells whether any of the patterns can match; most comments match none of them.
_ANY_FAILURE_MODE = re.compile("|".join(f"(?:{p.pattern})" for _, p in COMMENT_FAILURE_MODES), re.I)
# The same pass over a lower-cased ASCII comment, without re.I: faster per comment, and it is on the
# batch hot path. Only for ASCII, where lower() and re.I's case folding agree (for "ſ" or "K" they do not).
_ANY_FAILURE_MODE_LOWER = re.compile(_ANY_FAILURE_MODE.pattern)


def _may_name_failure(comment: str) -> bool:
    if comment.isascii():
        return _ANY_FAILURE_MODE_LOWER.search(comment.lower()) is not None
    return _ANY_FAILURE_MODE.search(comment) is not None


@dataclass(frozen=True)
class Triage:
    priority: str
    failure_mode: str | None


def is_negative(kind: str, rating: int | None = None, signal: str | None = None) -> bool:
    return (
        kind in ("thumbs_down", "correction")
        or (kind == "rating" and rating is not None and rating <= LOW_RATING)
        or (kind == "implicit" and signal in NEGATIVE_SIGNALS)
    )


def priority(
    kind: str, rating: int | None = None, signal: str | None = None, comment: str | None = None
) -> str:
    has_comment = bool(comment and comment.strip())
    if kind == "rating" and rating is not None and rating <= LOW_RATING:
        return "urgent"
    if kind == "thumbs_down":
        return "urgent" if has_comment else "high"
    if kind == "implicit":
        if signal == "escalated":
            return "urgent"
        return "high" if signal in NEGATIVE_SIGNALS else "low"
    if kind == "correction":
        return "high"
    if kind == "thumbs_up" or (kind == "rating" and rating is not None and rating >= 4):
        return "low"
    return "normal"


def failure_mode(
    kind: str, rating: int | None = None, signal: str | None = None, comment: str | None = None
) -> str | None:
    """A short tag for what went wrong, or None when nothing did (or nothing can be said)."""
    if comment and _may_name_failure(comment):
        for tag, pattern in COMMENT_FAILURE_MODES:
            if pattern.search(comment):
                return tag
    if kind == "correction":
        return "wrong_label"
    if kind == "implicit" and signal in NEGATIVE_SIGNALS:
        return f"user_{signal}"
    if is_negative(kind, rating, signal):
        return "unspecified"
    return None


def triage(
    kind: str, rating: int | None = None, signal: str | None = None, comment: str | None = None
) -> Triage:
    if not comment:  # then the verdict depends on three small values only: remember it (batch hot path)
        return _triage_without_comment(kind, rating, signal)
    return _triage(kind, rating, signal, comment)


@lru_cache(maxsize=512)
def _triage_without_comment(kind: str, rating: int | None, signal: str | None) -> Triage:
    return _triage(kind, rating, signal, None)


def _triage(kind: str, rating: int | None, signal: str | None, comment: str | None) -> Triage:
    # Comments of positive feedback ("no mistakes at all") must not tag a failure mode.
    mode = (
        failure_mode(kind, rating, signal, comment)
        if is_negative(kind, rating, signal) or kind == "comment"
        else None
    )
    return Triage(priority(kind, rating, signal, comment), mode)


def negative_share_exceeded(recent_negative_flags: Sequence[bool], settings: TriageConfig) -> bool:
    """True when more than the configured share of the last `negative_window` items is negative.

    Needs a full window: with fewer items one unhappy user would open a review on their own.
    """
    window = list(recent_negative_flags)[: settings.negative_window]
    if len(window) < settings.negative_window:
        return False
    return sum(window) / len(window) > settings.negative_share_threshold
