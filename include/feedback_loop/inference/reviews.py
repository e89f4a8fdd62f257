"""Which questions people are asked in a run, and what their answers change.

A run's review budget is spent in this order (`review` in the model's config):
1. gold questions: `gold_share` of the budget, traces whose label agreeing reviewers settled, asked of
   someone who has not answered them (how reliable is each reviewer?);
2. audit questions: `audit_share` of the budget, a uniform random sample of the predictions the run
   scored, confident or not (how accurate is this version, without the bias of doubtful cases?);
3. second opinions: corrections and contested answers whose consensus is not settled yet, each for a
   reviewer who has not answered that trace;
4. the least confident predictions (or a random sample, for the simulator's baseline) with the rest.
Quotas a category cannot fill go to the next ones, so the whole budget is used whenever there is work.

Every answer becomes feedback and updates the trace's consensus label (labels.store); when the consensus
is not settled (a correction by one person, say) a second opinion is queued for another reviewer.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from feedback_loop.core import config, queries, store
from feedback_loop.core.config import ModelConfig, ReviewConfig
from feedback_loop.core.errors import InvalidInputError, NotFoundError
from feedback_loop.inference import review, routing
from feedback_loop.labels import store as labels

log = logging.getLogger(__name__)

SECOND_OPINION, AUDIT, GOLD, LOW_CONFIDENCE = "second_opinion", "audit", "gold", "low_confidence"


@dataclass(frozen=True)
class Quotas:
    gold: int
    audit: int

    @classmethod
    def of(cls, budget: int, model: ModelConfig) -> Quotas:
        # Rounded down: a small budget asks no gold or audit question rather than only those.
        share = model.review
        return cls(
            gold=math.floor(budget * share.gold_share + 1e-9),
            audit=math.floor(budget * share.audit_share + 1e-9),
        )


def review_item(row: Mapping[str, Any]) -> review.ReviewItem:
    """A row of inference/review_item_detail as what review.build_review needs."""
    return review.ReviewItem(
        item_id=int(row["id"]),
        trace_id=row["trace_id"],
        model_name=row["model_name"],
        model_version=int(row["model_version"]),
        input=row["input"],
        output_label=row["output_label"],
        confidence=float(row["confidence"]),
        probabilities=row["probabilities"],
        slice=row["slice"] or {},
        opened_at=row["opened_at"],
    )


def eligible_reviewers(
    model: ModelConfig | None, excluded: Sequence[str], unreliable: Sequence[str] = ()
) -> list[str] | None:
    """The configured reviewers who may answer (None: anyone may; [] nobody is left). Reviewers whose
    estimated accuracy is below the floor get no new questions while anyone else is left."""
    if model is None or not model.reviewers:
        return None
    left = [name for name in model.reviewers if name not in set(excluded)]
    trusted = [name for name in left if name not in set(unreliable)]
    return trusted or left


def _queue_gold(conn: psycopg.Connection, model: ModelConfig, limit: int, seed: int) -> list[int]:
    if limit <= 0:
        return []
    rows = conn.execute(
        queries.sql("inference/gold_candidates"),
        {
            "model_name": model.name,
            "min_probability": labels.GOLD_CONFIDENCE,
            "limit": limit * 4,
            "seed": seed,
        },
    ).fetchall()
    queued: list[int] = []
    for row in rows:
        if len(queued) >= limit:
            break
        if eligible_reviewers(model, row["reviewers"]) == []:
            continue
        found = conn.execute(
            queries.sql("inference/queue_follow_up"),
            {
                "trace_id": row["trace_id"],
                "reason": GOLD,
                "priority": 0.0,
                "excluded": list(row["reviewers"]),
            },
        ).fetchone()
        if found:
            queued.append(int(found["id"]))
    return queued


def _queue_audit(
    conn: psycopg.Connection, model: ModelConfig, limit: int, run_id: str | None, seed: int
) -> list[int]:
    if limit <= 0 or run_id is None:
        return []
    rows = conn.execute(
        queries.sql("inference/queue_audit"),
        {"model_name": model.name, "run_id": run_id, "limit": limit, "seed": seed},
    ).fetchall()
    return [int(r["id"]) for r in rows]


def _queue_unsettled(conn: psycopg.Connection, model: ModelConfig, limit: int) -> None:
    """Queue second opinions that the latest reliability estimates call for: a reviewer found unreliable
    after they answered leaves single answers that count only once someone agrees."""
    rows = conn.execute(
        queries.sql("inference/unsettled_traces"),
        {
            "model_name": model.name,
            "max_reviews": model.review.max_reviews_per_item,
            "floor": model.review.min_reviewer_accuracy,
            "limit": limit,
        },
    ).fetchall()
    for row in rows:
        if eligible_reviewers(model, row["reviewers"]) == []:
            continue
        conn.execute(
            queries.sql("inference/queue_follow_up"),
            {
                "trace_id": row["trace_id"],
                "reason": SECOND_OPINION,
                "priority": 1.0 - float(row["point_probability"]),
                "excluded": list(row["reviewers"]),
            },
        )


def _second_opinions(conn: psycopg.Connection, model: ModelConfig, limit: int) -> list[int]:
    if limit <= 0:
        return []
    _queue_unsettled(conn, model, limit)
    rows = conn.execute(
        queries.sql("inference/second_opinion_candidates"), {"model_name": model.name, "limit": limit * 4}
    ).fetchall()
    return [int(r["id"]) for r in rows if eligible_reviewers(model, r["excluded_reviewers"]) != []][:limit]


def _low_confidence(
    conn: psycopg.Connection, model: ModelConfig, limit: int, strategy: str, seed: int | None
) -> list[int]:
    if limit <= 0:
        return []
    rows = conn.execute(
        queries.sql("inference/queued_candidates"),
        {"model_name": model.name, "limit": limit if strategy == routing.LOWEST_CONFIDENCE else None},
    ).fetchall()
    candidates = [routing.Candidate(int(r["id"]), float(r["confidence"]), r["created_at"]) for r in rows]
    return [c.item_id for c in routing.choose(candidates, limit, strategy, seed=seed)]


def choose(
    conn: psycopg.Connection,
    model: ModelConfig,
    budget: int,
    *,
    scored_run_id: str | None,
    strategy: str,
    seed: int | None,
) -> list[int]:
    """The review items this run opens, in the order described in the module docstring."""
    quotas = Quotas.of(budget, model)
    salt = seed if seed is not None else 0
    chosen = _queue_gold(conn, model, quotas.gold, salt)
    chosen += _queue_audit(conn, model, quotas.audit, scored_run_id, salt)
    chosen += _second_opinions(conn, model, budget - len(chosen))
    chosen += _low_confidence(conn, model, budget - len(chosen), strategy, seed)
    return chosen


def open_reviews(
    conn: psycopg.Connection,
    model: ModelConfig,
    *,
    budget: int,
    hitl_ref: Mapping[str, Any],
    threshold: float | None = None,
    strategy: str = routing.LOWEST_CONFIDENCE,
    seed: int | None = None,
    first_map_index: int = 0,
    scored_run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Choose up to `budget` questions, mark them open and return one review task's content each.

    The returned list is in review-task order: element i is the task with map index first_map_index + i,
    and each item's `hitl_ref` records `hitl_ref` plus that map index, so an answer leads back to its task.
    `scored_run_id`: the run whose predictions the audit sample is drawn from (None: no audit).
    """
    if budget < 0:
        raise InvalidInputError(f"review_budget must be >= 0, got {budget}")
    with conn.transaction():
        ids = choose(conn, model, budget, scored_run_id=scored_run_id, strategy=strategy, seed=seed)
        if not ids:
            return []
        rows = conn.execute(queries.sql("inference/review_item_detail"), {"ids": ids}).fetchall()
        details = {int(r["id"]): r for r in rows}
        refs = [json.dumps({**hitl_ref, "map_index": first_map_index + i}) for i in range(len(ids))]
        unreliable = sorted(labels.unreliable_reviewers(conn, model.name, model.review.min_reviewer_accuracy))
        allowed = [
            eligible_reviewers(model, details[i]["excluded_reviewers"], unreliable) or list(model.reviewers)
            for i in ids
        ]
        conn.execute(
            queries.sql("inference/open_items"),
            {"ids": ids, "hitl_refs": refs, "reviewers": [json.dumps(a) for a in allowed]},
        )
        items = {
            int(r["id"]): r
            for r in conn.execute(queries.sql("inference/review_item_detail"), {"ids": ids}).fetchall()
        }
    tasks = []
    for item_id, reviewers in zip(ids, allowed, strict=True):
        content = review.build_review(review_item(items[item_id]), threshold, display=model.input_display)
        tasks.append(
            {
                "review_item_id": item_id,
                "reviewers": reviewers,
                "reason": items[item_id]["reason"],
                **asdict(content),
            }
        )
    reasons = {}
    for task in tasks:
        reasons[task["reason"]] = reasons.get(task["reason"], 0) + 1
    log.info("%s: opened %s review(s) %s: items %s", model.name, len(ids), reasons, ids)
    return tasks


