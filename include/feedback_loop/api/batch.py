"""The items of one batch on their way into the store: masked, triaged and hashed once each, on demand.

The service looks things up in PostgreSQL while `prepare_until` works through the first items; whatever is
left is prepared by `rows` as the COPY asks for it, so that work overlaps with PostgreSQL inserting the
rows already sent. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedback_loop.api import triage
from feedback_loop.api.problems import Conflict, Invalid
from feedback_loop.api.schemas import FeedbackItem
from feedback_loop.core import privacy, store

Model = tuple[str, int]  # model name, version


@dataclass
class Plan:
    """Which items to write. Keys stored before (retries) get their stored id now, written rows theirs
    as they are copied, and items repeating an earlier item's key and body that item's id at the end."""

    ids: list[int]
    to_write: list[int]
    repeats: dict[int, int]  # item -> earlier item of this batch with the same key and body


@dataclass
class Written:
    """What the written rows mean for triage: versions with negative items, each version's written items
    in item order (BatchItems.newest tells them), and the urgent rows to notify about."""

    negative_versions: set[Model] = field(default_factory=set)
    by_version: dict[Model, list[int]] = field(default_factory=dict)
    urgent: list[dict[str, Any]] = field(default_factory=list)


class BatchItems:
    def __init__(self, items: Sequence[FeedbackItem], keys: Sequence[str | None]) -> None:
        self.items = items
        self.keys = keys
        self.trace_ids = [body.trace_id for body in items]
        # What prepare() found, item by item, in parallel lists rather than a tuple per item: 10,000 more
        # objects for the garbage collector to count and walk during the batch.
        n = len(items)
        self._prepared = bytearray(n)
        self._traces: list[str] = [""] * n  # each trace id as text, written once the item is prepared
        self._comments: list[str | None] = [None] * n
        self._sources: list[str] = [""] * n
        self._verdicts: list[triage.Triage | None] = [None] * n
        self._users: list[str | None] = [None] * n
        self._pseudonymize = privacy.pseudonymizer()

    def given_keys(self) -> list[str]:
        return [k for k in self.keys if k is not None]

    def ids_needed(self) -> int:
        """One id per distinct key and per item without a key: enough for every row this batch can write,
        without waiting for the look-up of keys stored before."""
        given = self.given_keys()
        return len(set(given)) + len(self.keys) - len(given)

    def prepare(self, i: int) -> None:
        """Mask the item's comment, triage it, pseudonymize its user id and write its trace id, once."""
        if self._prepared[i]:
            return
        body = self.items[i]
        self._traces[i] = str(body.trace_id)
        comment = None if body.comment is None else privacy.mask(body.comment).text
        self._comments[i] = comment
        self._verdicts[i] = triage.triage(body.kind, body.rating, body.signal, comment)
        self._sources[i] = "implicit" if body.kind == "implicit" else "api"
        self._users[i] = self._pseudonymize(body.user_id)
        self._prepared[i] = 1

    def digest(self, i: int) -> str:
        self.prepare(i)
        body = self.items[i]
        return store.request_hash(
            self._traces[i], body.kind, body.rating, body.label, body.signal, self._comments[i],
            self._users[i], self._sources[i],
        )  # fmt: skip

    def newest(self, written: list[int], window: int) -> list[dict[str, Any]]:
        """The last `window` of these written items, newest first (rows of one batch share created_at and
        their ids rise in item order), as the negative-rate check reads them."""
        items = self.items
        return [
            {"trace_id": items[i].trace_id, "is_negative": triage.is_negative(items[i].kind, items[i].rating, items[i].signal)}
            for i in reversed(written[-window:])
        ]  # fmt: skip

    def request_hash(self) -> str:
        """Fingerprint of the whole batch, to tell a retry under an Idempotency-Key from another batch:
        SHA-256 of each item's own client_event_id and request hash, in item order."""
        parts = [[body.client_event_id, self.digest(i)] for i, body in enumerate(self.items)]
        return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()

    def prepare_until(self, done: Callable[[], bool], start: int = 0) -> None:
        """Prepare items in order from `start` until `done()` (checked every 256 items) says to stop."""
        for i in range(start, len(self.items)):
            if (i - start) % 256 == 0:
                if done():
                    return
                # Let the look-up threads take the GIL now: otherwise each of their steps waits out the
                # interpreter's 5 ms switch interval and the COPY starts later (docs/benchmarks.md).
                time.sleep(0)
            self.prepare(i)

    def plan(self, stored: dict[str, tuple[int, str]]) -> Plan:
        """Compare retries (keys stored before) and keys repeated inside the batch by body; the rows to
        write get their hash later, in `rows`. A key with another body is 409 (stored) or 422 (repeated)."""
        items, digest = self.items, self.digest
        if not stored and self.ids_needed() == len(items):  # no key repeats: every item is written
            return Plan(ids=[0] * len(items), to_write=list(range(len(items))), repeats={})
        plan = Plan(ids=[0] * len(items), to_write=[], repeats={})
        first_with_key: dict[str, int] = {}
        for i, key in enumerate(self.keys):
            if key is None:
                plan.to_write.append(i)
            elif key in stored:
                plan.ids[i], stored_digest = stored[key]
                if stored_digest != digest(i):
                    raise Conflict(
                        f"items[{i}].client_event_id", f"{key!r} was already used with a different body"
                    )
            elif key in first_with_key:
                j = first_with_key[key]
                if digest(j) != digest(i):
                    raise Invalid(
                        f"items[{i}].client_event_id", f"repeats the key of items[{j}] with a different body"
                    )
                plan.repeats[i] = j
            else:
                first_with_key[key] = i
                plan.to_write.append(i)
        return plan

    def rows(
        self,
        plan: Plan,
        model_of: Sequence[Model | None],
        allocated: Sequence[int],
        written: Written,
        positions: range | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """The rows to COPY (store.FEEDBACK_COPY_COLUMNS), prepared as they are asked for; records each
        row's id in `plan` and its triage meaning in `written`. `positions`: which of `plan.to_write`
        (all by default); the n-th of them gets the n-th allocated id (ids may be left over)."""
        items, keys, trace_ids, to_write = self.items, self.keys, self._traces, plan.to_write
        prepare, digest, ids = self.prepare, self.digest, plan.ids
        comments, sources, verdicts, users = self._comments, self._sources, self._verdicts, self._users
        negative_versions, by_version, urgent = written.negative_versions, written.by_version, written.urgent
        positions = range(len(to_write)) if positions is None else positions
        if len(allocated) < len(positions):  # a row without an id would be dropped, never written
            raise RuntimeError(f"{len(allocated)} ids reserved for {len(positions)} rows")
        for position, feedback_id in zip(positions, allocated, strict=False):  # ids may be left over
            i = to_write[position]
            body, key = items[i], keys[i]
            prepare(i)
            comment, verdict = comments[i], verdicts[i]
            model = model_of[i]
            model_name, version = model
            ids[i] = feedback_id
            if triage.is_negative(body.kind, body.rating, body.signal):
                negative_versions.add(model)
            version_items = by_version.get(model)
            if version_items is None:
                version_items = by_version[model] = []
            version_items.append(i)
            if verdict.priority == "urgent":
                urgent.append(
                    {"id": feedback_id, "trace_id": body.trace_id, "model_name": model_name,
                     "model_version": version, "kind": body.kind, "rating": body.rating,
                     "failure_mode": verdict.failure_mode, "comment": comment}
                )  # fmt: skip
            yield (
                feedback_id, trace_ids[i], model_name, version, body.kind, body.rating, body.label, body.signal,
                comment, users[i], sources[i], verdict.priority, verdict.failure_mode, key,
                None if key is None else digest(i),
            )  # fmt: skip

    @staticmethod
    def replayed(feedback_ids: Sequence[int]) -> dict[str, Any]:
        """The response to a batch sent again under its Idempotency-Key: every item found stored."""
        return {
            "created": 0,
            "duplicates": len(feedback_ids),
            "urgent": 0,
            "review_items_opened": 0,
            "items": [{"id": feedback_id, "created": False} for feedback_id in feedback_ids],
        }

    def outcome(self, plan: Plan, written: Written, review_items_opened: int) -> dict[str, Any]:
        """The response body: counts, and each item's id in item order (created or found stored)."""
        ids = plan.ids
        for i, j in plan.repeats.items():
            ids[i] = ids[j]
        created = set(plan.to_write)
        return {
            "created": len(plan.to_write),
            "duplicates": len(self.items) - len(plan.to_write),
            "urgent": len(written.urgent),
            "review_items_opened": review_items_opened,
            "items": [{"id": feedback_id, "created": i in created} for i, feedback_id in enumerate(ids)],
        }
