"""Inference requests apps enqueue and read back through the feedback API, without HTTP.

The checks that need the configuration or the registry (the model is configured, each input holds its
feature columns, batch size, ids repeated within a batch) come first and raise api.problems naming the
item's field; the writing and reading is core.inference_requests, on a pooled connection whose
transaction commits before the handler answers (and rolls back on any error: nothing is half-stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from feedback_loop.api.pool import ConnectionPool
from feedback_loop.api.problems import Conflict, Invalid, NotFound
from feedback_loop.api.schemas import RequestItem, RequestsBody
from feedback_loop.core import config, field_paths
from feedback_loop.core import inference_requests as requests
from feedback_loop.core.errors import NotFoundError
from feedback_loop.registry import versions as registry

MAX_REPORTED_PROBLEMS = 20
MAX_MISSING_PER_ITEM = 5


def configured_model(settings: config.Settings, model_name: str) -> config.ModelConfig:
    """The model's configuration; 404 naming model_name when it is not configured (the DAG would never
    score its requests)."""
    try:
        return settings.model(model_name)
    except NotFoundError as exc:
        raise NotFound("model_name", str(exc)) from None


def feature_columns(conn: psycopg.Connection, model: config.ModelConfig) -> list[str]:
    """The columns every request must carry: the configured list when the config names one; with
    `feature_columns: all`, the columns the champion was trained on; none known (no champion yet): an
    empty list, and scoring marks a request missing a feature as failed."""
    if isinstance(model.feature_columns, list):
        return list(model.feature_columns)
    try:
        return list(registry.champion(conn, model.name).feature_columns)
    except NotFoundError:
        return []


def _check_items(items: Sequence[RequestItem], features: Sequence[str], model_name: str) -> None:
    found: list[dict[str, str]] = []
    for index, first in requests.repeated([item.request_id for item in items]):
        found.append(
            {
                "field": f"items[{index}].request_id",
                "reason": f"repeats the request_id {items[index].request_id!r} of items[{first}]",
            }
        )
    for i, item in enumerate(items):
        if len(found) >= MAX_REPORTED_PROBLEMS:
            break
        missing = [c for c in features if c not in item.input]
        found += [
            {
                "field": field_paths.dotted(["items", i, "input", c]),
                "reason": f"is required: a feature column of {model_name}",
            }
            for c in missing[:MAX_MISSING_PER_ITEM]
        ]
    if found:
        raise Invalid(**found[0], more=found[1:MAX_REPORTED_PROBLEMS])


def enqueue(pool: ConnectionPool, settings: config.Settings, body: RequestsBody) -> dict[str, Any]:
    """Store the batch's requests in one transaction, or none: new ids are created, ids enqueued before
    with the same input and slice are returned as stored (a retry), other inputs are 409."""
    model = configured_model(settings, body.model_name)
    items = body.items
    limit = settings.api.max_request_batch_size
    if not items:
        raise Invalid("items", "must contain at least one item")
    if len(items) > limit:
        raise Invalid("items", f"at most {limit} items per request (got {len(items)}); split the batch")
    with pool.connection() as conn:
        _check_items(items, feature_columns(conn, model), model.name)
        new = [requests.NewRequest(item.input, item.slice, item.request_id) for item in items]
        try:
            enqueued = requests.enqueue(conn, model.name, new)
        except requests.RequestIdConflictError as exc:
            problems = [
                {
                    "field": f"items[{k}].request_id",
                    "reason": f"{request_id!r} was already enqueued for {model.name} with a different input; "
                    "use a new request_id for a new input",
                }
                for k, request_id in exc.conflicts[:MAX_REPORTED_PROBLEMS]
            ]
            raise Conflict(**problems[0], more=problems[1:]) from None
    created = sum(e.created for e in enqueued)
    return {
        "model_name": model.name,
        "created": created,
        "existing": len(enqueued) - created,
        "items": [e.to_dict() for e in enqueued],
    }


def status(
    pool: ConnectionPool, settings: config.Settings, model_name: str, request_id: str
) -> dict[str, Any]:
    """One request's status; 404 naming request_id when it was never enqueued for the model."""
    model = configured_model(settings, model_name)
    if why := requests.request_id_problem(request_id):
        raise Invalid("request_id", why)
    with pool.connection() as conn:
        (found,) = requests.statuses(conn, model.name, [request_id])
    if not found.known:
        raise NotFound("request_id", f"no request {request_id!r} was enqueued for {model.name}")
    return found.to_dict()


def statuses(
    pool: ConnectionPool, settings: config.Settings, model_name: str, request_ids: Sequence[str]
) -> dict[str, Any]:
    """The status of each distinct id, in the order asked; unknown ids are listed as unknown, and only
    when none is known is the answer 404."""
    model = configured_model(settings, model_name)
    limit = settings.api.max_request_batch_size
    if not request_ids:
        raise Invalid("request_id", "give at least one, e.g. ?request_id=a&request_id=b")
    if len(request_ids) > limit:
        raise Invalid("request_id", f"at most {limit} per request (got {len(request_ids)})")
    found = [
        {"field": f"request_id[{i}]", "reason": why}
        for i, value in enumerate(request_ids)
        if (why := requests.request_id_problem(value))
    ]
    if found:
        raise Invalid(**found[0], more=found[1:MAX_REPORTED_PROBLEMS])
    distinct = list(dict.fromkeys(request_ids))
    with pool.connection() as conn:
        read = requests.statuses(conn, model.name, distinct)
    known = sum(s.known for s in read)
    if not known:
        raise NotFound(
            "request_id", f"none of the {len(distinct)} request id(s) was enqueued for {model.name}"
        )
    return {
        "model_name": model.name,
        "known": known,
        "unknown": len(read) - known,
        "items": [s.to_dict() for s in read],
    }
