"""The routes of the feedback API, as one table; handlers only translate HTTP to service calls."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import pydantic_core
from fastapi import Depends, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from feedback_loop.api import batch_body, schemas
from feedback_loop.api.problems import MAX_REPORTED_PROBLEMS, ApiProblem, Unavailable
from feedback_loop.api.service import FeedbackService, PreparedEvent, ReviewDesk

IdempotencyKey = Annotated[
    schemas.EventId | None,  # client_event_id's rule: 1-200 printable characters, no outer spaces
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=schemas.KEY_MAX_LENGTH,
        description="makes a retry safe: the same key with the same body (a batch: the same items in the "
        "same order) returns the first result and stores nothing new; another request under a used key is "
        "409. A batch's key names the whole batch, never one of its items",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"
Body = TypeVar("Body", bound=BaseModel)
UNDECODABLE = "could not be decoded: send UTF-8 encoded JSON with Content-Type: application/json"
# A larger single event (a long comment) is read on a worker thread, not on the event loop, which other
# requests share.
LOOP_EVENT_MAX_BYTES = 16 * 1024
BIGINT_MAX = 2**63 - 1  # ids are PostgreSQL bigints: a larger one is a 422, not a database error


def service(request: Request) -> FeedbackService:
    return request.app.state.feedback_service


def _ingest_one(
    feedback: FeedbackService, raw: bytes, idempotency_key: str | None, grouped: bool = True
) -> Response:
    try:
        body = batch_body.parse_event(raw)
    except batch_body.InvalidItems as exc:
        if not _is_utf8(raw):  # 400, as FastAPI answered before this route parsed its own body
            raise ApiProblem("body", UNDECODABLE) from None
        body = _parsed_by_python(raw, exc.errors, schemas.FeedbackBody)
    result = feedback.submit(body, idempotency_key, grouped=grouped)
    return _feedback_response(result.row, result.created)


def _feedback_response(row: dict[str, Any], created: bool) -> Response:
    return Response(
        schemas.FeedbackOut.model_validate(row).model_dump_json(),
        status_code=201 if created else 200,
        media_type="application/json",
        headers=None if created else {REPLAYED_HEADER: "true"},
    )


def _prepared_event(
    feedback: FeedbackService, raw: bytes, idempotency_key: str | None
) -> PreparedEvent | None:
    """The body as a valid event, read and prepared on the event loop; None for anything else, which the
    worker-thread path then refuses with its reasons (or reads, when it is large)."""
    if len(raw) > LOOP_EVENT_MAX_BYTES:
        return None
    try:
        body = batch_body.parse_event(raw)
    except (batch_body.InvalidItems, ApiProblem):
        return None
    return feedback.prepared_event(body, idempotency_key)


async def post_feedback(request: Request, idempotency_key: IdempotencyKey = None) -> Response:
    """The body is parsed here, after batch_body's bound on its values, not by FastAPI: one object of a
    million unknown fields (12 MB) became a dict and a million error objects first (issue 14).

    A valid event is read and prepared on the event loop and awaits its group write there, with no worker
    thread of its own: the hand-off to one and back was a large part of an event's cost
    (docs/benchmarks.md, "Single events: group commit"). A refused one, a retry, and one the group write
    did not store take a worker thread, which says why."""
    raw = await request.body()
    feedback = service(request)
    prepared = _prepared_event(feedback, raw, idempotency_key)
    if prepared is not None:
        row = await asyncio.wrap_future(feedback.write_event(prepared))
        if row is not None:
            return _feedback_response(row, created=True)
    # Grouped already when prepared here: the worker thread writes it on its own, and says why.
    return await run_in_threadpool(_ingest_one, feedback, raw, idempotency_key, prepared is None)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parsed_by_python(raw: bytes, errors: list[dict[str, Any]], model: type[Body]) -> Body:
    """The body when pydantic's JSON parser refused it but Python's reads it: an unpaired surrogate
    ("\\ud800"), which the service then names by its field. The body already passed batch_body's size
    gates, so this costs no more than the first parse. Anything else keeps pydantic's errors (the
    readable 422)."""
    if any(e["type"] == "json_invalid" for e in errors):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            pass
        else:
            try:
                return model.model_validate(parsed)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_PROBLEMS]
    raise RequestValidationError(errors) from None


def _ingest_batch(feedback: FeedbackService, raw: bytes, idempotency_key: str | None) -> Response:
    def items() -> list[schemas.FeedbackItem]:
        try:
            # pydantic parses and validates the JSON in one pass (FastAPI's json.loads + validate costs
            # twice as much on a 10,000-item body), after cheap checks that bound what the body can cost.
            # Errors go through the same readable 422 handler.
            return batch_body.parse(raw, feedback.settings.api.max_batch_size)
        except batch_body.InvalidItems as exc:
            return _parsed_by_python(raw, exc.errors, schemas.BatchBody).items

    # The service calls items() once it has asked PostgreSQL for what the COPY will need.
    outcome = feedback.submit_batch_body(raw, items, idempotency_key)
    content = pydantic_core.to_json(outcome)  # a quarter of json.dumps's time on 10,000 item ids
    replayed = outcome["created"] == 0
    return Response(
        content,
        status_code=200 if replayed else 201,
        media_type="application/json",
        headers={REPLAYED_HEADER: "true"} if replayed else None,
    )


async def post_feedback_batch(request: Request, idempotency_key: IdempotencyKey = None) -> Response:
    raw = await request.body()
    return await run_in_threadpool(_ingest_batch, service(request), raw, idempotency_key)


def get_feedback(request: Request, feedback_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    return service(request).feedback(feedback_id)


def get_prediction(request: Request, trace_id: uuid.UUID) -> dict[str, Any]:
    return service(request).prediction(trace_id)


def get_model_versions(
    request: Request, name: Annotated[str, Path(min_length=1, max_length=100)]
) -> list[dict[str, Any]]:
    return service(request).versions(name)


ModelName = Annotated[str, Path(min_length=1, max_length=100, description="a model of the configuration")]


def post_requests(request: Request, response: Response, body: schemas.RequestsBody) -> dict[str, Any]:
    outcome = service(request).enqueue_requests(body)
    if outcome["created"] == 0:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    return outcome


def get_request_statuses(
    request: Request,
    model_name: ModelName,
    request_id: Annotated[
        list[str] | None,
        Query(description="a request id; repeat for more: ?request_id=a&request_id=b"),
    ] = None,
) -> dict[str, Any]:
    return service(request).request_statuses(model_name, request_id or [])


def get_request_status(
    request: Request,
    model_name: ModelName,
    request_id: Annotated[
        str, Path(description="the app's request id (an id with '/' is read with ?request_id=)")
    ],
) -> dict[str, Any]:
    return service(request).request_status(model_name, request_id)


def get_health(request: Request, response: Response) -> dict[str, Any]:
    health = service(request).health()
    if health["status"] != "ok":
        response.status_code = 503
    return health


REVIEW_ANSWER_PATH = "/reviews/{review_item_id}/answer"


def no_review_desk(
    _token: Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))],
) -> ReviewDesk:
    """The desk of a server that takes no review answers (its Access has none). The bearer scheme puts
    the token requirement into the OpenAPI document all the same."""
    raise Unavailable("review_item_id", "this server cannot hand answers to Airflow's review tasks")


def review_answer_endpoint(review_desk: Callable[..., ReviewDesk]) -> Callable[..., dict[str, Any]]:
    """POST /reviews/{id}/answer with the Access's desk dependency (the authenticated user's desk) wired in.

    Built per app rather than set through `app.dependency_overrides`: with any override registered,
    FastAPI re-analyses every dependency of every route on every request, about 1 ms of a single
    feedback event's ~2.5 ms (docs/benchmarks.md, "Single events")."""

    def post_review_answer(
        request: Request,
        response: Response,
        review_item_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
        body: schemas.ReviewAnswerBody,
        desk: ReviewDesk = Depends(review_desk),  # noqa: B008 - FastAPI's idiom
    ) -> dict[str, Any]:
        result = service(request).answer_review(desk, review_item_id, body.chosen_options, body.params_input)
        if result["replayed"]:
            response.status_code = 200
            response.headers[REPLAYED_HEADER] = "true"
        return result

    return post_review_answer


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    endpoint: Callable[..., Any]
    access: Literal["read", "write"] | None  # None: no token needed (or checked by the handler's desk)
    status_code: int
    response_model: Any
    summary: str
    errors: tuple[int, ...] = field(default=())
    raw_body: Any = None  # model of a body the handler parses itself (documented in OpenAPI from this)


ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec(
        "POST",
        "/feedback",
        post_feedback,
        "write",
        201,
        schemas.FeedbackOut,
        "Submit one feedback event (201 stored; 200 when the idempotency key was seen with the same body)",
        (404, 409, 413, 422),
        schemas.FeedbackBody,
    ),
    RouteSpec(
        "POST",
        "/feedback/batch",
        post_feedback_batch,
        "write",
        201,
        schemas.BatchOut,
        "Submit many feedback events in one transaction: all are stored or none (201; 200 when the "
        "Idempotency-Key was used before for this same batch, 409 when for another request). Bodies holding "
        "more than api.max_batch_size items are refused before any item is validated",
        (404, 409, 413, 422),
        schemas.BatchBody,
    ),
    RouteSpec(
        "GET",
        "/feedback/{feedback_id}",
        get_feedback,
        "read",
        200,
        schemas.FeedbackOut,
        "One stored feedback event",
        (404, 422),
    ),
    RouteSpec(
        "GET",
        "/predictions/{trace_id}",
        get_prediction,
        "read",
        200,
        schemas.PredictionOut,
        "A logged prediction with the feedback received for it",
        (404, 422),
    ),
    RouteSpec(
        "POST",
        "/requests",
        post_requests,
        "write",
        201,
        schemas.RequestsOut,
        "Enqueue inference requests named by the app's own request ids, all or none (201 stored; 200 when "
        "every id was enqueued before with the same input)",
        (404, 409, 413, 422),
    ),
    RouteSpec(
        "GET",
        "/requests/{model_name}",
        get_request_statuses,
        "read",
        200,
        schemas.RequestStatusesOut,
        "What became of requests (?request_id=a&request_id=b): status, trace_id, prediction, confidence; "
        "ids never enqueued are listed as unknown (404 when none is known)",
        (404, 422),
    ),
    RouteSpec(
        "GET",
        "/requests/{model_name}/{request_id}",
        get_request_status,
        "read",
        200,
        schemas.RequestStatusOut,
        "What became of one request: status (failed: with the reason), trace_id, prediction, confidence, "
        "model_version",
        (404, 422),
    ),
    RouteSpec(
        "GET",
        "/models/{name}/versions",
        get_model_versions,
        "read",
        200,
        list[schemas.ModelVersionOut],
        "Registered versions of a model and which one is champion",
        (404,),
    ),
    RouteSpec(
        "POST",
        REVIEW_ANSWER_PATH,
        review_answer_endpoint(no_review_desk),  # create_app wires in its Access's desk
        None,
        201,
        schemas.ReviewAnswerOut,
        "Answer a review task: recorded first (201; 200 when the same answer was recorded before), then "
        "handed to the task waiting in Airflow. Needs the Airflow permission to answer the DAG's reviews.",
        (401, 403, 404, 409, 422),
    ),
    RouteSpec(
        "GET",
        "/healthz",
        get_health,
        None,
        200,
        schemas.Health,
        "Liveness, database reachability and connection pool figures (no token needed)",
    ),
)
