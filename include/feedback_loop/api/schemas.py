"""Request and response bodies of the feedback API (pydantic; they also make the OpenAPI document).

Static rules live here (types, kinds, rating range, lengths that never change). Rules that depend on the
configuration (comment length, batch size, low ratings needing a comment) and on the kind (a rating needs
`rating`, a correction needs `label`) are checked by the service, with the same error shape.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, WithJsonSchema

from feedback_loop.core import inference_requests

Kind = Literal["thumbs_up", "thumbs_down", "rating", "correction", "comment", "implicit"]
Signal = Literal["accepted", "abandoned", "retried", "escalated"]
KEY_MAX_LENGTH = 200
UNICODE_REASON = "must be valid Unicode (an unpaired surrogate such as \\ud800 is not)"


def _rating_in_range(value: int) -> int:
    if not 1 <= value <= 5:
        raise ValueError("must be between 1 and 5")
    return value


def _key_is_printable(value: str) -> str:
    if problem := unicode_problem(value):
        raise ValueError(problem)
    if not value.isprintable() or value.strip() != value:
        raise ValueError("must be printable text without leading or trailing spaces")
    return value


def _valid_request_id(value: str) -> str:
    why = unicode_problem(value) or inference_requests.request_id_problem(value)
    if why:
        raise ValueError(why)
    return value


def unicode_problem(text: str) -> str | None:
    """JSON may escape an unpaired surrogate ("\\ud800"), which no UTF-8 text, PostgreSQL column or
    response can hold: every string the API takes is refused with this reason, naming its field."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return UNICODE_REASON
    return None


def _text_problem(text: str) -> str | None:
    """jsonb refuses NUL and unpaired surrogates (JSON may escape both); refuse them here, not with a 500."""
    if "\x00" in text:
        return "must not contain NUL (\\u0000) characters"
    return unicode_problem(text)


def _valid_unicode(value: str) -> str:
    if problem := unicode_problem(value):
        raise ValueError(problem)
    return value


def _unicode_inside(value: Any, where: str = "") -> None:
    """Every string in a JSON value (keys too), named by its path; ascii() keeps the path printable."""
    if isinstance(value, str):
        if unicode_problem(value):
            raise ValueError(f"{where or 'value'}: {UNICODE_REASON}")
    elif isinstance(value, dict):
        for key, item in value.items():
            if unicode_problem(key):
                raise ValueError(f"key {ascii(key)} {UNICODE_REASON}")
            _unicode_inside(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _unicode_inside(item, f"{where}[{i}]")


def _valid_unicode_inside(value: dict[str, Any]) -> dict[str, Any]:
    _unicode_inside(value)
    return value


def _scalar_values(values: dict[str, Any]) -> dict[str, Any]:
    """Feature and slice values become one DataFrame cell each: numbers, strings, booleans or null.
    What jsonb cannot hold (NaN, infinity, NUL, unpaired surrogates) is refused here, naming the key."""
    for key, value in values.items():
        if problem := _text_problem(key):
            raise ValueError(f"key {key!r} {problem}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key}: must be a finite number")
        if isinstance(value, str) and (problem := _text_problem(value)):
            raise ValueError(f"{key}: {problem}")
        if value is not None and not isinstance(value, bool | int | float | str):
            kind = {dict: "an object", list: "an array"}.get(type(value), type(value).__name__)
            raise ValueError(f"{key}: must be a number, string, boolean or null (got {kind})")
    return values


# A string field of any body: unpaired surrogates are refused (422 naming the field).
Text = Annotated[str, AfterValidator(_valid_unicode)]
Rating = Annotated[
    StrictInt, AfterValidator(_rating_in_range), Field(json_schema_extra={"minimum": 1, "maximum": 5})
]
EventId = Annotated[str, Field(min_length=1, max_length=KEY_MAX_LENGTH), AfterValidator(_key_is_printable)]
RequestId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=inference_requests.REQUEST_ID_MAX_LENGTH,
        description="the app's own id for the request, unique per model: printable, no control characters, "
        "no leading or trailing spaces",
    ),
    AfterValidator(_valid_request_id),
]
ScalarValues = Annotated[
    dict[str, Any],
    AfterValidator(_scalar_values),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {
                "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]
            },
        }
    ),
]


class FeedbackBody(BaseModel):
    """One feedback event about one logged prediction."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "trace_id": "7b0c8a8e-5a3e-4cc4-9a59-0b4f2f7f1e11",
                    "kind": "rating",
                    "rating": 2,
                    "comment": "It read my 7 as a 1",
                    "user_id": "u-123",
                    "client_event_id": "app-evt-991",
                },
            ]
        },
    )

    trace_id: uuid.UUID = Field(description="trace_id of the prediction the feedback is about")
    kind: Kind
    rating: Rating | None = Field(None, description="1-5; required when kind is 'rating'")
    label: str | None = Field(
        None, min_length=1, max_length=200, description="the correct label (corrections)"
    )
    signal: Signal | None = Field(None, description="implicit signal; required when kind is 'implicit'")
    comment: str | None = Field(
        None, description="free text; e-mail addresses, phone and card numbers are masked before storing"
    )
    user_id: str | None = Field(None, min_length=1, max_length=200)
    client_event_id: EventId | None = Field(
        None, description="the client's id for this event; makes retries safe like the Idempotency-Key header"
    )


class FeedbackItem(Protocol):
    """What the service reads of a feedback event: a FeedbackBody, or a batch item as `batch_body`
    parses it (the same fields and rules in a lighter object)."""

    trace_id: uuid.UUID
    kind: str
    rating: int | None
    label: str | None
    signal: str | None
    comment: str | None
    user_id: str | None
    client_event_id: str | None


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackBody] = Field(
        description="feedback events, stored all together or not at all (at most api.max_batch_size); "
        "an item's client_event_id makes that item retry-safe on its own"
    )


class ReviewAnswerBody(BaseModel):
    """An answer to one review task, in the shape of Airflow's `PATCH .../hitlDetails` body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"chosen_options": ["None of these"], "params_input": {"corrected_label": "7"}},
                {"chosen_options": ["3"], "params_input": {"comment": "the loop is closed"}},
            ]
        },
    )

    chosen_options: list[Text] = Field(
        max_length=10, description="exactly one of the review's options (the labels, 'None of these', skip)"
    )
    params_input: Annotated[dict[str, Any], AfterValidator(_valid_unicode_inside)] = Field(
        default_factory=dict,
        max_length=10,
        description="any of the review's fields: corrected_label (only with 'None of these'), comment",
    )


