"""Inference requests as apps and the command line enqueue them, and what became of each.

An app may name each request with its own id (`request_id`, unique per model): enqueueing the same id with
the same input again is a no-op that returns the stored request, the same id with another input is refused,
and the app reads back status, trace id, prediction and confidence by its id, then posts feedback on the
trace id. The feedback API (`POST /requests`, `GET /requests/...`) and `feedback-loop predict` both write
and read through here; the `feedback_inference` DAG scores the rows (`inference.scoring`) whoever wrote
them. It lives in core because the API and the inference stage both need it and stages may not import
each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from feedback_loop.core import queries
from feedback_loop.core.errors import ConflictError, FeedbackLoopError, InvalidInputError

# Also a CHECK in migration 0009; ids are the app's own keys (order numbers, UUIDs, paths), not text.
REQUEST_ID_MAX_LENGTH = 200
UNKNOWN = "unknown"  # the status reported for an id that was never enqueued for the model


def request_id_problem(value: object) -> str | None:
    """Why `value` cannot be a request id, or None when it can: a non-empty string of at most
    REQUEST_ID_MAX_LENGTH printable characters (no control characters, no line breaks) that does not start
    or end with a space. Strict, because the id comes back in URLs, CSV files and log lines."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    if len(value) > REQUEST_ID_MAX_LENGTH:
        return f"must be at most {REQUEST_ID_MAX_LENGTH} characters (got {len(value)})"
    if not value.isprintable():
        return "must be printable text without control characters or line breaks"
    if value.strip() != value:
        return "must not start or end with spaces"
    return None


def repeated(request_ids: Sequence[str | None]) -> list[tuple[int, int]]:
    """(index, index of the first occurrence) for each id that repeats an earlier one; None never repeats."""
    first: dict[str, int] = {}
    found: list[tuple[int, int]] = []
    for i, request_id in enumerate(request_ids):
        if request_id is None:
            continue
        if request_id in first:
            found.append((i, first[request_id]))
        else:
            first[request_id] = i
    return found


@dataclass(frozen=True)
class NewRequest:
    input: dict[str, Any]
    slice: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass(frozen=True)
class Enqueued:
    """One request as enqueue() left it: new (`created`), or the stored request its id already named."""

    request_id: str | None
    id: int
    status: str
    created: bool
    trace_id: uuid.UUID | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestIdConflictError(ConflictError):
    """Request ids already enqueued for the model with another input. For the command line that is bad
    input (exit 2); the API answers 409 naming each item."""

    exit_code = 2

    def __init__(self, model_name: str, conflicts: list[tuple[int, str]]) -> None:
        self.conflicts = conflicts  # (index of the item, its request id)
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        super().__init__(
            f"request id {conflicts[0][1]!r} was already enqueued for {model_name!r} with a different "
            f"input{more}; use a new request id for a new input"
        )


