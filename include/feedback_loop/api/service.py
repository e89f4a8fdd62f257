"""What the feedback API does, without HTTP: validate, de-duplicate, mask, triage, store, notify.

Every write is one transaction. Problems are raised (api.problems) before anything is written or inside the
transaction, which the pool then rolls back: nothing is ever partially stored. Urgent feedback writes a
notification into the outbox in the same transaction; delivery happens after the commit on a separate
worker, so a slow or dead webhook never slows down or fails a request.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from feedback_loop import config, db, notify, privacy, queries, registry, store, triage
from feedback_loop.api.pool import ConnectionPool
from feedback_loop.api.problems import ApiProblem, Conflict, Invalid, NotFound
from feedback_loop.api.schemas import FeedbackBody
from feedback_loop.errors import ConflictError, NotFoundError

log = logging.getLogger(__name__)

URGENT_TOPIC = "urgent_feedback"
NEGATIVE_RATE_TOPIC = "negative_feedback_rate"
MAX_REPORTED_PROBLEMS = 20
MAX_QUEUED_DELIVERIES = 1000
STAGING_COLUMNS = (
    "ord",
    "trace_id",
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


@dataclass(frozen=True)
class Submitted:
    row: dict[str, Any]
    created: bool


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
        self._stopped = False
        self._queued = 0
        self._queued_lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._delivery_workers, thread_name_prefix="feedback-notify")

    @property
    def settings(self) -> config.Settings:
        # Read on use (cached by file mtime), so a plugin import never fails on a broken config.
        return self._settings or config.load()

    # ---- validation -------------------------------------------------------------------------------

    def _problems(self, body: FeedbackBody, prefix: str = "") -> list[dict[str, str]]:
        api = self.settings.api
        problems: list[dict[str, str]] = []

        def add(field: str, reason: str) -> None:
            problems.append({"field": f"{prefix}{field}", "reason": reason})

        required = {"rating": "rating", "correction": "label", "implicit": "signal", "comment": "comment"}
        for kind, field in required.items():
            value = getattr(body, field)
            if body.kind == kind and (value is None or (isinstance(value, str) and not value.strip())):
                add(field, f"is required when kind is '{kind}'")
            elif body.kind != kind and field != "comment" and value is not None:
                add(field, f"is only allowed when kind is '{kind}' (kind is '{body.kind}')")
        if body.comment is not None and len(body.comment) > api.max_comment_length:
            add("comment", f"must be at most {api.max_comment_length} characters (got {len(body.comment)})")
        if (
            api.low_rating_requires_comment
            and body.kind == "rating"
            and body.rating is not None
            and body.rating <= triage.LOW_RATING
            and len((body.comment or "").strip()) < api.low_rating_comment_min_length
        ):
            add(
                "comment",
                f"a rating of {body.rating} needs a comment of at least "
                f"{api.low_rating_comment_min_length} characters saying what went wrong",
            )
        return problems

    @staticmethod
    def _prepared(body: FeedbackBody) -> store.FeedbackIn:
        """Masked and triaged; the unmasked comment goes no further than this function."""
        comment = privacy.mask_text(body.comment)
        verdict = triage.triage(body.kind, body.rating, body.signal, comment)
        return store.FeedbackIn(
            trace_id=body.trace_id,
            kind=body.kind,
            rating=body.rating,
            label=body.label,
            signal=body.signal,
            comment=comment,
            user_id=body.user_id,
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

    def submit(self, body: FeedbackBody, header_key: str | None = None) -> Submitted:
        key, key_field = self._key(header_key, body)
        problems = self._problems(body)
        if problems:
            raise Invalid(**problems[0], more=problems[1:])
        item = self._prepared(body)
        notifications: list[int] = []
        with self.pool.connection() as conn:
            try:
                result = store.record_feedback(conn, item, idempotency_key=key)
            except NotFoundError:
                raise NotFound(
                    "trace_id", f"no prediction was logged with trace_id {body.trace_id}"
                ) from None
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

    def submit_batch(self, items: Sequence[FeedbackBody], header_key: str | None = None) -> dict[str, Any]:
        limit = self.settings.api.max_batch_size
        if not items:
            raise Invalid("items", "must contain at least one item")
        if len(items) > limit:
            raise Invalid("items", f"at most {limit} items per batch (got {len(items)}); split the batch")
        problems: list[dict[str, str]] = []
        for i, body in enumerate(items):
            problems += self._problems(body, prefix=f"items[{i}].")
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                break
        if problems:
            raise Invalid(**problems[0], more=problems[1:MAX_REPORTED_PROBLEMS])

        staged: list[tuple[Any, ...]] = []
        first_with_key: dict[str, tuple[int, str]] = {}
        alias_of: dict[int, int] = {}  # repeated key with the same body -> the item it repeats
        for i, body in enumerate(items):
            key = body.client_event_id or (f"{header_key}:{i}" if header_key else None)
            item = self._prepared(body)
            digest = item.request_hash() if key is not None else None
            if key is not None:
                if key in first_with_key:
                    j, first_digest = first_with_key[key]
                    if first_digest != digest:
                        raise Invalid(
                            f"items[{i}].client_event_id",
                            f"repeats the key of items[{j}] with a different body",
                        )
                    alias_of[i] = j
                    continue
                first_with_key[key] = (i, digest)
            staged.append(
                (
                    i,
                    item.trace_id,
                    item.kind,
                    item.rating,
                    item.label,
                    item.signal,
                    item.comment,
                    item.user_id,
                    item.source,
                    item.priority,
                    item.failure_mode,
                    key,
                    digest,
                )
            )

        notifications: list[int] = []
        with self.pool.connection() as conn:
            inserted = self._insert_staged(conn, staged, header_key)
            ids: dict[int, int] = {}
            keyed = conn.execute(queries.sql("api/staging_keyed")).fetchall()
            mismatched = [r for r in keyed if not r["same_body"]]
            if mismatched:
                field = (
                    "client_event_id" if items[mismatched[0]["ord"]].client_event_id else "Idempotency-Key"
                )
                raise Conflict(
                    f"items[{mismatched[0]['ord']}].{field}",
                    "was already used with a different body",
                    more=[
                        {"field": f"items[{r['ord']}]", "reason": "key already used with a different body"}
                        for r in mismatched[1:MAX_REPORTED_PROBLEMS]
                    ],
                )
            ids.update({r["ord"]: r["id"] for r in keyed})
            # Unkeyed items: identities are assigned in insert order, which follows the item order.
            unkeyed_ords = [s[0] for s in staged if s[11] is None]
            unkeyed_ids = sorted(r["id"] for r in inserted if r["idempotency_key"] is None)
            ids.update(zip(unkeyed_ords, unkeyed_ids, strict=True))
            created_ids = {r["id"] for r in inserted}
            negative_versions = sorted(
                {(r["model_name"], r["model_version"]) for r in inserted if r["is_negative"]}
            )
            opened = 0
            for model_name, version in negative_versions:
                found = self._negative_rate_check(conn, model_name, version)
                opened += len(found)
                notifications += found
            urgent = [r for r in inserted if r["priority"] == "urgent"]
            if urgent:
                notifications.append(self._enqueue_urgent(conn, urgent))

        results = []
        for i in range(len(items)):
            feedback_id = ids[alias_of.get(i, i)]
            results.append({"id": feedback_id, "created": feedback_id in created_ids and i not in alias_of})
        self._schedule(notifications)
        created = sum(r["created"] for r in results)
        return {
            "created": created,
            "duplicates": len(results) - created,
            "urgent": len(urgent),
            "review_items_opened": opened,
            "items": results,
        }

    def _insert_staged(
        self, conn: psycopg.Connection, staged: list[tuple[Any, ...]], header_key: str | None
    ) -> list[dict[str, Any]]:
        conn.execute(queries.sql("api/staging_create"))
        with conn.cursor() as cur:
            with cur.copy(f"COPY feedback_staging ({', '.join(STAGING_COLUMNS)}) FROM STDIN") as copy:
                for row in staged:
                    copy.write_row(row)
        unknown = conn.execute(
            queries.sql("api/staging_unknown_traces"), {"limit": MAX_REPORTED_PROBLEMS}
        ).fetchall()
        if unknown:
            first, *rest = unknown
            raise NotFound(
                f"items[{first['ord']}].trace_id",
                f"no prediction was logged with trace_id {first['trace_id']}",
                more=[
                    {
                        "field": f"items[{r['ord']}].trace_id",
                        "reason": f"no prediction with trace_id {r['trace_id']}",
                    }
                    for r in rest
                ],
            )
        return conn.execute(queries.sql("api/staging_insert")).fetchall()

    # ---- triage side effects (inside the write transaction) ---------------------------------------

    def _negative_rate_check(self, conn: psycopg.Connection, model_name: str, version: int) -> list[int]:
        """Open a review item when the recent negative share of this version is above the threshold.

        Returns the ids of notifications to deliver (one when a review item was opened)."""
        settings = self.settings.triage
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

    def _enqueue_urgent(self, conn: psycopg.Connection, rows: list[dict[str, Any]]) -> int:
        first = rows[0]
        if len(rows) == 1:
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
            text = f"{len(rows)} urgent feedback items in one batch ({', '.join(versions)})"
            fields = {"feedback ids": ", ".join(str(r["id"]) for r in rows[:20])}
        return notify.enqueue(conn, URGENT_TOPIC, text, fields)

    # ---- delivery (after commit, off the request path) --------------------------------------------

    def _schedule(self, notification_ids: Iterable[int]) -> None:
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
            with db.connect(self.pool.url()) as conn:
                notify.deliver(conn, notification_id, self.settings.notify)
        except Exception:  # noqa: BLE001 - a delivery problem must never surface anywhere but the log/outbox
            log.exception("could not deliver notification %s; it stays in the outbox", notification_id)
        finally:
            with self._queued_lock:
                self._queued -= 1

    def wait_for_deliveries(self, timeout: float = 30.0) -> bool:
        """Block until queued deliveries are done (tests and shutdown); True when none are left."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._queued_lock:
                if self._queued == 0:
                    return True
            time.sleep(0.02)
        return False

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

    def health(self) -> dict[str, str]:
        try:
            with self.pool.connection() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - health reports any failure instead of raising
            return {"status": "degraded", "database": f"unreachable: {str(exc).splitlines()[0][:200]}"}
        return {"status": "ok", "database": "ok"}

    def open(self) -> None:
        """Called at app start-up; an app object can be started again after a shutdown (tests do)."""
        if self._stopped:
            self._deliveries = self._executor()
            self._stopped = False
        self.pool.reopen()

    def close(self) -> None:
        """Stops delivering (undelivered notifications stay in the outbox) and closes connections."""
        self._deliveries.shutdown(wait=False, cancel_futures=True)
        self._stopped = True
        with self._queued_lock:
            self._queued = 0
        self.pool.close()


__all__ = ["ApiProblem", "FeedbackService", "Submitted"]
