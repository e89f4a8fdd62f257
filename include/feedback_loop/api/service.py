"""What the feedback API does, without HTTP: validate, de-duplicate, mask, triage, store, notify.

Every write is one transaction. Problems are raised (api.problems) before anything is written or inside the
transaction, which the pool then rolls back: nothing is ever partially stored. Urgent feedback writes a
notification into the outbox in the same transaction; delivery happens after the commit on a separate
worker, so a slow or dead webhook never slows down or fails a request.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from feedback_loop.api import batch_body, inference_requests, triage
from feedback_loop.api.batch import BatchItems, Plan, Written
from feedback_loop.api.group_commit import GroupCommit, GroupCommitClosed
from feedback_loop.api.pool import ConnectionPool, PoolBusyError
from feedback_loop.api.problems import (
    MAX_REPORTED_PROBLEMS,
    ApiProblem,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
)
from feedback_loop.api.schemas import (
    UNICODE_REASON,
    FeedbackBody,
    FeedbackItem,
    RequestsBody,
    unicode_problem,
)
from feedback_loop.core import config, notify, privacy, queries, store
from feedback_loop.core.errors import (
    ConflictError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from feedback_loop.registry import versions as registry

log = logging.getLogger(__name__)
T = TypeVar("T")
INTRANS, INERROR = TransactionStatus.INTRANS, TransactionStatus.INERROR

URGENT_TOPIC = "urgent_feedback"
NEGATIVE_RATE_TOPIC = "negative_feedback_rate"
MAX_QUEUED_DELIVERIES = 1000
BATCH_ATTEMPTS = 6  # the first one without looking keys up
HEALTH_WAIT_SECONDS = 2.0  # a health probe answers quickly, also when every connection is busy
# How long a delivery keeps trying to reach an unreachable database before leaving its notification
# in the outbox for `feedback-loop api deliver-pending`.
DELIVERY_RETRY_SECONDS = 60
DELIVERY_CONNECTION_WAIT_SECONDS = 2.0
NUL_REASON = "must not contain NUL (\\u0000) characters"
# A batch of more than twice this many items has the models of its first this many items looked up on
# their own, so its COPY starts while the rest's are looked up.
MODEL_LOOKUP_HEAD = 1000


def _required(field: str, kind: str) -> dict[str, str]:
    return {"field": field, "reason": f"is required when kind is '{kind}'"}


def _only_for(field: str, its_kind: str, kind: str) -> dict[str, str]:
    return {"field": field, "reason": f"is only allowed when kind is '{its_kind}' (kind is '{kind}')"}


def problems(body: FeedbackItem, api: config.ApiConfig) -> list[dict[str, str]]:
    """Every problem of one item that the schema cannot see (rules that depend on its kind or on the
    configuration), in a fixed order; empty when there is none. Plain checks on the attributes, no
    loops: batch ingest runs this for up to 10,000 items per request, and nearly all are valid."""
    kind, rating, label, signal = body.kind, body.rating, body.label, body.signal
    comment, user_id = body.comment, body.user_id
    found: list[dict[str, str]] = []
    if kind == "rating":
        if rating is None:
            found.append(_required("rating", kind))
    elif rating is not None:
        found.append(_only_for("rating", "rating", kind))
    if kind == "correction":
        if label is None or not label.strip():
            found.append(_required("label", kind))
    elif label is not None:
        found.append(_only_for("label", "correction", kind))
    if kind == "implicit":
        if signal is None or not signal.strip():
            found.append(_required("signal", kind))
    elif signal is not None:
        found.append(_only_for("signal", "implicit", kind))
    if kind == "comment" and (comment is None or not comment.strip()):
        found.append(_required("comment", kind))
    if comment is not None and "\x00" in comment:  # PostgreSQL text cannot hold NUL
        found.append({"field": "comment", "reason": NUL_REASON})
    if label is not None and "\x00" in label:
        found.append({"field": "label", "reason": NUL_REASON})
    if user_id is not None and "\x00" in user_id:
        found.append({"field": "user_id", "reason": NUL_REASON})
    # Unpaired surrogates (JSON may escape them; psycopg cannot encode them): isascii() is O(1).
    if comment is not None and not comment.isascii() and unicode_problem(comment):
        found.append({"field": "comment", "reason": UNICODE_REASON})
    if label is not None and not label.isascii() and unicode_problem(label):
        found.append({"field": "label", "reason": UNICODE_REASON})
    if user_id is not None and not user_id.isascii() and unicode_problem(user_id):
        found.append({"field": "user_id", "reason": UNICODE_REASON})
    if comment is not None and len(comment) > api.max_comment_length:
        reason = f"must be at most {api.max_comment_length} characters (got {len(comment)})"
        found.append({"field": "comment", "reason": reason})
    if (
        api.low_rating_requires_comment
        and kind == "rating"
        and rating is not None
        and rating <= triage.LOW_RATING
        and len((comment or "").strip()) < api.low_rating_comment_min_length
    ):
        reason = (
            f"a rating of {rating} needs a comment of at least "
            f"{api.low_rating_comment_min_length} characters saying what went wrong"
        )
        found.append({"field": "comment", "reason": reason})
    return found


def _check_items(items: Sequence[FeedbackItem], api: config.ApiConfig) -> None:
    """422 naming the first MAX_REPORTED_PROBLEMS problems of a batch's items."""
    found: list[dict[str, str]] = []
    for i, body in enumerate(items):
        item_problems = problems(body, api)
        if item_problems:
            found += [{**p, "field": f"items[{i}].{p['field']}"} for p in item_problems]
            if len(found) >= MAX_REPORTED_PROBLEMS:
                break
    if found:
        raise Invalid(**found[0], more=found[1:MAX_REPORTED_PROBLEMS])


