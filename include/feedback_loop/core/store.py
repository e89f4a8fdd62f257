"""Typed access to predictions, feedback and review items.

Bulk writes use COPY; idempotent writes use unique keys with ON CONFLICT so a retry stores nothing new.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

import psycopg
import pydantic_core

from feedback_loop.core import db, queries
from feedback_loop.core.errors import ConflictError, NotFoundError


@dataclass(frozen=True)
class Prediction:
    trace_id: uuid.UUID
    model_name: str
    model_version: int
    input: dict[str, Any]
    output_label: str
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict)
    slice: dict[str, Any] = field(default_factory=dict)
    source_run_id: str | None = None


PREDICTION_COPY_COLUMNS = (
    "trace_id",
    "model_name",
    "model_version",
    "input",
    "output_label",
    "confidence",
    "probabilities",
    "slice",
    "source_run_id",
)


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)


def log_predictions(conn: psycopg.Connection, predictions: Iterable[Prediction]) -> int:
    """Insert predictions with one COPY; returns the number written."""
    written = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY predictions ({', '.join(PREDICTION_COPY_COLUMNS)}) FROM STDIN") as copy:
            for p in predictions:
                copy.write_row(
                    (
                        p.trace_id,
                        p.model_name,
                        p.model_version,
                        _json_text(p.input),
                        p.output_label,
                        p.confidence,
                        _json_text(p.probabilities),
                        _json_text(p.slice),
                        p.source_run_id,
                    )
                )
                written += 1
    return written


def get_prediction(conn: psycopg.Connection, trace_id: uuid.UUID | str) -> dict[str, Any]:
    row = conn.execute(queries.sql("store/prediction_by_trace"), {"trace_id": str(trace_id)}).fetchone()
    if row is None:
        raise NotFoundError(f"unknown trace_id {trace_id}")
    return row


@dataclass(frozen=True)
class FeedbackIn:
    """One feedback event as accepted by the store (validated upstream by the API or the review task)."""

    trace_id: uuid.UUID
    kind: str
    rating: int | None = None
    label: str | None = None
    signal: str | None = None
    comment: str | None = None
    user_id: str | None = None
    source: str = "api"
    priority: str = "normal"
    failure_mode: str | None = None
    review_item_id: int | None = None
    latency_seconds: float | None = None

    def request_hash(self) -> str:
        """Fingerprint of the request body, to tell a true retry from a reused idempotency key."""
        return request_hash(
            self.trace_id, self.kind, self.rating, self.label, self.signal, self.comment, self.user_id,
            self.source, self.review_item_id, self.latency_seconds,
        )  # fmt: skip


FEEDBACK_IN_FIELDS = tuple(f.name for f in fields(FeedbackIn))


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if value.__class__ is str:
        return encode_basestring_ascii(value)
    if value.__class__ is int:
        return int.__repr__(value)
    return _json_text(value)


def request_hash(
    trace_id: uuid.UUID | str, kind: str, rating: int | None, label: str | None, signal: str | None,
    comment: str | None, user_id: str | None, source: str, review_item_id: int | None = None,
    latency_seconds: float | None = None,
) -> str:  # fmt: skip
    """The request hash of a feedback body: SHA-256 of the JSON object of FeedbackIn's fields but priority
    and failure_mode (outcomes of triage, not the body), in field order, written as
    json.dumps(separators=(",", ":"), default=str, allow_nan=False) writes it. Stored hashes were made
    that way, so this must stay byte for byte the same (tests pin literal hashes).

    Written out because batch ingest hashes up to 10,000 items per request: strings, ints and None, all
    the API sends, are encoded inline; anything else (a UUID, a float) goes through json.dumps."""
    enc, other = encode_basestring_ascii, _json_value
    text = (
        f'{{"trace_id":{enc(trace_id) if trace_id.__class__ is str else other(trace_id)},'
        f'"kind":{enc(kind) if kind.__class__ is str else other(kind)},'
        f'"rating":{"null" if rating is None else int.__repr__(rating) if rating.__class__ is int else other(rating)},'
        f'"label":{"null" if label is None else enc(label) if label.__class__ is str else other(label)},'
        f'"signal":{"null" if signal is None else enc(signal) if signal.__class__ is str else other(signal)},'
        f'"comment":{"null" if comment is None else enc(comment) if comment.__class__ is str else other(comment)},'
        f'"user_id":{"null" if user_id is None else enc(user_id) if user_id.__class__ is str else other(user_id)},'
        f'"source":{enc(source) if source.__class__ is str else other(source)},'
        f'"review_item_id":{other(review_item_id)},"latency_seconds":{other(latency_seconds)}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class FeedbackResult:
    row: dict[str, Any]
    created: bool


def record_feedback(
    conn: psycopg.Connection, item: FeedbackIn, idempotency_key: str | None = None, *, commit: bool = False
) -> FeedbackResult:
    """Store one feedback event. With a key, a retry returns the original row and stores nothing;
    the same key with a different body raises ConflictError. Unknown trace ids raise NotFoundError.
    `commit`: commit in the same round trip as the insert (for a caller with nothing else to write)."""
    params = _feedback_params(item, idempotency_key)
    if not commit:
        inserted = conn.execute(queries.sql("store/insert_feedback"), params)
    else:
        with conn.pipeline():
            inserted = conn.execute(queries.sql("store/insert_feedback"), params)
            _commit_queued(conn)
    return _recorded(conn, inserted.fetchone(), item, params)


class KeyOfStoredBatchError(ConflictError):
    """The idempotency key of a single event names a batch stored before."""


def record_keyed_feedback(
    conn: psycopg.Connection, item: FeedbackIn, idempotency_key: str, *, commit: bool = False
) -> FeedbackResult:
    """record_feedback under the key's transaction lock (lock_idempotency_key), refusing a key that names a
    stored batch with KeyOfStoredBatchError (the insert skips such a key, so nothing is stored).

    The lock and the insert go to PostgreSQL in one pipeline: one round trip instead of three (with the
    transaction's BEGIN) on the path every single event takes; with `commit`, the COMMIT goes in the same
    round trip. They still run as separate statements, in order: the insert must take its snapshot after
    the lock is granted, to see a batch that committed while this request waited for it. Only when the
    insert stored nothing (a retry, a batch's key, an unknown trace) does a second query say why."""
    params = {**_feedback_params(item, idempotency_key), "refuse_batch_key": True}
    with conn.pipeline():
        lock_idempotency_key(conn, idempotency_key)
        inserted = conn.execute(queries.sql("store/insert_feedback"), params)
        if commit:
            _commit_queued(conn)
    return _recorded(conn, inserted.fetchone(), item, params)


def record_feedback_group(
    conn: psycopg.Connection, entries: Sequence[tuple[FeedbackIn, str | None]], *, commit: bool = True
) -> list[dict[str, Any] | None]:
    """Store events (each with its idempotency key or None) in one round trip: the keys' locks (where free at
    once), one insert of all rows, and with `commit` the COMMIT (else the transaction stays open for more).
    Returns each entry's new row, or None where nothing was stored (unknown trace, key stored before, key of
    a stored batch, key locked by another transaction): record_feedback or record_keyed_feedback then tells
    which. No two entries may share a key."""
    params = [{**_feedback_params(item, key), "ord": n} for n, (item, key) in enumerate(entries)]
    keyed = [p for p in params if p["idempotency_key"] is not None]
    if len({p["idempotency_key"] for p in keyed}) != len(keyed):
        raise ValueError("record_feedback_group: two entries share an idempotency key")
    with conn.pipeline():
        # Many requests wait for this one transaction: it never waits for a key's lock (an entry whose key
        # is busy is left out, and written alone), and any other lock wait (an uncommitted row under the
        # same key, from a batch's COPY) fails it after a short while, and its events are written alone.
        conn.execute(queries.sql("store/group_lock_timeout"))
        if keyed:
            locks = [_idempotency_lock(p["idempotency_key"]) for p in keyed]
            conn.execute(
                queries.sql("store/try_key_locks"), {"keys": locks, "ords": [p["ord"] for p in keyed]}
            )
        inserted = conn.execute(
            queries.sql("store/insert_feedback_group"), {"rows": pydantic_core.to_json(params).decode()}
        )
        if commit:
            _commit_queued(conn)
    rows: list[dict[str, Any] | None] = [None] * len(entries)
    for row in inserted.fetchall():
        rows[row.pop("ord")] = row
    return rows


def _commit_queued(conn: psycopg.Connection) -> None:
    """COMMIT as one more statement of the open pipeline, sent with the others when it syncs; not
    `conn.commit()`, which syncs the pipeline itself: a second round trip. psycopg follows the transaction
    state the server reports, so the connection is idle afterwards and the caller's commit is a no-op."""
    conn.execute("COMMIT")


def _feedback_params(item: FeedbackIn, idempotency_key: str | None) -> dict[str, Any]:
    # A shallow copy of the fields: `dataclasses.asdict` deep-copies every value, a sixth of the CPU of a
    # single event's write (docs/benchmarks.md, "Single events"); the values here are all immutable.
    return {
        **{name: getattr(item, name) for name in FEEDBACK_IN_FIELDS},
        "trace_id": str(item.trace_id),
        "idempotency_key": idempotency_key,
        "request_hash": item.request_hash(),
        "refuse_batch_key": False,
    }


def _recorded(
    conn: psycopg.Connection, row: dict[str, Any] | None, item: FeedbackIn, params: dict[str, Any]
) -> FeedbackResult:
    """The outcome of insert_feedback: the new row; else, when it stored nothing, what the key names: a
    batch, refused where the insert refuses batch keys (KeyOfStoredBatchError); the row stored before under
    the key, which must hold the same body (a retry); nothing (the trace is unknown)."""
    if row is not None:
        return FeedbackResult(row=row, created=True)
    idempotency_key = params["idempotency_key"]
    if idempotency_key is None:
        raise NotFoundError(f"unknown trace_id {item.trace_id}")
    if params["refuse_batch_key"] and stored_batch(conn, idempotency_key) is not None:
        raise KeyOfStoredBatchError(f"idempotency key {idempotency_key!r} was already used for a batch")
    existing = conn.execute(queries.sql("store/feedback_by_key"), params).fetchone()
    if existing is None:
        raise NotFoundError(f"unknown trace_id {item.trace_id}")
    if existing.pop("request_hash").strip() != params["request_hash"]:
        raise ConflictError(f"idempotency key {idempotency_key!r} was already used with a different body")
    return FeedbackResult(row=existing, created=False)


# ---- batch writes: look-ups, then one COPY ------------------------------------------------------------

FEEDBACK_COPY_COLUMNS = (
    "id",
    "trace_id",
    "model_name",
    "model_version",
    "kind",
    "rating",
    "label",
    "signal",
    "comment",
    "user_id",
    "source",
    "priority",
    "failure_mode",
    "idempotency_key",
    "request_hash",
)
# The unique index on feedback.idempotency_key: a COPY that fails on it met a key stored concurrently.
IDEMPOTENCY_KEY_CONSTRAINT = "feedback_idempotency_key_key"


Models = list[tuple[str, int] | None]


def trace_id_array(trace_ids: Sequence[uuid.UUID | str]) -> str:
    """The trace ids as one JSON array, as the model look-up takes them (store/models_for_items says why),
    written by pydantic-core: it writes UUIDs without a str() of each in Python (a batch's 10,000 took
    4.5 ms before its COPY could start)."""
    return pydantic_core.to_json(list(trace_ids)).decode()


def models_of_traces(conn: psycopg.Connection, trace_ids: Sequence[uuid.UUID | str]) -> Models:
    """Model name and version of each trace id's prediction, in order; None where none was logged."""
    return _models_in_order(_ask_models(conn, trace_id_array(trace_ids)).fetchall(), len(trace_ids))


def models_and_ids(
    conn: psycopg.Connection, trace_ids: Sequence[uuid.UUID | str], ids_needed: int
) -> tuple[Models, list[int]]:
    """models_of_traces and `ids_needed` ids from reserve_feedback_ids in one round trip (a pipeline): a
    batch needs both before its COPY can start."""
    with conn.pipeline():
        answers = send_models_and_ids(conn, trace_id_array(trace_ids), len(trace_ids), ids_needed)
    return answers()


def send_models_and_ids(
    conn: psycopg.Connection, trace_array: str, traces: int, ids_needed: int
) -> Callable[[], tuple[Models, list[int]]]:
    """Inside `conn.pipeline()`: send the look-ups of models_and_ids (`traces` trace ids as a
    trace_id_array) and return what reads their answers once the pipeline has ended. PostgreSQL runs them
    as soon as they arrive, while the caller goes on with other work."""
    models = _ask_models(conn, trace_array)
    ids = conn.execute(queries.sql("store/allocate_feedback_ids"), {"n": ids_needed})
    return lambda: (_models_in_order(models.fetchall(), traces), ids.fetchone()["ids"])


def _ask_models(conn: psycopg.Connection, trace_array: str) -> psycopg.Cursor[Any]:
    # Executed, not fetched, so that a pipeline can send it with other statements.
    return conn.execute(queries.sql("store/models_for_items"), {"trace_ids": trace_array})


def _models_in_order(groups: Sequence[dict[str, Any]], n: int) -> Models:
    model_of: Models = [None] * n
    for group in groups:
        model = (group["model_name"], group["model_version"])
        for ordinal in group["ords"]:
            model_of[ordinal - 1] = model
    return model_of


def stored_request_hashes(conn: psycopg.Connection, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Id and request hash of the feedback stored under each of these idempotency keys (if any)."""
    rows = conn.execute(queries.sql("store/feedback_by_keys"), {"keys": json.dumps(list(keys))}).fetchall()
    return {r["idempotency_key"]: (r["id"], r["request_hash"].strip()) for r in rows}


def lock_idempotency_key(conn: psycopg.Connection, key: str) -> None:
    """Serialise requests naming the same idempotency key until this transaction ends, so a single event
    and a batch (or two batches) under one key cannot both be stored."""
    db.transaction_lock(conn, _idempotency_lock(key))


def _idempotency_lock(key: str) -> str:
    return f"idempotency:{key}"


def stored_batch(conn: psycopg.Connection, key: str) -> tuple[str, list[int]] | None:
    """Request hash and feedback ids of the batch stored under this Idempotency-Key, if any."""
    row = conn.execute(queries.sql("store/batch_by_key"), {"idempotency_key": key}).fetchone()
    return None if row is None else (row["request_hash"].strip(), list(row["feedback_ids"]))


def key_of_stored_feedback(conn: psycopg.Connection, key: str) -> bool:
    """Whether a feedback row is stored under this idempotency key (a single event's or an item's)."""
    return conn.execute(queries.sql("store/feedback_by_key"), {"idempotency_key": key}).fetchone() is not None


def record_batch(conn: psycopg.Connection, key: str, request_hash: str, feedback_ids: Sequence[int]) -> None:
    """Remember a batch sent with an Idempotency-Key, in the transaction that stored its items."""
    conn.execute(
        queries.sql("store/insert_batch"),
        {"idempotency_key": key, "request_hash": request_hash, "feedback_ids": list(feedback_ids)},
    )


def reserve_feedback_ids(conn: psycopg.Connection, n: int) -> list[int]:
    """n ids from the feedback sequence, for rows written by copy_feedback (COPY returns nothing).
    Ids left unused (a rolled-back or retried batch) are gaps, as after any rollback."""
    return conn.execute(queries.sql("store/allocate_feedback_ids"), {"n": n}).fetchone()["ids"]


def copy_feedback(conn: psycopg.Connection, rows: Iterable[Sequence[Any]]) -> int:
    """Stream feedback rows (values in FEEDBACK_COPY_COLUMNS order, ids from reserve_feedback_ids) into
    `feedback` with one COPY; returns the number written. `rows` may be a generator that prepares each
    row as it is asked for: PostgreSQL then inserts the rows already sent meanwhile.

    Raises psycopg.errors.UniqueViolation on IDEMPOTENCY_KEY_CONSTRAINT when a key is stored already
    (a concurrent request): nothing of the COPY is kept and the transaction must be rolled back."""
    written = 0
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY feedback ({', '.join(FEEDBACK_COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        write_row = copy.write_row
        for row in rows:
            write_row(row)
            written += 1
    return written


def get_feedback(conn: psycopg.Connection, feedback_id: int) -> dict[str, Any]:
    row = conn.execute(queries.sql("store/feedback_by_id"), {"id": feedback_id}).fetchone()
    if row is None:
        raise NotFoundError(f"unknown feedback id {feedback_id}")
    return row


def read_feedback(
    conn: psycopg.Connection, start: datetime, end: datetime, model_name: str | None = None
) -> list[dict[str, Any]]:
    """Feedback created in [start, end), oldest first; uses the (model, version, created_at) index."""
    params = {"start": start, "end": end, "model_name": model_name}
    return conn.execute(queries.sql("store/feedback_in_interval"), params).fetchall()


@dataclass(frozen=True)
class ReviewRequest:
    trace_id: uuid.UUID
    reason: str
    priority: float = 0.0


def queue_review_items(
    conn: psycopg.Connection, requests: Sequence[ReviewRequest], assigned_reviewers: Sequence[str] = ()
) -> list[int]:
    """Queue review items in one statement; a trace already queued or open for the same reason is not
    queued twice. Returns the ids of the items created now."""
    if not requests:
        return []
    params = {
        "assigned_reviewers": list(assigned_reviewers),
        "trace_ids": [str(r.trace_id) for r in requests],
        "reasons": [r.reason for r in requests],
        "priorities": [float(r.priority) for r in requests],
    }
    rows = conn.execute(queries.sql("store/queue_review_items"), params).fetchall()
    return [int(row["id"]) for row in rows]


def review_items(
    conn: psycopg.Connection, model_name: str, status: str | None = None
) -> list[dict[str, Any]]:
    params = {"model_name": model_name, "status": status}
    return conn.execute(queries.sql("store/review_items_for_model"), params).fetchall()