def _responder(answer: review.Answer) -> str | None:
    who = answer.responded_by or {}
    return str(who.get("id") or who.get("name") or "") or None


def _configured(model_name: str) -> ModelConfig | None:
    try:
        return config.load().model(model_name)
    except NotFoundError:
        return None  # an unconfigured model (a test, a retired model) follows the default review rules


def _follow_up(
    conn: psycopg.Connection, model_name: str, model: ModelConfig | None, trace_id: str
) -> labels.TraceConsensus | None:
    """Update the trace's consensus and queue another opinion when it is not settled."""
    review_rules = model.review if model is not None else ReviewConfig()
    result = labels.update_trace(conn, model_name, review_rules, trace_id)
    if result is None or not result.needs_another_opinion:
        return result
    if eligible_reviewers(model, result.reviewers) == []:
        log.info(
            "%s: trace %s needs another opinion; every configured reviewer answered it", model_name, trace_id
        )
        return result
    conn.execute(
        queries.sql("inference/queue_follow_up"),
        {
            "trace_id": trace_id,
            "reason": SECOND_OPINION,
            "priority": 1.0 - result.point_probability,
            "excluded": result.reviewers,
        },
    )
    return result


def answer_record(answer: review.Answer, via: str) -> dict[str, Any]:
    """The answer as stored on its review item (review_items.answer)."""
    return {
        "chosen_options": list(answer.chosen_options),
        "params_input": dict(answer.params_input),
        "responded_by": dict(answer.responded_by) if answer.responded_by is not None else None,
        "responded_at": answer.responded_at.isoformat(),
        "via": via,
    }