def _check_traces(items: Sequence[FeedbackItem], model_of: Sequence[tuple[str, int] | None]) -> None:
    """404 naming the first MAX_REPORTED_PROBLEMS items whose trace id has no logged prediction."""
    unknown = [(i, body.trace_id) for i, body in enumerate(items) if model_of[i] is None]
    if unknown:
        (first, trace), *rest = unknown[:MAX_REPORTED_PROBLEMS]
        raise NotFound(
            f"items[{first}].trace_id",
            f"no prediction was logged with trace_id {trace}",
            more=[
                {"field": f"items[{i}].trace_id", "reason": f"no prediction with trace_id {t}"}
                for i, t in rest
            ],
        )


@dataclass(frozen=True)
class _Models:
    """Each item's model (None: unknown trace): the first `head` items' known before the COPY starts, the
    rest's looked up on a helper thread (`rest`; None when the head is the whole batch) while those rows
    are copied in."""

    head: int
    head_models: list[tuple[str, int] | None]
    rest: Future[list[tuple[str, int] | None]] | None

    def all(self) -> list[tuple[str, int] | None]:
        """Every item's model; waits for the rest."""
        return self.head_models if self.rest is None else self.head_models + self.rest.result()


PreparedEvent = tuple[store.FeedbackIn, str | None]  # a valid event, masked and triaged, and its key


@dataclass(frozen=True)
class Submitted:
    row: dict[str, Any]
    created: bool


class ReviewDesk(Protocol):
    """Answers review tasks for the authenticated user (adapters.airflow_reviews implements it)."""

    def answer(
        self, conn: psycopg.Connection, item_id: int, chosen_options: list[str], params_input: dict[str, Any]
    ) -> dict[str, Any]:
        """Record the answer (committed), hand it to the review task; the ReviewAnswerOut fields."""
        ...


