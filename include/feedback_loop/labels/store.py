"""Consensus labels and reviewer reliability in PostgreSQL.

`refresh` re-estimates every reviewer of a model and every reviewed trace's consensus from all their
answers (labels.consensus). `update_trace` recomputes one trace right after an answer, with the stored
reviewer accuracies, and says whether it needs another opinion. Both write `consensus_labels`, which
training, the eval cases, the gate and the dashboard read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from feedback_loop.core import queries
from feedback_loop.core.config import ModelConfig, ReviewConfig
from feedback_loop.labels import consensus
from feedback_loop.labels.consensus import Answer, Item

log = logging.getLogger(__name__)

# A settled trace this sure of its label can serve as a gold question for a reviewer who has not seen it.
GOLD_CONFIDENCE = 0.95
SINGLE, CORROBORATED, CONTESTED, SETTLED = "single", "corroborated", "contested", "settled"


@dataclass(frozen=True)
class Reviewed:
    """Everything said about a model's reviewed traces: items (with the model's probabilities), the
    label-bearing answers, each trace's predicted label and which answers were gold questions."""

    items: dict[str, Item]
    answers: list[Answer]
    predicted: dict[str, str]
    gold_answers: set[tuple[str, str]]  # (trace, reviewer)

    def by_trace(self) -> dict[str, list[Answer]]:
        """The answers grouped by trace, in their order: one pass, where filtering the list once per
        trace made a refresh quadratic (70,000 answers: 42 s, mostly that)."""
        grouped: dict[str, list[Answer]] = {}
        for answer in self.answers:
            grouped.setdefault(answer.item, []).append(answer)
        return grouped


@dataclass(frozen=True)
class TraceConsensus:
    trace_id: str
    label: str
    probability: float  # stored, the training weight: a lone answer read cautiously (_consensus_of)
    answers: int
    reviewers: list[str]
    agreeing: int
    status: str
    needs_another_opinion: bool
    point_probability: float  # every reviewer at their point estimate: what second opinions go by


MAX_SKIPPED_HOURS = 24  # refresh_if_changed refreshes at least this often
UNKNOWN_REVIEWER = "(unknown reviewer)"  # answers stored without a user id share one estimate


def _answer_of(row: dict[str, Any]) -> Answer | None:
    reviewer = row["user_id"] or UNKNOWN_REVIEWER
    if row["kind"] in ("thumbs_up", "correction") and row["label"] is not None:
        return Answer(row["trace_id"], reviewer, label=row["label"], sequence=int(row["id"]))
    if row["kind"] == "thumbs_down":
        return Answer(row["trace_id"], reviewer, rejects=row["output_label"], sequence=int(row["id"]))
    return None


def load(conn: psycopg.Connection, model_name: str, trace_id: str | None = None) -> Reviewed:
    rows = conn.execute(
        queries.sql("labels/review_answers"), {"model_name": model_name, "trace_id": trace_id}
    ).fetchall()
    items: dict[str, Item] = {}
    latest: dict[tuple[str, str], Answer] = {}  # one vote per person and trace: their latest
    predicted: dict[str, str] = {}
    gold: set[tuple[str, str]] = set()
    for row in rows:
        answer = _answer_of(row)
        if answer is None:
            continue
        items.setdefault(answer.item, Item(answer.item, row["probabilities"] or {}))
        predicted[answer.item] = row["output_label"]
        latest[(answer.item, answer.reviewer)] = answer
        if row["reason"] == "gold":
            gold.add((answer.item, answer.reviewer))
    return Reviewed(items, list(latest.values()), predicted, gold)


@dataclass(frozen=True)
class Reliability:
    """What the last refresh stored about a model's reviewers, as one trace's consensus uses it."""

    accuracy: dict[str, float]  # the point estimate
    cautious: dict[str, float]  # the lower end of the credible interval: how far a lone answer is trusted
    unreliable: set[str]  # credibly below the accuracy floor

    def cautious_of(self, reviewer: str) -> float:
        """A reviewer no refresh has estimated yet gets the prior's lower end, as a refresh would give."""
        found = self.cautious.get(reviewer)
        return found if found is not None else consensus.newcomer_lower()


