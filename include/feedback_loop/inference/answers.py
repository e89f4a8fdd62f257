"""Answers given through the feedback API's answer route: checked, recorded in PostgreSQL first, and only
then handed to the review task waiting in Airflow.

Recording first is what makes an accepted answer safe: whatever state the review task is in (starting,
parked, retrying after Airflow lost track of it), the task finds the recorded answer when it runs and
finishes with it (adapters.airflow_hitl.ReviewOperator). A retry of the same answer by the same person
replays the first result; a different answer to a closed item is a conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from feedback_loop.core import queries
from feedback_loop.core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from feedback_loop.inference import review, reviews

# (dag_id, the reviewers the item is assigned to; empty = anyone) -> may this user answer it?
MayAnswer = Callable[[str, Sequence[str]], bool]


class AnswerProblems(InvalidInputError):
    """The answer cannot be recorded as given; `problems` names each field and the reason."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in problems))


@dataclass(frozen=True)
class Answered:
    review_item_id: int
    status: str  # answered | expired
    replayed: bool  # the same answer by the same person was recorded before: nothing new was stored
    feedback_id: int | None
    feedback_kind: str | None
    label: str | None
    hitl_ref: dict[str, Any] | None  # the review task the item was asked in

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same(
    given: Mapping[str, Any] | None, chosen: Sequence[str], params: Mapping[str, Any], who: str
) -> bool:
    if not given:
        return False
    by = given.get("responded_by") or {}
    return (
        given.get("chosen_options") == list(chosen)
        and {k: v for k, v in (given.get("params_input") or {}).items() if v is not None}
        == {k: v for k, v in params.items() if v is not None}
        and str(by.get("id")) == who
    )


def answer(
    conn: psycopg.Connection,
    item_id: int,
    chosen_options: Sequence[str],
    params_input: Mapping[str, Any],
    *,
    responder: Mapping[str, str],
    may_answer: MayAnswer,
) -> Answered:
    """Record one person's answer to an open review item, committed before this returns.

    Raises NotFoundError (no such item), ForbiddenError (not theirs to answer), ConflictError (closed
    with another answer, or not open), AnswerProblems (each field that is wrong, and why).
    """
    rows = conn.execute(queries.sql("inference/review_item_detail"), {"ids": [item_id]}).fetchall()
    conn.commit()  # the detail query locks the row; recording takes its own transaction below
    if not rows:
        raise NotFoundError(f"no review item {item_id}")
    row = rows[0]
    ref = row["hitl_ref"] or {}
    if not may_answer(str(ref.get("dag_id") or ""), list(row["assigned_reviewers"] or [])):
        raise ForbiddenError(f"review item {item_id} is assigned to other reviewers")
    who = str(responder.get("id") or "")
    if row["status"] == "open" and who in (row["excluded_reviewers"] or []):
        raise ForbiddenError(
            f"{who} already answered trace {row['trace_id']}: review item {item_id} asks someone else"
        )
    if row["status"] in ("answered", "expired"):
        recorded = reviews.recorded_answer(conn, item_id)
        if recorded is not None and _same(recorded.answer, chosen_options, params_input, who):
            return _answered(recorded, ref, replayed=True)
        by = ((recorded.answer or {}).get("responded_by") or {}).get("id") if recorded else None
        raise ConflictError(
            f"review item {item_id} is already {row['status']}"
            + (
                f" (answered by {by} at {row['answered_at'].isoformat()})"
                if by and row["answered_at"]
                else ""
            )
        )
    if row["status"] != "open":
        raise ConflictError(f"review item {item_id} is not open for answers (it is {row['status']})")
    options = review.build_review(reviews.review_item(row)).options
    problems = review.answer_problems(options, chosen_options, params_input)
    if problems:
        raise AnswerProblems(problems)
    given = review.Answer(
        chosen_options=list(chosen_options),
        params_input={k: v for k, v in params_input.items() if v is not None},
        responded_at=datetime.now(UTC),
        responded_by=dict(responder),
    )
    reviews.record_answer(conn, item_id, given, via="api")
    recorded = reviews.recorded_answer(conn, item_id)
    if recorded is None:  # closed by another door between our read and our write: theirs stands
        raise ConflictError(f"review item {item_id} was answered meanwhile")
    if not _same(recorded.answer, chosen_options, params_input, who):
        raise ConflictError(f"review item {item_id} was answered meanwhile by someone else")
    return _answered(recorded, ref, replayed=False)


def _answered(recorded: reviews.Recorded, ref: dict[str, Any], *, replayed: bool) -> Answered:
    return Answered(
        recorded.item_id,
        recorded.status,
        replayed,
        recorded.feedback_id,
        recorded.feedback_kind,
        recorded.label,
        ref or None,
    )