def record_answer(
    conn: psycopg.Connection,
    item_id: int,
    answer: review.Answer,
    model: ModelConfig | None = None,
    *,
    via: str = "airflow",
) -> review.Outcome:
    """Turn one answer into feedback, close its review item (keeping the answer as given) and update the
    trace's consensus (queueing a second opinion when it is not settled), in one transaction.

    A repeated call (task retry) finds the item closed and stores nothing new; the feedback row also
    carries an idempotency key per review item. An answer from someone who already answered the trace
    is not counted (the item is asked again): opinions must be independent.
    `model`: the model's configuration (default: the configured model of the item). `via`: which door
    the answer came through (airflow | api | simulation).
    """
    answer, notes = review.usable(answer)
    if notes:
        log.warning(
            "review item %s: the answer was recorded after these changes: %s", item_id, "; ".join(notes)
        )
    stored = Jsonb(answer_record(answer, via))
    with conn.transaction():
        rows = conn.execute(queries.sql("inference/review_item_detail"), {"ids": [item_id]}).fetchall()
        if not rows:
            raise InvalidInputError(f"review_item_id {item_id}: no such review item")
        row = rows[0]
        if row["status"] != "open":
            return review.Outcome(row["status"], None, f"review item {item_id} was already {row['status']}")
        model = model or _configured(row["model_name"])
        responder = _responder(answer)
        if responder is not None and responder in (row["excluded_reviewers"] or []):
            outcome = review.Outcome(
                "answered", None, f"{responder} already answered trace {row['trace_id']}: not counted again"
            )
            conn.execute(
                queries.sql("inference/close_item"),
                {"id": item_id, "status": "answered", "answered_at": answer.responded_at, "answer": stored},
            )
            conn.execute(
                queries.sql("inference/queue_follow_up"),
                {
                    "trace_id": str(row["trace_id"]),
                    "reason": row["reason"],
                    "priority": 1.0,
                    "excluded": row["excluded_reviewers"],
                },
            )
            log.info("%s", outcome.summary)
            return outcome
        outcome = review.outcome_of_answer(review_item(row), answer)
        if outcome.feedback is not None:
            store.record_feedback(conn, outcome.feedback, idempotency_key=f"review-item:{item_id}")
        conn.execute(
            queries.sql("inference/close_item"),
            {
                "id": item_id,
                "status": outcome.status,
                "answered_at": answer.responded_at,
                "answer": stored if outcome.status == "answered" else None,
            },
        )
        if outcome.feedback is not None and outcome.feedback.kind in (
            "thumbs_up",
            "correction",
            "thumbs_down",
        ):
            _follow_up(conn, row["model_name"], model, str(row["trace_id"]))
    log.info("%s", outcome.summary)
    return outcome


@dataclass(frozen=True)
class Recorded:
    """A closed review item: how it was answered, and what it became."""

    item_id: int
    status: str  # answered | expired
    answer: dict[str, Any] | None  # as answer_record() stored it (None: expired, or closed before 0010)
    feedback_id: int | None
    feedback_kind: str | None
    label: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recorded_answer(conn: psycopg.Connection, item_id: int) -> Recorded | None:
    """The answer a review item was closed with; None while it is still queued or open."""
    row = conn.execute(queries.sql("inference/recorded_answer"), {"id": item_id}).fetchone()
    if row is None:
        raise InvalidInputError(f"review_item_id {item_id}: no such review item")
    if row["status"] not in ("answered", "expired"):
        return None
    return Recorded(
        item_id, row["status"], row["answer"], row["feedback_id"], row["feedback_kind"], row["label"]
    )


def item_of_task(
    conn: psycopg.Connection, dag_id: str, run_id: str, task_id: str, map_index: int
) -> int | None:
    """The review item a review task (HITL task instance) asks about; None for tasks that are not ours."""
    row = conn.execute(
        queries.sql("inference/item_of_task"),
        {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index},
    ).fetchone()
    return int(row["id"]) if row else None


def requeue_unfinished(conn: psycopg.Connection, dag_id: str, run_id: str) -> list[int]:
    """Put back in the queue the items of a run whose review task ended without recording an answer."""
    with conn.transaction():
        rows = conn.execute(
            queries.sql("inference/requeue_unfinished"), {"dag_id": dag_id, "run_id": run_id}
        ).fetchall()
    return [int(r["id"]) for r in rows]
