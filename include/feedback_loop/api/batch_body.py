"""A batch body from raw bytes to validated items, at a cost bounded by the configured batch size.

pydantic parses a JSON body into a tree before it validates anything, and makes one error object per
problem: a 3 MB body of a million empty items (`{"items":[{},{},...]}`) cost 1.8 GB and 10 s before the
item count was even looked at (issue 14). So a body goes through three gates, each cheap for an honest
batch:

1. *Values.* Before any parsing, an upper bound of the JSON values in the body: one per comma and per
   opening bracket (`bytes.count`, 2 ms for a 10,000-item body). A batch of `limit` items holds at most
   `limit * (fields + 1)` values; above twice that, the body is looked at more closely, still without
   parsing it and without allocating anything per value (`bytes.replace`, `count`, `translate`): too many
   strings for such a batch, or too many values once strings (whose commas are text) are taken out, and it
   is refused, naming `items` with the number of items when the body has the shape of a long batch. So
   pydantic's tree is never larger than that of `2 * limit` full items, and these checks cost at most a
   few copies of the body (0.1 s and no measurable growth for a million empty items, under 0.6 s for any
   20 MB body tried).
2. *Length.* pydantic checks `max_length=limit` on the items before validating any item.
3. *Problems.* Items are validated with `fail_fast`: pydantic stops at the first bad item. Only then are
   the items gone through one by one (from the bounded tree) to report up to MAX_REPORTED_PROBLEMS
   problems, so a body of many bad items, or one item with thousands of unknown fields, never turns
   into thousands of error objects.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.dataclasses import dataclass

from feedback_loop.api.problems import MAX_REPORTED_PROBLEMS, Invalid
from feedback_loop.api.schemas import BatchBody, FeedbackBody, FeedbackItem

FIELDS = frozenset(FeedbackBody.model_fields)
# Values one item may hold before the body is refused unparsed: twice the most a valid item holds (its
# object and one value per field), so an honest batch never comes near it.
VALUES_PER_ITEM = 2 * (len(FIELDS) + 1)
ENVELOPE_VALUES = 16

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{},")
_ITEMS_FIRST = re.compile(rb'\s*\{\s*"items"\s*:\s*\[')
_ITEM = TypeAdapter(FeedbackBody)


def _slotted(model: type[BaseModel]) -> type:
    """A pydantic dataclass with slots and the fields of `model` (types, defaults, rules, extra fields
    refused): 10,000 batch items parse into it in 13 ms instead of 19 ms as models, and each item is one
    object for the garbage collector instead of three (instance, attribute dict, set of fields set).
    Built from the model, so the two cannot drift apart."""
    fields = model.model_fields
    namespace: dict[str, Any] = {"__annotations__": {name: info.annotation for name, info in fields.items()}}
    namespace.update(fields)  # each FieldInfo is the dataclass field's default: its default and rules
    return dataclass(type("BatchItem", (), namespace), slots=True, config=ConfigDict(extra="forbid"))


BatchItem = _slotted(FeedbackBody)
# A trace id as clients and pydantic write a UUID: lower-case hex, hyphenated.
_CANONICAL_TRACE_ID = re.compile(
    rb'"trace_id"\s*:\s*"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"'
)


class InvalidItems(Exception):
    """The body's problems as pydantic error dicts (at most MAX_REPORTED_PROBLEMS)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


def parse(raw: bytes, limit: int) -> list[FeedbackItem]:
    """The items of a batch body (BatchItem objects); Invalid (too many items or values) or InvalidItems
    otherwise, the problems as FeedbackBody reports them."""
    check_size(raw, limit)
    try:
        return _model(limit).model_validate_json(raw).items
    except ValidationError as exc:
        raise InvalidItems(_problems(raw, exc, limit)) from None


def parse_event(raw: bytes) -> FeedbackBody:
    """One event of POST /feedback, bounded like a batch of one item; Invalid (too many values) or
    InvalidItems (at most MAX_REPORTED_PROBLEMS) otherwise."""
    most = VALUES_PER_ITEM
    if values_bound(raw) > most:
        # Counted before the regular expression below, which makes a piece per string: a million
        # unknown fields (12 MB) cost 230 MB there.
        strings = string_count(raw)
        if strings > 2 * most:
            raise Invalid(
                "body",
                f"holds {strings} JSON strings, more than one event of the documented fields can "
                f"({2 * most}); send only those fields",
            )
        structure = _STRING.sub(b"0", raw)  # strings become one token: their commas are text
        values = values_bound(structure)
        if values > most and structure.count(b"[") + structure.count(b"{") > 2 * structure.count(b",") + 2:
            raise Invalid("body", "is not valid JSON for one event: it is nested too deeply")
        if values > most:
            raise Invalid(
                "body",
                f"holds {values} JSON values, more than one event of the documented fields can ({most}); "
                "send only those fields, without nested values",
            )
    try:
        return _ITEM.validate_json(raw)
    except ValidationError as exc:
        raise InvalidItems(
            exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_PROBLEMS]
        ) from None


def trace_ids(raw: bytes, limit: int) -> tuple[str, int] | None:
    """The trace ids of a batch body found without parsing it (2 ms for 10,000 items): a JSON array of
    them in body order, as `store.trace_id_array` writes the parsed items' trace ids, and their number.
    None unless the body names 1 to `limit` trace ids, each a canonical UUID (counted first, so a body
    naming more costs no list of them). A guess, for asking PostgreSQL early: only the parsed items can
    confirm it (the two arrays are equal)."""
    named = raw.count(b'"trace_id"')
    if not 0 < named <= limit:
        return None
    found = _CANONICAL_TRACE_ID.findall(raw)
    if len(found) != named:
        return None
    return (b'["' + b'","'.join(found) + b'"]').decode(), len(found)