def stored_reliability(conn: psycopg.Connection, model_name: str, floor: float) -> Reliability:
    rows = conn.execute(queries.sql("labels/reviewer_accuracy"), {"model_name": model_name}).fetchall()
    accuracy = {row["reviewer"]: float(row["accuracy"]) for row in rows}
    # Before the first refresh after migration 0014 the lower end is NULL: a known reviewer is then
    # trusted alone no more than a newcomer, nor more than their point estimate.
    cautious = {
        row["reviewer"]: float(
            row["accuracy_lower"]
            if row["accuracy_lower"] is not None
            else min(row["accuracy"], consensus.newcomer_lower())
        )
        for row in rows
    }
    unreliable = {row["reviewer"] for row in rows if consensus.credibly_below(row, floor)}
    return Reliability(accuracy, cautious, unreliable)


def unreliable_reviewers(conn: psycopg.Connection, model_name: str, floor: float) -> set[str]:
    """Reviewers credibly below `floor`: even the upper end of their credible interval is below it."""
    return stored_reliability(conn, model_name, floor).unreliable


def _status(
    answers: Sequence[Answer], label: str, probability: float, review: ReviewConfig
) -> tuple[str, int]:
    agreeing = len({a.reviewer for a in answers if a.label == label})
    if len(answers) <= 1:
        return SINGLE, agreeing
    if agreeing >= 2:
        return CORROBORATED, agreeing
    settled = probability >= review.consensus_confidence or len(answers) >= review.max_reviews_per_item
    return (SETTLED if settled else CONTESTED), agreeing


def needs_another_opinion(
    answers: Sequence[Answer],
    predicted: str,
    label: str,
    probability: float,
    review: ReviewConfig,
    unreliable: Collection[str] = (),
) -> bool:
    """Not settled by people yet: someone disagrees with the consensus (a reviewer the model's confidence
    outweighs, or two reviewers apart), a correction the consensus is not sure of, a label the config
    calls contested, or only answers from `unreliable` reviewers (credibly below the accuracy floor)."""
    if len(answers) >= review.max_reviews_per_item:
        return False
    if len({a.reviewer for a in answers if a.label == label}) >= 2:
        return False
    overruled = any(
        (a.label is not None and a.label != label) or (a.rejects is not None and a.rejects == label)
        for a in answers
    )
    corrected = any(a.rejects is not None or (a.label is not None and a.label != predicted) for a in answers)
    contested = bool(set(review.contested_labels) & ({predicted} | {a.label for a in answers if a.label}))
    only_unreliable = bool(answers) and all(a.reviewer in unreliable for a in answers)
    unsure = probability < review.consensus_confidence
    return overruled or only_unreliable or ((corrected or contested) and unsure)


def _consensus_of(
    trace: str,
    answers: list[Answer],
    reviewed: Reviewed,
    accuracy: dict[str, float],
    labels: list[str],
    review: ReviewConfig,
    unreliable: Collection[str],
    cautious: Callable[[str], float],
) -> TraceConsensus:
    """The consensus of one trace from `answers`, its answers in `reviewed`. A lone answer's label is
    stored with the probability it has with its reviewer read cautiously (`cautious`: the lower end of
    their credible interval) when that is lower: that is the label's training weight. Read cautiously, a
    reviewer the model overrules would make the model's label surer, so then the point estimate's
    probability stays. Whether the trace needs a second opinion, and how urgently, is judged on the point
    estimate."""
    posterior = consensus.posterior(reviewed.items[trace], answers, accuracy, labels)
    label = max(sorted(posterior), key=lambda candidate: posterior[candidate])
    probability = posterior[label]
    status, agreeing = _status(answers, label, probability, review)
    stored = probability
    if len(answers) == 1:
        lone = {answers[0].reviewer: cautious(answers[0].reviewer)}
        stored = min(probability, consensus.posterior(reviewed.items[trace], answers, lone, labels)[label])
    return TraceConsensus(
        trace_id=trace,
        label=label,
        probability=stored,
        point_probability=probability,
        answers=len(answers),
        reviewers=sorted({a.reviewer for a in answers}),
        agreeing=agreeing,
        status=status,
        needs_another_opinion=needs_another_opinion(
            answers, reviewed.predicted[trace], label, probability, review, unreliable
        ),
    )