def _json(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        raise InvalidInputError("input: values must be finite numbers (no NaN or infinity)") from None


def _allocate_ids(conn: psycopg.Connection, n: int) -> list[int]:
    return conn.execute(queries.sql("requests/allocate_ids"), {"n": n}).fetchone()["ids"]


def _check(requests: Sequence[NewRequest]) -> None:
    for request in requests:
        if request.request_id is not None and (why := request_id_problem(request.request_id)):
            raise InvalidInputError(f"request_id {request.request_id!r}: {why}")
    twice = repeated([r.request_id for r in requests])
    if twice:
        index, first = twice[0]
        raise InvalidInputError(
            f"request_id {requests[index].request_id!r} is given twice (items {first} and {index})"
        )


def enqueue(conn: psycopg.Connection, model_name: str, requests: Sequence[NewRequest]) -> list[Enqueued]:
    """Append requests to `inference_requests`, one result per request in input order.

    Requests without ids go in with one COPY. Named ones are inserted with ON CONFLICT DO NOTHING on the
    unique (model_name, request_id); an id stored before is returned as it is stored when it was sent with
    the same input and slice, else RequestIdConflictError names it. All or nothing: on any error nothing of
    this call is kept. Committed when the call returns, unless the caller already holds a transaction:
    then this is a savepoint in it and the caller commits."""
    _check(requests)
    if not requests:
        return []
    with conn.transaction():
        ids = _allocate_ids(conn, len(requests))
        if all(r.request_id is None for r in requests):
            with conn.cursor() as cur, cur.copy(queries.sql("requests/copy")) as copy:
                for request_key, request in zip(ids, requests, strict=True):
                    copy.write_row(
                        (request_key, model_name, None, _json(request.input), _json(request.slice))
                    )
            return [Enqueued(None, i, "pending", True) for i in ids]
        return _enqueue_named(conn, model_name, requests, ids)


def _enqueue_named(
    conn: psycopg.Connection, model_name: str, requests: Sequence[NewRequest], ids: list[int]
) -> list[Enqueued]:
    items = [
        {"id": i, "request_id": r.request_id, "input": r.input, "slice": r.slice}
        for i, r in zip(ids, requests, strict=True)
    ]
    inserted = {
        row["id"]
        for row in conn.execute(
            queries.sql("requests/insert_named"), {"model_name": model_name, "items": _json(items)}
        ).fetchall()
    }
    results: list[Enqueued | None] = [
        Enqueued(r.request_id, i, "pending", True) if i in inserted else None
        for i, r in zip(ids, requests, strict=True)
    ]
    stored_before = [k for k, result in enumerate(results) if result is None]
    if not stored_before:
        return [r for r in results if r is not None]
    rows = conn.execute(
        queries.sql("requests/existing"),
        {"model_name": model_name, "items": _json([items[k] for k in stored_before])},
    ).fetchall()
    conflicts: list[tuple[int, str]] = []
    for row in rows:
        k = stored_before[row["n"] - 1]
        request_id = requests[k].request_id
        if not row["same_input"]:
            conflicts.append((k, str(request_id)))
        results[k] = Enqueued(request_id, int(row["id"]), row["status"], False, row["trace_id"])
    if conflicts:
        raise RequestIdConflictError(model_name, conflicts)
    missing = [requests[k].request_id for k, result in enumerate(results) if result is None]
    if missing:  # a conflicting row that vanished: nothing deletes requests, so this is a broken invariant
        raise FeedbackLoopError(f"request id {missing[0]!r} was neither stored nor found; retry the request")
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class RequestStatus:
    """What became of one named request; status UNKNOWN (and everything else None) when it never came."""

    request_id: str
    status: str
    id: int | None = None
    error: str | None = None
    trace_id: uuid.UUID | None = None
    prediction: str | None = None
    confidence: float | None = None
    model_version: int | None = None
    created_at: datetime | None = None
    scored_at: datetime | None = None

    @property
    def known(self) -> bool:
        return self.status != UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def statuses(conn: psycopg.Connection, model_name: str, request_ids: Sequence[str]) -> list[RequestStatus]:
    """The status of each named request of `model_name`, in the order asked; unknown ids included."""
    for request_id in request_ids:
        if why := request_id_problem(request_id):
            raise InvalidInputError(f"request_id {request_id!r}: {why}")
    rows = conn.execute(
        queries.sql("requests/status"), {"model_name": model_name, "request_ids": list(request_ids)}
    ).fetchall()
    return [
        RequestStatus(request_id=r["request_id"], status=UNKNOWN)
        if r["id"] is None
        else RequestStatus(
            request_id=r["request_id"],
            status=r["status"],
            id=int(r["id"]),
            error=r["error"],
            trace_id=r["trace_id"],
            prediction=r["prediction"],
            confidence=None if r["confidence"] is None else float(r["confidence"]),
            model_version=r["model_version"],
            created_at=r["created_at"],
            scored_at=r["scored_at"],
        )
        for r in rows
    ]