def most_values(limit: int) -> int:
    return VALUES_PER_ITEM * limit + ENVELOPE_VALUES


def values_bound(raw: bytes) -> int:
    """At least the number of JSON values in `raw` (every value but a container's first follows a comma);
    exact for a container-free prefix, more when strings hold commas or brackets."""
    return raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1


def string_count(raw: bytes) -> int:
    """The JSON strings in `raw`, without parsing it or allocating per string: with escaped backslashes
    and quotes out of the way, every quote left opens or closes a string."""
    return raw.replace(b"\\\\", b"").replace(b'\\"', b"").count(b'"') // 2


def check_size(raw: bytes, limit: int) -> None:
    """Invalid naming `items` when the body holds more than a batch of `limit` items can, without
    parsing it. Linear in the body with no allocation per value: `bytes.count`, `replace` and `translate`
    run in C over the whole body; only a body with few strings has them replaced by a regular expression."""
    most = most_values(limit)
    if values_bound(raw) <= most:
        return
    strings = string_count(raw)
    if strings > 2 * most:
        raise Invalid(
            "items",
            f"at most {limit} items per batch; the body holds {strings} strings, more than such a batch "
            f"can ({2 * most}); split the batch",
        )
    structure = _STRING.sub(b"0", raw)  # strings become one token: their commas are text
    values = values_bound(structure)
    if values <= most:
        return
    items = _item_count(structure) if _ITEMS_FIRST.match(raw) else None
    if items is not None and items > limit:
        raise Invalid("items", f"at most {limit} items per batch (got {items}); split the batch")
    raise Invalid(
        "items",
        f"the body holds {values} JSON values, more than a batch of at most {limit} items of the "
        f"documented fields can ({most}); send only those fields, without nested values",
    )


def _item_count(structure: bytes) -> int | None:
    """The number of items of a `{"items": [...]}` body without strings, when each item is a scalar,
    `{}` or `[]` (what a body built to be long holds); None for any other shape."""
    shape = structure.translate(None, _NOT_STRUCTURE)
    if not (shape.startswith(b"{[") and shape.endswith(b"]}")):
        return None
    inner = shape[2:-2]
    if inner.replace(b"{}", b"").replace(b"[]", b"").translate(None, b","):
        return None  # an item holds something
    return inner.count(b",") + 1 if inner else 0


@cache
def _model(limit: int) -> type[BaseModel]:
    """BatchBody of BatchItem with the configured limit: pydantic refuses a longer list before validating
    its items, and stops at the first bad item (whose problems `_problems` then gets from FeedbackBody)."""
    items = (list[BatchItem], Field(max_length=limit, fail_fast=True))
    return create_model("BatchBody", __base__=BatchBody, items=items)


def _is_item_error(error: dict[str, Any]) -> bool:
    loc = error.get("loc") or ()
    return len(loc) > 1 and loc[0] == "items" and isinstance(loc[1], int)


def _problems(raw: bytes, exc: ValidationError, limit: int) -> list[dict[str, Any]]:
    if exc.error_count() <= MAX_REPORTED_PROBLEMS:
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            if error["type"] == "too_long" and tuple(error["loc"]) == ("items",):
                got = error["ctx"]["actual_length"]
                raise Invalid("items", f"at most {limit} items per batch (got {got}); split the batch")
        if not any(_is_item_error(e) for e in errors):
            return errors  # not JSON, not an object, no items, ...
    # pydantic stopped at the first bad item; the body is valid JSON of a bounded size (check_size)
    return _problems_of(pydantic_core.from_json(raw), limit)


def _problems_of(document: Any, limit: int) -> list[dict[str, Any]]:
    """The first MAX_REPORTED_PROBLEMS problems of a parsed batch body, in pydantic's error shape;
    stops looking once it has them."""
    if not isinstance(document, dict):
        return [_error("model_type", (), "Input should be an object")]
    found = [
        _error("extra_forbidden", (key,), "Extra inputs are not permitted")
        for key in document
        if key != "items"
    ]
    if "items" not in document:
        found.append(_error("missing", ("items",), "Field required"))
    elif not isinstance(document["items"], list):
        found.append(_error("list_type", ("items",), "Input should be a valid list"))
    else:
        for i, item in enumerate(document["items"][:limit]):
            if len(found) >= MAX_REPORTED_PROBLEMS:
                break
            found += _item_problems(i, item)
    return found[:MAX_REPORTED_PROBLEMS]


def _item_problems(i: int, item: Any) -> list[dict[str, Any]]:
    """One item's problems as pydantic reports them (field errors, then unknown fields), with at most
    MAX_REPORTED_PROBLEMS unknown fields looked at."""
    if not isinstance(item, dict):
        return [_error("model_type", ("items", i), "Input should be an object")]
    unknown = [key for key in item if key not in FIELDS][:MAX_REPORTED_PROBLEMS]
    known = {key: value for key, value in item.items() if key in FIELDS}
    found: list[dict[str, Any]] = []
    try:
        _ITEM.validate_json(pydantic_core.to_json(known))  # JSON mode, as the batch is validated
    except ValidationError as exc:
        found = [
            {**e, "loc": ("items", i, *e["loc"])} for e in exc.errors(include_url=False, include_input=False)
        ]
    return found + [
        _error("extra_forbidden", ("items", i, key), "Extra inputs are not permitted") for key in unknown
    ]


def _error(kind: str, loc: tuple[Any, ...], msg: str) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg}