def _write_consensus(conn: psycopg.Connection, model_name: str, rows: Sequence[TraceConsensus]) -> None:
    if not rows:
        return
    conn.execute(
        queries.sql("labels/upsert_consensus"),
        {
            "model_name": model_name,
            "trace_ids": [r.trace_id for r in rows],
            "labels": [r.label for r in rows],
            "probabilities": [r.probability for r in rows],
            "point_probabilities": [r.point_probability for r in rows],
            "answers": [r.answers for r in rows],
            "reviewers": [json.dumps(r.reviewers) for r in rows],
            "agreeing": [r.agreeing for r in rows],
            "statuses": [r.status for r in rows],
        },
    )


def update_trace(
    conn: psycopg.Connection, model_name: str, review: ReviewConfig, trace_id: str
) -> TraceConsensus | None:
    """Recompute one trace's consensus after an answer (stored reviewer accuracies, no re-estimation);
    None when nothing said about it carries a label."""
    reviewed = load(conn, model_name, trace_id)
    if str(trace_id) not in reviewed.items:
        return None
    labels = consensus.labels_of(reviewed.items.values(), reviewed.answers)
    stored = stored_reliability(conn, model_name, review.min_reviewer_accuracy)
    result = _consensus_of(
        str(trace_id),
        reviewed.answers,  # loaded for this trace alone
        reviewed,
        stored.accuracy,
        labels,
        review,
        stored.unreliable,
        stored.cautious_of,
    )
    _write_consensus(conn, model_name, [result])
    return result


@dataclass(frozen=True)
class ReviewerStats:
    reviewer: str
    accuracy: float
    accuracy_lower: float  # the lower end of the one-sided credible interval (consensus.CREDIBLE)
    accuracy_upper: float  # ... and its upper end
    answers: int
    gold_answers: int
    gold_correct: int
    compared: int  # answers on traces someone else answered too
    agreed: int  # ... that equal the consensus of the others


def _reviewer_stats(
    reviewed: Reviewed, estimate: consensus.Estimate, labels: list[str], lower: dict[str, float]
) -> list[ReviewerStats]:
    by_item = reviewed.by_trace()
    counts: dict[str, list[int]] = {r: [0, 0, 0, 0, 0] for r in estimate.accuracy}
    for item, answers in by_item.items():
        for answer in answers:
            tally = counts[answer.reviewer]
            tally[0] += 1
            others = [a for a in answers if a.reviewer != answer.reviewer]
            if not others:
                continue
            without = consensus.posterior(reviewed.items[item], others, estimate.accuracy, labels)
            their_label = max(sorted(without), key=lambda candidate: without[candidate])
            agrees = (
                answer.label == their_label if answer.label is not None else answer.rejects != their_label
            )
            tally[3] += 1
            tally[4] += int(agrees)
            if (item, answer.reviewer) in reviewed.gold_answers:
                tally[1] += 1
                tally[2] += int(agrees)
    return [
        ReviewerStats(
            reviewer,
            estimate.accuracy[reviewer],
            lower[reviewer],
            estimate.upper(reviewer),
            *counts[reviewer],
        )
        for reviewer in sorted(estimate.accuracy)
    ]


@dataclass
class Refreshed:
    estimate: consensus.Estimate
    traces: list[TraceConsensus]
    reviewers: list[ReviewerStats]


