"""One inference round: score pending requests with the champion, log every prediction, queue the
uncertain ones for review, open a budgeted set of reviews and record the answers.

Plain Python on a psycopg connection; the `feedback_inference` DAG calls these functions from its tasks.
Every write path is set-based (COPY for predictions, one UPDATE per batch) and runs in one transaction,
so a failed round stores nothing and a retry starts from the same state.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from feedback_loop.core import inference_requests, queries, store
from feedback_loop.core.config import ModelConfig
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import routing
from feedback_loop.registry import versions as registry

log = logging.getLogger(__name__)

LOW_CONFIDENCE = "low_confidence"

# Where trace ids come from: random in production; `seeded_trace_ids` makes a simulation repeatable (the
# audit sample, gold picks and tie-breaks are ordered by trace id).
_new_trace_id: Callable[[], uuid.UUID] = uuid.uuid4


@contextlib.contextmanager
def seeded_trace_ids(seed: int) -> Iterator[None]:
    """Within the block, trace ids are drawn from a generator seeded with `seed` (simulations only)."""
    import random

    global _new_trace_id
    rng = random.Random(f"trace-ids:{seed}")
    previous, _new_trace_id = _new_trace_id, lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    try:
        yield
    finally:
        _new_trace_id = previous


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
                trace_id=_new_trace_id(),
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


def enqueue_requests(
    conn: psycopg.Connection, model_name: str, rows: Iterable[tuple[dict[str, Any], dict[str, Any]]]
) -> int:
    """Append (input, slice) pairs without request ids to `inference_requests` with one COPY; returns how
    many. Requests named by an app go through `core.inference_requests.enqueue` directly."""
    requests = [inference_requests.NewRequest(values, slice_values) for values, slice_values in rows]
    return len(inference_requests.enqueue(conn, model_name, requests))