class _Outage:
    """The delivery workers' view of the database: one warning line when an attempt first finds it
    unreachable, one info line when an attempt reaches it again. A failure of an attempt that started
    before the recovery belongs to the outage that just ended and opens no new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self._recovered_at = 0.0

    def begun(self, exc: Exception, attempt_started: float) -> None:
        with self._lock:
            if self._since is not None or attempt_started < self._recovered_at:
                return
            self._since = time.monotonic()
        log.warning(
            "notification delivery cannot reach the feedback database (%s); notifications wait in the "
            "outbox and delivery retries for up to %d s each (after that: feedback-loop api deliver-pending)",
            str(exc).strip().splitlines()[0][:300],
            DELIVERY_RETRY_SECONDS,
        )

    def over(self) -> None:
        with self._lock:
            if self._since is None:
                return
            lasted, self._since = time.monotonic() - self._since, None
            self._recovered_at = time.monotonic()
        log.info("notification delivery reaches the feedback database again after %.1f s", lasted)


class FeedbackService:
    def __init__(
        self,
        settings: config.Settings | None = None,
        pool: ConnectionPool | None = None,
        delivery_workers: int = 2,
    ) -> None:
        self._settings = settings
        self.pool = pool or ConnectionPool()
        self._delivery_workers = delivery_workers
        self._deliveries = self._executor()
        # Batch look-ups run here while the request thread prepares the items.
        self._lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="feedback-lookup")
        self._stopped = False
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._outage = _Outage()
        # Single events of concurrent requests share a transaction.
        self._single_events = self._group_commit()

    def _group_commit(self) -> GroupCommit[PreparedEvent, dict[str, Any] | None]:
        return GroupCommit(self._write_single_events, name="feedback-group-commit")

    def _executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._delivery_workers, thread_name_prefix="feedback-notify")

    @property
    def settings(self) -> config.Settings:
        # Read on use (cached by file mtime), so a plugin import never fails on a broken config.
        return self._settings or config.load()

    @staticmethod
    def _prepared(body: FeedbackBody) -> store.FeedbackIn:
        """Masked and triaged; the unmasked comment and user id go no further than this function."""
        comment = privacy.mask_text(body.comment)
        verdict = triage.triage(body.kind, body.rating, body.signal, comment)
        return store.FeedbackIn(
            trace_id=body.trace_id,
            kind=body.kind,
            rating=body.rating,
            label=body.label,
            signal=body.signal,
            comment=comment,
            user_id=privacy.pseudonymize(body.user_id),
            source="implicit" if body.kind == "implicit" else "api",
            priority=verdict.priority,
            failure_mode=verdict.failure_mode,
        )

    @staticmethod
    def _key(header_key: str | None, body: FeedbackBody) -> tuple[str | None, str]:
        if header_key is not None and body.client_event_id is not None and header_key != body.client_event_id:
            raise Invalid(
                "Idempotency-Key",
                "differs from client_event_id in the body; send one of them or make them equal",
            )
        if header_key is not None:
            return header_key, "Idempotency-Key"
        return body.client_event_id, "client_event_id"

    # ---- writes -----------------------------------------------------------------------------------

    def prepared_event(self, body: FeedbackBody, header_key: str | None = None) -> PreparedEvent | None:
        """The event, masked and triaged, with its key, when it is valid: write_event can store it. None
        otherwise; `submit` then says what is wrong."""
        try:
            key, _ = self._key(header_key, body)
        except Invalid:
            return None
        if problems(body, self.settings.api):
            return None
        return self._prepared(body), key

    def write_event(self, event: PreparedEvent) -> Future[dict[str, Any] | None]:
        """A future of the stored row of a prepared_event, committed together with the events of concurrent
        requests (api/group_commit.py), with its triage effects; of None when nothing was stored (a retry,
        a used key, an unknown trace): `submit` then says which."""
        try:
            return self._single_events.submit(event)
        except GroupCommitClosed:  # a request still running at shutdown: written alone, as it ends normally
            alone: Future[dict[str, Any] | None] = Future()
            alone.set_result(None)
            return alone

    def submit(self, body: FeedbackBody, header_key: str | None = None, *, grouped: bool = True) -> Submitted:
        """Store one event: in a group write (write_event), then, when that stored nothing or `grouped` is
        False (the caller's group write stored nothing), on its own, which says why."""
        prepared = self.prepared_event(body, header_key) if grouped else None
        if prepared is not None:
            row = self.write_event(prepared).result()
            if row is not None:
                return Submitted(row, True)
        key, key_field = self._key(header_key, body)
        found = problems(body, self.settings.api)
        if found:
            raise Invalid(**found[0], more=found[1:])
        item = self._prepared(body)
        # Here when the group write stored nothing (this says why) or was refused. A negative event may open
        # a review item and an urgent one writes its notification, in the same transaction.
        alone = item.priority != "urgent" and not triage.is_negative(body.kind, body.rating, body.signal)
        notifications: list[int] = []
        with self.pool.connection() as conn:
            try:
                if key is None:
                    result = store.record_feedback(conn, item, commit=alone)
                else:
                    result = store.record_keyed_feedback(conn, item, key, commit=alone)
            except NotFoundError:
                raise NotFound(
                    "trace_id", f"no prediction was logged with trace_id {body.trace_id}"
                ) from None
            except store.KeyOfStoredBatchError:
                raise Conflict(key_field, f"{key!r} was already used for a batch") from None
            except ConflictError:
                raise Conflict(key_field, f"{key!r} was already used with a different body") from None
            row = result.row
            if result.created:
                if row["is_negative"]:
                    notifications += self._negative_rate_check(conn, row["model_name"], row["model_version"])
                if row["priority"] == "urgent":
                    notifications.append(self._enqueue_urgent(conn, [row]))
        self._schedule(notifications)
        return Submitted(row, result.created)

    def _write_single_events(self, events: Sequence[PreparedEvent]) -> list[dict[str, Any] | None]:
        """The group write of `_single_events`: each event's new row, None for one to write on its own.

        One transaction: the rows, then the triage effects of those stored, as a batch has them (a negative
        event's version gets one negative-rate check over the group's rows; an urgent event its own
        notification); the COMMIT goes with the insert when there are none. An event whose key an earlier
        one in the group holds (a client's retry racing its first attempt) is written on its own
        afterwards, and so is every event of a group that failed before its COMMIT (a refusal, a lock
        timeout, an error in triage): its transaction was rolled back, and alone each one gets its own
        answer. When the connection broke, whether the COMMIT arrived is unknown, so the error reaches
        every request (503), as it would one written alone."""
        keys: set[str] = set()
        entries: list[PreparedEvent] = []
        place: list[int | None] = []  # each event's place among the entries written; None: written alone
        for item, key in events:
            if key in keys:
                place.append(None)
                continue
            if key is not None:
                keys.add(key)
            place.append(len(entries))
            entries.append((item, key))
        effects = any(
            item.priority == "urgent" or triage.is_negative(item.kind, item.rating, item.signal)
            for item, _ in entries
        )
        with self.pool.connection() as conn:
            try:
                rows = store.record_feedback_group(conn, entries, commit=not effects)
                notifications = self._after_group_write(conn, [row for row in rows if row is not None])
                conn.commit()
            except Exception as exc:
                # Written alone only when nothing of the group can have been committed: a broken connection
                # leaves the COMMIT in doubt, and a COMMIT already done must not be repeated.
                if conn.broken or conn.info.transaction_status not in (INTRANS, INERROR):
                    raise
                # Rolled back here: left to the pool (a COMMIT of the failed transaction), psycopg's cache
                # of prepared statements went on naming statements the server no longer had.
                conn.rollback()
                log.info(
                    "a group write of %d single events was refused (%s); each is written on its own",
                    len(entries),
                    type(exc).__name__,
                )
                return [None] * len(events)
        self._schedule(notifications)
        return [None if n is None else rows[n] for n in place]

    def _after_group_write(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[int]:
        """The triage effects of a group's stored rows, in its transaction; the notifications to deliver."""
        notifications: list[int] = []
        for model_name, version in sorted(
            {(r["model_name"], r["model_version"]) for r in rows if r["is_negative"]}
        ):
            notifications += self._negative_rate_check(conn, model_name, version)
        notifications += [self._enqueue_urgent(conn, [row]) for row in rows if row["priority"] == "urgent"]
        return notifications

    def submit_batch(self, items: Sequence[FeedbackItem], header_key: str | None = None) -> dict[str, Any]:
        """Store all items in one transaction, or none.

        Items are streamed with COPY straight into `feedback` while they are masked, triaged and hashed,
        so PostgreSQL inserts on one core while Python prepares on the other. Keys stored before are looked
        up first (a retry returns the stored ids). The unique index on the key stays the guarantee: if a
        concurrent request stores one of our keys in between, COPY fails on it, the transaction is rolled
        back and the batch is tried again, and this time finds that key stored.
        """
        api = self.settings.api  # once per batch: config.load() stats the file on every call
        # A batch sent under an Idempotency-Key looks its items' keys up from the start, so a reused item
        # key is named (409 items[i].client_event_id) before the batch key is compared.
        return self._submit(self._batch(items, api), api, header_key, look_up_keys=header_key is not None)

    def submit_batch_body(
        self, raw: bytes, parse: Callable[[], Sequence[FeedbackItem]], header_key: str | None = None
    ) -> dict[str, Any]:
        """submit_batch of the items `parse()` reads from the body `raw`.

        A large new batch (no Idempotency-Key) asks PostgreSQL for what its COPY waits for, every item's
        model and the ids, before the body is parsed, from the trace ids found in `raw`: PostgreSQL answers
        while the parse holds the interpreter (~20 ms for 10,000 items), and the COPY starts as soon as it
        ends. The parsed items must confirm those trace ids; otherwise the answers are dropped (their ids
        become gaps) and the batch goes the usual way. So does a batch when no checked connection is idle
        in the pool at once: a body is never kept waiting for the database before it is parsed, so a bad
        one is a 422 at once also while PostgreSQL is down or restarting. (A refused body has still cost
        PostgreSQL its look-ups; bodies too large for a batch are never looked at.)"""
        api = self.settings.api
        found = None if header_key is not None else batch_body.trace_ids(raw, api.max_batch_size)
        if found is None or found[1] <= 2 * MODEL_LOOKUP_HEAD:
            return self.submit_batch(parse(), header_key)
        trace_array, count = found
        batch: BatchItems | None = None
        written = None
        try:
            with self.pool.connection_at_hand() as conn:
                if conn is not None:
                    with conn.pipeline():
                        answers = store.send_models_and_ids(conn, trace_array, count, count)
                        items = parse()  # a refused body leaves the pipeline; the transaction rolls back
                    batch = self._batch(items, api)
                    _check_items(items, api)
                    if store.trace_id_array(batch.trace_ids) == trace_array:
                        model_of, ids = answers()
                        models = _Models(len(items), model_of, None)
                        written = self._write(conn, batch, None, models, {}, ids)
                    else:  # not the items' trace ids (an item naming "trace_id" twice, say: the last counts)
                        conn.rollback()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != store.IDEMPOTENCY_KEY_CONSTRAINT or batch is None:
                raise
            return self._submit(batch, api, None, look_up_keys=True)  # a key stored before: look them up
        if batch is None:  # no connection at hand: parsed first, as any batch
            return self.submit_batch(parse(), header_key)
        if written is None:
            return self._submit(batch, api, None, look_up_keys=False)
        outcome, notifications = written
        self._schedule(notifications)
        return outcome

    @staticmethod
    def _batch(items: Sequence[FeedbackItem], api: config.ApiConfig) -> BatchItems:
        limit = api.max_batch_size
        if not items:
            raise Invalid("items", "must contain at least one item")
        if len(items) > limit:
            raise Invalid("items", f"at most {limit} items per batch (got {len(items)}); split the batch")
        # Items are stored under their own client_event_id (or no key); the header names the batch.
        return BatchItems(items, [body.client_event_id for body in items])

    def _submit(
        self, batch: BatchItems, api: config.ApiConfig, header_key: str | None, *, look_up_keys: bool
    ) -> dict[str, Any]:
        """Attempts at a batch until one is not refused for a key a concurrent request stored first.

        Without `look_up_keys`, the attempt assumes no key was stored before (a new batch, nearly always):
        looking 10,000 keys up costs PostgreSQL as much CPU as the COPY's first third, before the COPY can
        start. A key stored before fails the COPY on the unique index; then the keys are looked up and the
        batch is written again, with the items already prepared (docs/benchmarks.md, "Feedback ingest")."""
        for attempt in range(1, BATCH_ATTEMPTS + 1):
            try:
                outcome, notifications = self._copy_batch(batch, api, header_key, look_up_keys=look_up_keys)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name != store.IDEMPOTENCY_KEY_CONSTRAINT:
                    raise
                if look_up_keys:
                    log.info(
                        "a concurrent request stored a key of this batch first; retrying (attempt %d)",
                        attempt,
                    )
                look_up_keys = True
                continue
            self._schedule(notifications)
            return outcome
        raise Conflict("items", "concurrent requests kept storing the same keys; retry the request")

    def _copy_batch(
        self, batch: BatchItems, api: config.ApiConfig, batch_key: str | None, *, look_up_keys: bool
    ) -> tuple[dict[str, Any], list[int]]:
        """One attempt at a batch, in one transaction: look up, check, COPY (preparing the items as it
        goes), triage effects. Without `look_up_keys`, every key is taken as new (the unique index refuses
        one that is not).

        This thread never holds a pooled connection while it waits for a helper that has none yet: each
        helper here looks things up and returns, and this thread takes its connection only once the rest's
        helper holds one (or has finished), and after the stored keys are known. Otherwise concurrent
        batches could hold every connection, each waiting for a helper that waits for a connection."""
        items = batch.items
        n = len(items)
        head = n if n <= 2 * MODEL_LOOKUP_HEAD else MODEL_LOOKUP_HEAD
        # Helpers (pooled connections of their own) look up the other items' models and the keys stored
        # before while this thread checks the items; this thread looks up the head's models and all ids.
        connected = threading.Event()
        lookup = (
            self._lookups.submit(
                self._on_connection, store.models_of_traces, batch.trace_ids[head:], connected=connected
            )
            if head < n
            else None
        )
        keys = batch.given_keys() if look_up_keys else []
        stored = (
            self._lookups.submit(self._on_connection, store.stored_request_hashes, keys) if keys else None
        )
        _check_items(items, api)
        if stored is not None:
            batch.prepare_until(stored.done)
        stored_keys = {} if stored is None else stored.result()
        if lookup is not None:
            batch.prepare_until(connected.is_set)
            connected.wait()  # set by the helper once it holds a connection, or when it failed to get one
        with self.pool.connection() as conn:
            # On this thread: a helper's result waits for this thread to let go of the interpreter lock
            # (up to 5 ms at each step of the look-up); the COPY waits for these.
            head_models, ids = store.models_and_ids(conn, batch.trace_ids[:head], batch.ids_needed())
            models = _Models(head, head_models, lookup)
            try:
                return self._write(conn, batch, batch_key, models, stored_keys, ids)
            except (ApiProblem, psycopg.errors.UniqueViolation):
                # A trace unknown among the rest is reported first, as when every trace was looked up
                # before anything else (a 409 or 422 of a repeated key, or the COPY refusing a key stored
                # before, may have come up before the rest's models were in).
                if lookup is not None and lookup.exception() is None:  # waits for the look-up
                    _check_traces(items, models.all())
                raise

    def _write(
        self,
        conn: psycopg.Connection,
        batch: BatchItems,
        batch_key: str | None,
        models: _Models,
        stored_keys: dict[str, tuple[int, str]],
        ids: list[int],
    ) -> tuple[dict[str, Any], list[int]]:
        """Plan, COPY and the triage effects of one attempt, in the transaction of `conn`."""
        items = batch.items
        if None in models.head_models or batch_key is not None:
            # Unknown traces are reported all at once, and before a batch key is compared (as always).
            _check_traces(items, models.all())
        plan = batch.plan(stored_keys)
        request_hash = None
        if batch_key is not None:
            request_hash = batch.request_hash()
            replayed = self._stored_batch(conn, batch_key, request_hash)
            if replayed is not None:
                return batch.replayed(replayed), []
        written = Written()
        store.copy_feedback(conn, self._rows(batch, plan, models, ids, written))
        opened, notifications = self._after_batch_write(conn, batch, written)
        outcome = batch.outcome(plan, written, opened)
        if batch_key is not None and request_hash is not None:
            store.record_batch(conn, batch_key, request_hash, [item["id"] for item in outcome["items"]])
        return outcome, notifications

    @staticmethod
    def _rows(
        batch: BatchItems, plan: Plan, models: _Models, ids: list[int], written: Written
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of the head, then (once their models are known) the rest; ids in item order. A trace id
        unknown in the rest raises here, inside the COPY, which is then abandoned and rolled back."""
        to_write, lookup = plan.to_write, models.rest
        split = bisect.bisect_left(to_write, models.head)  # rows of head items come first
        yield from batch.rows(plan, models.head_models, ids, written, range(split))
        if split == len(to_write):
            return
        assert lookup is not None  # items past the head exist
        batch.prepare_until(lookup.done, start=to_write[split])
        model_of = models.all()
        if None in model_of:
            _check_traces(batch.items, model_of)
        yield from batch.rows(plan, model_of, ids[split:], written, range(split, len(to_write)))

    @staticmethod
    def _stored_batch(conn: psycopg.Connection, key: str, request_hash: str) -> list[int] | None:
        """The ids of the batch stored before under this Idempotency-Key when it is this batch; None when
        the key is new. 409 when the key named another batch or a single event. Holds the key's lock until
        the transaction ends, so a concurrent request under the key waits and then finds this one."""
        store.lock_idempotency_key(conn, key)
        stored = store.stored_batch(conn, key)
        if stored is None:
            if store.key_of_stored_feedback(conn, key):
                raise Conflict("Idempotency-Key", f"{key!r} was already used for a single event")
            return None
        stored_hash, feedback_ids = stored
        if stored_hash != request_hash:
            raise Conflict("Idempotency-Key", f"{key!r} was already used with a different batch")
        return feedback_ids

    def _on_connection(
        self, step: Callable[..., T], *args: Any, connected: threading.Event | None = None
    ) -> T:
        """`step(conn, *args)` on a pooled connection; sets `connected` once it holds one (or failed to)."""
        try:
            with self.pool.connection() as conn:
                if connected is not None:
                    connected.set()
                return step(conn, *args)
        finally:
            if connected is not None:
                connected.set()

    def _after_batch_write(
        self, conn: psycopg.Connection, batch: BatchItems, written: Written
    ) -> tuple[int, list[int]]:
        """The triage side effects of a written batch, in its transaction: the negative-rate check of each
        version with negative items, and one urgent summary. (review items opened, notifications)."""
        opened, notifications = 0, []
        window = self.settings.triage.negative_window
        for model_name, version in sorted(written.negative_versions):
            newest = batch.newest(written.by_version[(model_name, version)], window)
            found = self._negative_rate_check(conn, model_name, version, newest)
            opened += len(found)
            notifications += found
        if written.urgent:
            notifications.append(self._enqueue_urgent(conn, written.urgent[:20], total=len(written.urgent)))
        return opened, notifications

    # ---- triage side effects (inside the write transaction) ---------------------------------------

    def _negative_rate_check(
        self,
        conn: psycopg.Connection,
        model_name: str,
        version: int,
        newest: list[dict[str, Any]] | None = None,
    ) -> list[int]:
        """Open a review item when the recent negative share of this version is above the threshold.

        `newest`: the version's newest items written by this transaction, newest first, when there are at
        least a window of them (a big batch): they are the window, no query needed.
        Returns the ids of notifications to deliver (one when a review item was opened)."""
        settings = self.settings.triage
        if newest is not None and len(newest) >= settings.negative_window:
            window = newest[: settings.negative_window]
        else:
            window = conn.execute(
                queries.sql("api/negative_window"),
                {"model_name": model_name, "model_version": version, "window": settings.negative_window},
            ).fetchall()
        flags = [bool(r["is_negative"]) for r in window]
        if not triage.negative_share_exceeded(flags, settings):
            return []
        share = sum(flags) / len(flags)
        # The newest negative item tipped the share: its prediction is the one to show a reviewer.
        newest_negative = next(r for r in window if r["is_negative"])
        reviewers = self._reviewers(model_name)
        opened = store.queue_review_items(
            conn,
            [store.ReviewRequest(newest_negative["trace_id"], reason="negative_feedback", priority=share)],
            assigned_reviewers=reviewers,
        )
        if not opened:
            return []
        log.info(
            "negative feedback share of %s v%s is %.0f%% over the last %d items; opened review item %s",
            model_name,
            version,
            share * 100,
            len(flags),
            opened[0],
        )
        text = (
            f"{model_name} v{version}: {share:.0%} of the last {len(flags)} feedback items are negative "
            f"(threshold {settings.negative_share_threshold:.0%}); review item {opened[0]} opened"
        )
        return [
            notify.enqueue(
                conn,
                NEGATIVE_RATE_TOPIC,
                text,
                {"model": model_name, "version": version, "review_item": opened[0], "share": f"{share:.2f}"},
            )
        ]

    def _reviewers(self, model_name: str) -> list[str]:
        try:
            return list(self.settings.model(model_name).reviewers)
        except NotFoundError:
            return []

    def _enqueue_urgent(self, conn: psycopg.Connection, rows: list[dict[str, Any]], total: int = 1) -> int:
        first = rows[0]
        if total == 1:
            text = (
                f"Urgent feedback on {first['model_name']} v{first['model_version']}: {first.get('kind', '')}"
                f"{' ' + str(first['rating']) if first.get('rating') else ''}"
            )
            fields = {
                "feedback id": first["id"],
                "trace": first.get("trace_id"),
                "failure mode": first.get("failure_mode") or "-",
                "comment": (first.get("comment") or "-")[:300],
            }
        else:
            versions = sorted({f"{r['model_name']} v{r['model_version']}" for r in rows})
            text = f"{total} urgent feedback items in one batch ({', '.join(versions)})"
            fields = {"feedback ids": ", ".join(str(r["id"]) for r in rows[:20])}
        return notify.enqueue(conn, URGENT_TOPIC, text, fields)

    # ---- delivery (after commit, off the request path) --------------------------------------------

    def _schedule(self, notification_ids: Iterable[int]) -> None:
        notification_ids = list(notification_ids)
        # The settings only when there is something to deliver: most writes have nothing, and each read of
        # them stats the config file. With no webhook a delivery would only read its row to leave it
        # pending: they wait in the outbox, which `feedback-loop api deliver-pending` empties once one is set.
        if not notification_ids or notify.webhook_url(self.settings.notify) is None:
            return
        for notification_id in notification_ids:
            with self._queued_lock:
                if self._queued >= MAX_QUEUED_DELIVERIES:
                    log.warning(
                        "notification %s stays in the outbox for a later retry: %d deliveries already queued",
                        notification_id,
                        self._queued,
                    )
                    continue
                self._queued += 1
            try:
                self._deliveries.submit(self._deliver, notification_id)
            except RuntimeError:  # shutting down: the outbox keeps it
                with self._queued_lock:
                    self._queued -= 1

    def _deliver(self, notification_id: int) -> None:
        try:
            self._deliver_when_reachable(notification_id)
        except Exception:  # noqa: BLE001 - a delivery problem must never surface anywhere but the log/outbox
            log.exception("could not deliver notification %s; it stays in the outbox", notification_id)
        finally:
            with self._queued_lock:
                self._queued -= 1

    def _deliver_when_reachable(self, notification_id: int) -> None:
        """Deliver, retrying while the database cannot be reached (a restart, a failover) for up to
        DELIVERY_RETRY_SECONDS; after that the notification waits in the outbox for deliver-pending.
        An outage is logged once, by _Outage, not once per attempt and notification.

        Pooled connections, held only to read the notification and to record the outcome, never while
        the webhook is called: opening one per notification cost PostgreSQL a backend process each time
        (docs/benchmarks.md, "Single events"). Once posted, only the record is retried, so a database
        that is slow to answer does not make the webhook receive the notification twice."""
        deadline = time.monotonic() + DELIVERY_RETRY_SECONDS
        settings = self.settings.notify
        found, row = self._while_reachable(lambda conn: notify.stored(conn, notification_id), deadline)
        if not found or notify.settled(notification_id, row, settings) is not None:
            return
        delivery = notify.post(notification_id, row, settings)
        recorded, _ = self._while_reachable(lambda conn: notify.record(conn, delivery), deadline)
        if not recorded:
            log.warning(
                "notification %s was posted (%s) but its outcome could not be stored; `feedback-loop api "
                "deliver-pending` will post it again",
                notification_id,
                delivery.status,
            )

    def _while_reachable(
        self, step: Callable[[psycopg.Connection], T], deadline: float
    ) -> tuple[bool, T | None]:
        """(True, step's result) on a pooled connection, retrying with backoff until `deadline` while the
        database cannot be reached; (False, None) when it stayed out of reach or the service stopped."""
        pause = 0.1
        while True:
            attempt = time.monotonic()
            try:
                # A short wait: during an outage this loop retries on its own schedule.
                with self.pool.connection(wait_seconds=DELIVERY_CONNECTION_WAIT_SECONDS) as conn:
                    result = step(conn)
                self._outage.over()
                return True, result
            except PoolBusyError:
                pass  # the database answers, the API's requests hold every connection: not an outage
            except (DatabaseUnavailableError, psycopg.OperationalError) as exc:
                self._outage.begun(exc, attempt)
            if self._stopped or time.monotonic() + pause > deadline:
                return False, None
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def wait_for_deliveries(self, timeout: float = 30.0) -> bool:
        """Block until queued deliveries are done (tests and shutdown); True when none are left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._queued_lock:
                if self._queued == 0:
                    return True
            time.sleep(0.02)
        return False

    # ---- inference requests apps name by their own ids (api/inference_requests.py) -----------------

    def enqueue_requests(self, body: RequestsBody) -> dict[str, Any]:
        return inference_requests.enqueue(self.pool, self.settings, body)

    def request_status(self, model_name: str, request_id: str) -> dict[str, Any]:
        return inference_requests.status(self.pool, self.settings, model_name, request_id)

    def request_statuses(self, model_name: str, request_ids: Sequence[str]) -> dict[str, Any]:
        return inference_requests.statuses(self.pool, self.settings, model_name, request_ids)

    # ---- reads ------------------------------------------------------------------------------------

    def feedback(self, feedback_id: int) -> dict[str, Any]:
        with self.pool.connection() as conn:
            try:
                return store.get_feedback(conn, feedback_id)
            except NotFoundError:
                raise NotFound("id", f"no feedback with id {feedback_id}") from None

    def prediction(self, trace_id: uuid.UUID) -> dict[str, Any]:
        with self.pool.connection() as conn:
            try:
                row = store.get_prediction(conn, trace_id)
            except NotFoundError:
                raise NotFound("trace_id", f"no prediction was logged with trace_id {trace_id}") from None
            row["feedback"] = conn.execute(
                queries.sql("api/feedback_for_trace"), {"trace_id": str(trace_id)}
            ).fetchall()
            return row

    def versions(self, model_name: str) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            try:
                versions = registry.list_versions(conn, model_name)
            except NotFoundError as exc:
                raise NotFound("name", str(exc)) from None
            champion = registry.current_version(conn, model_name)
        return [{**v.__dict__, "is_champion": v.version == champion} for v in versions]

    def answer_review(
        self, desk: ReviewDesk, item_id: int, chosen_options: list[str], params_input: dict[str, Any]
    ) -> dict[str, Any]:
        """One answer to a review task; nothing is stored when it is refused."""
        field = "review_item_id"
        try:
            return self._on_connection(desk.answer, item_id, chosen_options, params_input)
        except NotFoundError as exc:
            raise NotFound(field, str(exc)) from None
        except ForbiddenError as exc:
            raise Forbidden(field, str(exc)) from None
        except ConflictError as exc:
            raise Conflict(field, str(exc)) from None
        except InvalidInputError as exc:
            found = list(getattr(exc, "problems", None) or [(field, str(exc))])
            (first, reason), *rest = found
            raise Invalid(first, reason, more=[{"field": f, "reason": r} for f, r in rest]) from None

    def health(self) -> dict[str, Any]:
        try:
            with self.pool.connection(wait_seconds=HEALTH_WAIT_SECONDS) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - health reports any failure instead of raising
            database = f"unreachable: {str(exc).splitlines()[0][:200]}"
            return {"status": "degraded", "database": database, "pool": self.pool.stats()}
        return {"status": "ok", "database": "ok", "pool": self.pool.stats()}

    def open(self) -> None:
        """Called at app start-up; an app object can be started again after a shutdown (tests do)."""
        if self._stopped:
            self._deliveries = self._executor()
            self._lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="feedback-lookup")
            self._single_events = self._group_commit()
            self._stopped = False
        self.pool.reopen()

    def close(self) -> None:
        """Stops delivering (undelivered notifications stay in the outbox) and closes connections."""
        self._deliveries.shutdown(wait=False, cancel_futures=True)
        self._lookups.shutdown(wait=False, cancel_futures=True)
        self._single_events.close()  # the events queued are written before the pool closes
        self._stopped = True
        with self._queued_lock:
            self._queued = 0
        self.pool.close()


__all__ = ["ApiProblem", "FeedbackService", "PreparedEvent", "Submitted"]
