"""One inference round: score pending requests with the champion, log every prediction, queue the
uncertain ones for review, open a budgeted set of reviews and record the answers.

Plain Python on a psycopg connection; the `feedback_inference` DAG calls these functions from its tasks.
Every write path is set-based (COPY for predictions, one UPDATE per batch) and runs in one transaction,
so a failed round stores nothing and a retry starts from the same state.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from feedback_loop.core import queries, store
from feedback_loop.core.config import ModelConfig
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import review, routing
from feedback_loop.registry import versions as registry

log = logging.getLogger(__name__)

LOW_CONFIDENCE = "low_confidence"


@dataclass(frozen=True)
class PendingRequest:
    id: int
    input: dict[str, Any]
    slice: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredBatch:
    predictions: list[store.Prediction]
    request_ids: list[int]
    failures: dict[int, str]


@dataclass(frozen=True)
class BatchResult:
    """What one scoring round did; returned to the DAG (plain JSON-able values only)."""

    model_name: str
    model_version: int
    threshold: float
    scored: int
    failed: int
    below_threshold: int
    queued_now: int
    expired: int
    queued_total: int
    trace_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_columns(entry: registry.ModelVersion, estimator: Any) -> list[str]:
    """The columns the champion reads: recorded at registration, else what the estimator was fitted on."""
    columns = list(entry.feature_columns) or [str(c) for c in getattr(estimator, "feature_names_in_", [])]
    if not columns:
        raise InvalidInputError(
            f"{entry.model_name} v{entry.version}: no feature columns recorded; register it with feature names"
        )
    return columns


def slice_attributes(request: PendingRequest, slice_columns: Sequence[str]) -> dict[str, Any]:
    """Slice values sent with the request, plus any configured slice column found in the input."""
    values = dict(request.slice)
    for column in slice_columns:
        if column in request.input and column not in values:
            values[column] = request.input[column]
    return values


def score(
    estimator: Any,
    entry: registry.ModelVersion,
    requests: Sequence[PendingRequest],
    *,
    slice_columns: Sequence[str] = (),
    run_id: str | None = None,
) -> ScoredBatch:
    """Predictions with a fresh trace id per request. Requests missing a feature, or whose values the
    model cannot read, are returned as failures with the reason; the rest of the batch is still scored."""
    import numpy as np
    import pandas as pd

    columns = feature_columns(entry, estimator)
    failures: dict[int, str] = {}
    usable: list[PendingRequest] = []
    for request in requests:
        missing = [c for c in columns if c not in request.input]
        if missing:
            failures[request.id] = f"missing feature column(s): {', '.join(missing[:10])}"
        else:
            usable.append(request)

    def frame(batch: Sequence[PendingRequest]) -> pd.DataFrame:
        return pd.DataFrame([{c: r.input[c] for c in columns} for r in batch], columns=columns)

    probabilities: list[np.ndarray | None] = []
    if usable:
        try:
            probabilities = list(estimator.predict_proba(frame(usable)))
        except (ValueError, TypeError) as batch_error:
            # One bad row must not sink the batch: find it by scoring row by row.
            log.warning("batch scoring failed (%s); scoring %s requests one by one", batch_error, len(usable))
            probabilities = []
            for request in usable:
                try:
                    probabilities.append(estimator.predict_proba(frame([request]))[0])
                except (ValueError, TypeError) as exc:
                    failures[request.id] = f"model could not read the input: {str(exc)[:300]}"
                    probabilities.append(None)

    classes = [str(c) for c in estimator.classes_]
    predictions: list[store.Prediction] = []
    scored_ids: list[int] = []
    for request, proba in zip(usable, probabilities, strict=True):
        if proba is None:
            continue
        values = [float(p) for p in proba]
        if not all(math.isfinite(v) for v in values):
            failures[request.id] = "model returned non-finite probabilities"
            continue
        best = int(np.argmax(values))
        predictions.append(
            store.Prediction(
                trace_id=uuid.uuid4(),
                model_name=entry.model_name,
                model_version=entry.version,
                input=request.input,
                output_label=classes[best],
                confidence=min(1.0, max(0.0, values[best])),
                probabilities=dict(zip(classes, values, strict=True)),
                slice=slice_attributes(request, slice_columns),
                source_run_id=run_id,
            )
        )
        scored_ids.append(request.id)
    return ScoredBatch(predictions=predictions, request_ids=scored_ids, failures=failures)


def fetch_pending(conn: psycopg.Connection, model_name: str, limit: int) -> list[PendingRequest]:
    rows = conn.execute(
        queries.sql("inference/pending_requests"), {"model_name": model_name, "limit": limit}
    ).fetchall()
    return [PendingRequest(id=int(r["id"]), input=r["input"], slice=r["slice"] or {}) for r in rows]


def score_batch(
    conn: psycopg.Connection,
    model: ModelConfig,
    *,
    threshold: float,
    batch_size: int,
    run_id: str | None = None,
) -> BatchResult:
    """Score up to `batch_size` pending requests of `model` with its champion, in one transaction.

    The champion is loaded (checksum and trusted types verified) before anything is read or written, so
    a tampered artifact fails the round with nothing logged. Predictions below `threshold` are queued
    for review; queued items older than the configured age expire.
    """
    routing.below_threshold([], threshold)  # validates the threshold before any work
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    estimator, entry = registry.load(conn, model.name)
    with conn.transaction():
        requests = fetch_pending(conn, model.name, batch_size)
        batch = score(estimator, entry, requests, slice_columns=model.slice_columns, run_id=run_id)
        store.log_predictions(conn, batch.predictions)
        if batch.request_ids:
            conn.execute(
                queries.sql("inference/mark_scored"),
                {"ids": batch.request_ids, "trace_ids": [str(p.trace_id) for p in batch.predictions]},
            )
        if batch.failures:
            conn.execute(
                queries.sql("inference/mark_failed"),
                {"ids": list(batch.failures), "errors": list(batch.failures.values())},
            )
        low = [
            batch.predictions[i]
            for i in routing.below_threshold((p.confidence for p in batch.predictions), threshold)
        ]
        queued = store.queue_review_items(
            conn,
            [
                store.ReviewRequest(p.trace_id, LOW_CONFIDENCE, routing.review_priority(p.confidence))
                for p in low
            ],
        )
        expired = conn.execute(
            queries.sql("inference/expire_stale_queue"),
            {"model_name": model.name, "max_age_hours": model.review_queue_max_age_hours},
        ).fetchall()
        total = conn.execute(queries.sql("inference/count_queued"), {"model_name": model.name}).fetchone()
    result = BatchResult(
        model_name=model.name,
        model_version=entry.version,
        threshold=threshold,
        scored=len(batch.predictions),
        failed=len(batch.failures),
        below_threshold=len(low),
        queued_now=len(queued),
        expired=len(expired),
        queued_total=int(total["n"]),
        trace_ids=[str(p.trace_id) for p in batch.predictions],
    )
    log.info(
        "%s v%s: scored %s request(s), %s failed, %s below confidence %.2f; %s review item(s) waiting, "
        "%s expired from the queue",
        model.name,
        entry.version,
        result.scored,
        result.failed,
        result.below_threshold,
        threshold,
        result.queued_total,
        result.expired,
    )
    for request_id, reason in list(batch.failures.items())[:5]:
        log.warning("request %s could not be scored: %s", request_id, reason)
    return result


def _review_item(row: Mapping[str, Any]) -> review.ReviewItem:
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
) -> list[dict[str, Any]]:
    """Choose up to `budget` queued items, mark them open and return one review task's content each.

    The returned list is in review-task order: element i is the task with map index first_map_index + i,
    and each item's `hitl_ref` records `hitl_ref` plus that map index, so an answer leads back to its task.
    """
    with conn.transaction():
        limit = budget if strategy == routing.LOWEST_CONFIDENCE else None
        rows = conn.execute(
            queries.sql("inference/queued_candidates"), {"model_name": model.name, "limit": limit}
        ).fetchall()
        candidates = [routing.Candidate(int(r["id"]), float(r["confidence"]), r["created_at"]) for r in rows]
        chosen = routing.choose(candidates, budget, strategy, seed=seed)
        if not chosen:
            return []
        ids = [c.item_id for c in chosen]
        refs = [json.dumps({**hitl_ref, "map_index": first_map_index + i}) for i in range(len(ids))]
        conn.execute(
            queries.sql("inference/open_items"),
            {"ids": ids, "hitl_refs": refs, "reviewers": list(model.reviewers)},
        )
        details = {
            int(r["id"]): _review_item(r)
            for r in conn.execute(queries.sql("inference/review_item_detail"), {"ids": ids}).fetchall()
        }
    tasks = []
    for item_id in ids:
        content = review.build_review(details[item_id], threshold)
        tasks.append({"review_item_id": item_id, **asdict(content)})
    log.info("%s: opened %s review(s), lowest confidence first: items %s", model.name, len(ids), ids)
    return tasks


def record_answer(conn: psycopg.Connection, item_id: int, answer: review.Answer) -> review.Outcome:
    """Turn one answer into feedback and close its review item, in one transaction.

    A repeated call (task retry) finds the item closed and stores nothing new; the feedback row also
    carries an idempotency key per review item.
    """
    with conn.transaction():
        rows = conn.execute(queries.sql("inference/review_item_detail"), {"ids": [item_id]}).fetchall()
        if not rows:
            raise InvalidInputError(f"review_item_id {item_id}: no such review item")
        row = rows[0]
        if row["status"] != "open":
            return review.Outcome(row["status"], None, f"review item {item_id} was already {row['status']}")
        outcome = review.outcome_of_answer(_review_item(row), answer)
        if outcome.feedback is not None:
            store.record_feedback(conn, outcome.feedback, idempotency_key=f"review-item:{item_id}")
        conn.execute(
            queries.sql("inference/close_item"),
            {"id": item_id, "status": outcome.status, "answered_at": answer.responded_at},
        )
    log.info("%s", outcome.summary)
    return outcome


def requeue_unfinished(conn: psycopg.Connection, dag_id: str, run_id: str) -> list[int]:
    """Put back in the queue the items of a run whose review task ended without recording an answer."""
    with conn.transaction():
        rows = conn.execute(
            queries.sql("inference/requeue_unfinished"), {"dag_id": dag_id, "run_id": run_id}
        ).fetchall()
    return [int(r["id"]) for r in rows]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)


def enqueue_requests(
    conn: psycopg.Connection, model_name: str, rows: Iterable[tuple[dict[str, Any], dict[str, Any]]]
) -> int:
    """Append (input, slice) pairs to `inference_requests` with one COPY; returns how many."""
    written = 0
    with conn.cursor() as cur, cur.copy(queries.sql("inference/enqueue_requests")) as copy:
        for values, slice_values in rows:
            copy.write_row((model_name, _json(values), _json(slice_values)))
            written += 1
    return written
