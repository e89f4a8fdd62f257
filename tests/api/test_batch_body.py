"""Batch bodies from raw bytes: items parsed into BatchItem with FeedbackBody's rules, and the trace ids
found without parsing."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from feedback_loop.api import batch_body
from feedback_loop.api.schemas import FeedbackBody
from feedback_loop.core import store

pytestmark = pytest.mark.unit

TRACE = "7b0c8a8e-5a3e-4cc4-9a59-0b4f2f7f1e11"


def _described_fields(schema: dict) -> dict:
    """Each property's rules, without the words that describe it."""
    return {
        name: {k: v for k, v in prop.items() if k not in ("title", "description", "examples")}
        for name, prop in schema["properties"].items()
    }


def test_a_batch_item_has_the_fields_and_rules_of_a_feedback_body():
    item, body = TypeAdapter(batch_body.BatchItem).json_schema(), FeedbackBody.model_json_schema()
    assert _described_fields(item) == _described_fields(body)
    assert item["required"] == body["required"] == ["trace_id", "kind"]
    assert item["additionalProperties"] is body["additionalProperties"] is False


VALID = [
    {"trace_id": TRACE, "kind": "thumbs_up"},
    {
        "trace_id": TRACE.upper(),
        "kind": "rating",
        "rating": 2,
        "comment": "read my 7 as a 1",
        "user_id": "u-1",
    },
    {"trace_id": f"urn:uuid:{TRACE}", "kind": "correction", "label": "7", "client_event_id": "app-1"},
    {"trace_id": TRACE.replace("-", ""), "kind": "implicit", "signal": "retried", "comment": None},
    {"trace_id": TRACE, "kind": "comment", "comment": 'émoji 🙂 \u2028 and "quotes"', "user_id": "ü"},
]
INVALID = [
    {"trace_id": "not-a-uuid", "kind": "thumbs_up"},
    {"trace_id": TRACE, "kind": "nope"},
    {"trace_id": TRACE, "kind": "rating", "rating": 9},
    {"trace_id": TRACE, "kind": "rating", "rating": True},
    {"trace_id": TRACE, "kind": "rating", "rating": "3"},
    {"trace_id": TRACE, "kind": "correction", "label": ""},
    {"trace_id": TRACE, "kind": "thumbs_up", "user_id": "x" * 201},
    {"trace_id": TRACE, "kind": "thumbs_up", "client_event_id": " padded"},
    {"trace_id": TRACE, "kind": "thumbs_up", "client_event_id": "tab\there"},
    {"trace_id": TRACE, "kind": "thumbs_up", "unknown": 1},
    {"kind": "thumbs_up"},
]


def test_batch_items_hold_what_feedback_bodies_hold():
    items = batch_body.parse(json.dumps({"items": VALID}).encode(), 10)
    assert [type(item) for item in items] == [batch_body.BatchItem] * len(VALID)
    assert [dataclasses.asdict(item) for item in items] == [
        FeedbackBody.model_validate_json(json.dumps(v)).model_dump() for v in VALID
    ]


@pytest.mark.parametrize("bad", INVALID)
def test_an_item_a_feedback_body_refuses_is_refused_with_the_feedback_bodys_problems(bad):
    raw = json.dumps({"items": [VALID[0], bad]}).encode()
    with pytest.raises(ValidationError) as expected:
        FeedbackBody.model_validate_json(json.dumps(bad))
    with pytest.raises(batch_body.InvalidItems) as refused:
        batch_body.parse(raw, 10)
    want = [
        {"type": e["type"], "loc": ("items", 1, *e["loc"]), "msg": e["msg"]}
        for e in expected.value.errors(include_url=False, include_input=False)
    ]
    assert [{k: e[k] for k in ("type", "loc", "msg")} for e in refused.value.errors] == want


@settings(max_examples=200, deadline=None)
@given(
    rating=st.one_of(st.none(), st.integers(-3, 9)),
    label=st.one_of(st.none(), st.text(max_size=5)),
    key=st.one_of(st.none(), st.text(max_size=4)),
    user=st.one_of(st.none(), st.text(max_size=3)),
)
def test_a_batch_item_and_a_feedback_body_accept_the_same_values(rating, label, key, user):
    value = {"trace_id": TRACE, "kind": "rating", "rating": rating, "label": label}
    value |= {"client_event_id": key, "user_id": user}
    raw = json.dumps(value)
    try:
        body = FeedbackBody.model_validate_json(raw).model_dump()
    except ValidationError:
        body = None
    try:
        item = dataclasses.asdict(batch_body.parse(f'{{"items": [{raw}]}}'.encode(), 1)[0])
    except batch_body.InvalidItems:
        item = None
    assert item == body


def test_the_trace_ids_of_a_body_are_found_as_the_store_writes_them():
    traces = [uuid.uuid4() for _ in range(5)]
    raw = json.dumps({"items": [{"trace_id": str(t), "kind": "thumbs_up"} for t in traces]}).encode()
    assert batch_body.trace_ids(raw, 10) == (store.trace_id_array(traces), 5)
    assert batch_body.trace_ids(raw, 4) is None  # more than a batch may hold: not even listed


@pytest.mark.parametrize(
    "written",
    [
        f'{{"trace_id": "{TRACE.upper()}", "kind": "thumbs_up"}}',  # valid, but not as the store writes it
        f'{{"trace_id": "{TRACE}", "kind": "comment", "comment": "x", "label": "trace_id"}}',  # named twice
        '{"trace_id": 5, "kind": "thumbs_up"}',
        '{"kind": "thumbs_up"}',
    ],
)
def test_no_trace_ids_are_offered_unless_every_one_is_written_canonically(written):
    assert batch_body.trace_ids(f'{{"items": [{written}]}}'.encode(), 10) is None


def test_one_event_of_many_unknown_fields_is_refused_before_anything_is_made_per_field():
    """Counting the strings comes first: the regular expression that looked at the values next made one
    piece per string, 43 MB for 200,000 fields (230 MB in the api-server for a million)."""
    import tracemalloc

    from feedback_loop.api.problems import Invalid

    event = {"trace_id": TRACE, "kind": "thumbs_up", **{f"f{i}": 0 for i in range(200_000)}}
    raw = json.dumps(event, separators=(",", ":")).encode()
    tracemalloc.start()
    try:
        with pytest.raises(Invalid) as refused:
            batch_body.parse_event(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (problem,) = refused.value.problems
    assert problem["field"] == "body" and "200004 JSON strings" in problem["reason"], problem
    assert peak < len(raw), peak


def test_an_honest_event_full_of_commas_quotes_and_brackets_is_still_parsed():
    comment = 'said "no", then [twice], {again}, \\ and "no", ' * 40
    raw = json.dumps({"trace_id": TRACE, "kind": "comment", "comment": comment}).encode()
    assert batch_body.values_bound(raw) > batch_body.VALUES_PER_ITEM  # the closer look is taken
    assert batch_body.parse_event(raw).comment == comment