def refresh_if_changed(conn: psycopg.Connection, model: ModelConfig) -> Refreshed | None:
    """`refresh`, unless no reviewer answer came or went since the last refresh under the same review
    settings (None then): it would write the same estimates, and its cost grows with every answer the
    model ever got, where aggregation's should follow the interval. Each answer also updates its own
    trace's consensus at once (`update_trace`), so nothing waits for the next refresh but the reviewers'
    estimates."""
    mark = _answers_mark(conn, model)
    last = conn.execute(
        queries.sql("labels/refresh_mark"),
        {"model_name": model.name, "max_age": f"{MAX_SKIPPED_HOURS} hours"},
    ).fetchone()
    # At least one refresh a day all the same: whatever the mark cannot see (rows removed by hand, a
    # change of the rules without RULES_VERSION) is then stale for a day at most.
    if (
        last is not None
        and last["recent"]
        and (last["answers"], last["last_answer"], last["settings"]) == mark
    ):
        log.info(
            "%s: consensus and reviewer estimates unchanged since %s (%d answer(s), none new)",
            model.name,
            last["refreshed_at"].isoformat(timespec="seconds"),
            mark[0],
        )
        return None
    return refresh(conn, model, mark)


def _answers_mark(conn: psycopg.Connection, model: ModelConfig) -> tuple[int, int, str]:
    """(answers, highest feedback id among them, review settings): what a refresh is made from."""
    row = conn.execute(queries.sql("labels/answers_mark"), {"model_name": model.name}).fetchone()
    settings = f"rules {consensus.RULES_VERSION} {model.review.model_dump_json()}"
    return int(row["answers"]), int(row["last_answer"]), settings


def refresh(
    conn: psycopg.Connection, model: ModelConfig, mark: tuple[int, int, str] | None = None
) -> Refreshed:
    """Re-estimate every reviewer and every reviewed trace of the model, and record what from
    (`mark`, taken before the answers are read: an answer stored meanwhile makes the next check refresh
    again); commits nothing itself."""
    answers, last_answer, settings = mark or _answers_mark(conn, model)
    conn.execute(
        queries.sql("labels/upsert_refresh_mark"),
        {"model_name": model.name, "answers": answers, "last_answer": last_answer, "settings": settings},
    )
    reviewed = load(conn, model.name)
    labels = consensus.labels_of(reviewed.items.values(), reviewed.answers)
    estimate = consensus.estimate(list(reviewed.items.values()), reviewed.answers, known_labels=labels)
    floor = model.review.min_reviewer_accuracy
    unreliable = {r for r in estimate.accuracy if estimate.upper(r) < floor}
    lower = {r: estimate.lower(r) for r in estimate.accuracy}  # a Beta quantile each: once per reviewer
    by_trace = reviewed.by_trace()
    traces = [
        _consensus_of(
            t,
            by_trace.get(t, []),
            reviewed,
            estimate.accuracy,
            labels,
            model.review,
            unreliable,
            lower.__getitem__,
        )
        for t in sorted(reviewed.items)
    ]
    stats = _reviewer_stats(reviewed, estimate, labels, lower)
    _write_consensus(conn, model.name, traces)
    if stats:
        conn.execute(
            queries.sql("labels/upsert_reviewer_accuracy"),
            {
                "model_name": model.name,
                "reviewers": [s.reviewer for s in stats],
                "accuracy": [s.accuracy for s in stats],
                "accuracy_lower": [s.accuracy_lower for s in stats],
                "accuracy_upper": [s.accuracy_upper for s in stats],
                "answers": [s.answers for s in stats],
                "gold_answers": [s.gold_answers for s in stats],
                "gold_correct": [s.gold_correct for s in stats],
                "compared": [s.compared for s in stats],
                "agreed": [s.agreed for s in stats],
            },
        )
    log.info(
        "%s: consensus for %d trace(s) from %d answer(s) by %d reviewer(s) (%d EM iterations)",
        model.name,
        len(traces),
        len(reviewed.answers),
        len(stats),
        estimate.iterations,
    )
    return Refreshed(estimate, traces, stats)


def consensus_labels(conn: psycopg.Connection, model_name: str) -> dict[str, dict[str, Any]]:
    """trace id -> its stored consensus (label, probability, status, reviewers, output_label, ...)."""
    rows = conn.execute(queries.sql("labels/consensus_for_model"), {"model_name": model_name}).fetchall()
    return {row["trace_id"]: row for row in rows}
