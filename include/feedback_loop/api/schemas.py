"""Request and response bodies of the feedback API (pydantic; they also make the OpenAPI document).

Static rules live here (types, kinds, rating range, lengths that never change). Rules that depend on the
configuration (comment length, batch size, low ratings needing a comment) and on the kind (a rating needs
`rating`, a correction needs `label`) are checked by the service, with the same error shape.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

Kind = Literal["thumbs_up", "thumbs_down", "rating", "correction", "comment", "implicit"]
Signal = Literal["accepted", "abandoned", "retried", "escalated"]
KEY_MAX_LENGTH = 200


def _rating_in_range(value: int) -> int:
    if not 1 <= value <= 5:
        raise ValueError("must be between 1 and 5")
    return value


def _key_is_printable(value: str) -> str:
    if not value.isprintable() or value.strip() != value:
        raise ValueError("must be printable text without leading or trailing spaces")
    return value


Rating = Annotated[
    StrictInt, AfterValidator(_rating_in_range), Field(json_schema_extra={"minimum": 1, "maximum": 5})
]
EventId = Annotated[str, Field(min_length=1, max_length=KEY_MAX_LENGTH), AfterValidator(_key_is_printable)]


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


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackBody] = Field(description="feedback events, stored all together or not at all")


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

    chosen_options: list[str] = Field(
        max_length=10, description="exactly one of the review's options (the labels, 'None of these', skip)"
    )
    params_input: dict[str, Any] = Field(
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