class ReviewAnswerOut(BaseModel):
    review_item_id: int
    status: Literal["answered", "expired"]
    replayed: bool = Field(description="the same answer by the same person was recorded before")
    feedback_id: int | None = Field(description="the feedback row the answer became (none for a skip)")
    feedback_kind: str | None
    label: str | None
    airflow: str = Field(description="what became of the review task in Airflow")


class FeedbackOut(BaseModel):
    id: int
    trace_id: uuid.UUID
    model_name: str
    model_version: int
    kind: Kind
    rating: int | None
    label: str | None
    signal: Signal | None
    comment: str | None = Field(description="as stored, with personal data masked")
    user_id: str | None
    source: str
    priority: Literal["low", "normal", "high", "urgent"]
    failure_mode: str | None
    is_negative: bool
    idempotency_key: str | None
    created_at: datetime


class BatchItemResult(BaseModel):
    id: int
    created: bool = Field(description="false when the item's key had been stored before (a retry)")


class BatchOut(BaseModel):
    created: int
    duplicates: int
    urgent: int
    review_items_opened: int
    items: list[BatchItemResult] = Field(description="one result per submitted item, in order")


class PredictionOut(BaseModel):
    trace_id: uuid.UUID
    model_name: str
    model_version: int
    input: dict[str, Any]
    output_label: str
    confidence: float
    probabilities: dict[str, Any]
    slice: dict[str, Any]
    source_run_id: str | None
    created_at: datetime
    feedback: list[FeedbackOut] = Field(description="feedback received for this prediction, oldest first")


class ModelVersionOut(BaseModel):
    model_name: str
    version: int
    status: str
    is_champion: bool
    metrics: dict[str, Any]
    data_snapshot: dict[str, Any]
    parent_version: int | None
    sha256: str
    created_by: str
    created_at: datetime


class RequestItem(BaseModel):
    """One inference request for the feedback_inference DAG to score."""

    model_config = ConfigDict(extra="forbid")

    request_id: RequestId
    input: ScalarValues = Field(
        description="feature name -> value; must hold the model's feature columns (configured, else the "
        "champion's); other keys are kept and ignored by the model"
    )
    slice: ScalarValues = Field(
        default_factory=dict, description="slice attributes (e.g. region) for per-slice metrics"
    )


class RequestsBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model_name": "digits",
                    "items": [{"request_id": "order-1041", "input": {"f0": 0.5, "f1": 1.5}, "slice": {}}],
                }
            ]
        },
    )

    model_name: Text = Field(min_length=1, max_length=100, description="a model of the configuration")
    items: list[RequestItem] = Field(
        description="requests to enqueue, stored all together or not at all (at most api.max_request_batch_size)"
    )


RequestStatusName = Literal["pending", "scored", "failed"]


class EnqueuedRequest(BaseModel):
    request_id: str
    id: int = Field(description="the internal id of the request")
    status: RequestStatusName
    created: bool = Field(
        description="false when the id had been enqueued before with the same input (a retry)"
    )
    trace_id: uuid.UUID | None = Field(description="set once the request is scored")


class RequestsOut(BaseModel):
    model_name: str
    created: int
    existing: int = Field(description="items whose request id had been enqueued before with the same input")
    items: list[EnqueuedRequest] = Field(description="one result per submitted item, in order")


class RequestStatusOut(BaseModel):
    """What became of one request. Post feedback on its trace_id once it is scored."""

    request_id: str
    status: Literal["pending", "scored", "failed", "unknown"] = Field(
        description="unknown: never enqueued for this model (batch reads only)"
    )
    id: int | None
    error: str | None = Field(description="why the request could not be scored (status failed)")
    trace_id: uuid.UUID | None
    prediction: str | None = Field(description="the predicted label (output_label of the prediction)")
    confidence: float | None
    model_version: int | None = Field(description="the champion version that scored it")
    created_at: datetime | None
    scored_at: datetime | None


class RequestStatusesOut(BaseModel):
    model_name: str
    known: int
    unknown: int
    items: list[RequestStatusOut] = Field(description="one entry per distinct request id, in the order asked")


class PoolStats(BaseModel):
    """The connection pool of this API process: sizes now, counters since it opened."""

    pool_min: int
    pool_max: int
    pool_size: int = Field(description="connections open or being opened")
    pool_available: int = Field(description="idle connections ready to use")
    requests_waiting: int = Field(description="requests waiting for a connection now")
    requests_num: int = Field(description="connections handed out")
    requests_errors: int = Field(description="requests that got no connection in time")
    connections_errors: int = Field(description="failed connection attempts")
    connections_lost: int = Field(description="connections found broken on check-out (e.g. after a restart)")
    returns_bad: int = Field(description="connections given back broken (e.g. lost during a request)")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    pool: PoolStats


class Problem(BaseModel):
    field: str
    reason: str


class ProblemOut(BaseModel):
    detail: list[Problem]
