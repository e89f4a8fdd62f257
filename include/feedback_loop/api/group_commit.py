"""Group commit: single events that arrive while another write is in flight are written together next.

Each single event in its own transaction costs PostgreSQL a transaction and a WAL flush, and the server a
pooled connection, a pipeline and three statements; under load that was most of an event's cost
(docs/benchmarks.md, "Single events: group commit"). Here one writer thread per process writes what is
queued: an event that arrives while the writer is idle is written at once, in a group of its own; events
that arrive while a write is in flight are written together next, in one transaction. Each request still
returns only after its own event is committed. Requests wait on a future, so a request on the server's
event loop awaits its write without a worker thread of its own.

Written here rather than taken from a library: no maintained package does group commit for callers that
share one psycopg pool, and the whole mechanism is a list, a condition and a thread.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class GroupCommitClosed(RuntimeError):
    """submit() after close()."""


# Every GroupCommit of this process: a forked child (server workers are forked) has none of the parent's
# threads, and may hold a copy of a lock a parent's thread had taken; each instance starts afresh there,
# before any other thread of the child exists.
_INSTANCES: weakref.WeakSet[GroupCommit] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for instance in list(_INSTANCES):
        instance._start_afresh()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class GroupCommit(Generic[Item, Outcome]):
    """`submit(item)` returns a future of `write(group)`'s outcome for `item`, where `group` holds it and
    whatever else was submitted while the previous write ran (at most `max_group` items; the rest go in
    the next write).

    `write` runs on the writer thread, gets the items in arrival order and returns one outcome per item,
    in the same order; if it raises, every future of that group gets the exception. A future cancelled
    before its group is taken (its request went away) is left out of the write; once taken, it cannot
    be cancelled."""

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Sequence[Outcome]],
        max_group: int = 64,
        name: str = "group-commit",
    ) -> None:
        if max_group < 1:
            raise ValueError(f"max_group must be at least 1 (got {max_group})")
        self._write = write
        self._max_group = max_group
        self._name = name
        self._closed = False
        self._start_afresh()
        _INSTANCES.add(self)
        self.groups = 0  # writes so far, and the items they held: group sizes for tests and logs
        self.items = 0

    def _start_afresh(self) -> None:
        self._wakeup = threading.Condition()
        self._queue: list[tuple[Item, Future[Outcome]]] = []
        self._writer: threading.Thread | None = None

    def submit(self, item: Item) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        with self._wakeup:
            if self._closed:
                raise GroupCommitClosed(f"{self._name} is closed")
            if self._writer is None or not self._writer.is_alive():  # started on first use
                writer = threading.Thread(target=self._run, name=self._name, daemon=True)
                writer.start()  # before the item is queued: if it cannot start, nothing is left behind
                self._writer = writer
            self._queue.append((item, future))
            self._wakeup.notify()
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer."""
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()
            writer = self._writer
        if writer is not None:
            writer.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue and not self._closed:
                    self._wakeup.wait()
                if not self._queue:
                    return
                taken, self._queue = self._queue[: self._max_group], self._queue[self._max_group :]
            group = [(item, future) for item, future in taken if future.set_running_or_notify_cancel()]
            if group:
                self.groups += 1
                self.items += len(group)
                self._write_group(group)

    def _write_group(self, group: list[tuple[Item, Future[Outcome]]]) -> None:
        failure: BaseException | None = None
        outcomes: Sequence[Outcome] = ()
        try:
            outcomes = self._write([item for item, _ in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"group write returned {len(outcomes)} outcomes for {len(group)} items")
        except BaseException as exc:  # every submitter of the group hears of it; the writer goes on
            # An awaiting request cannot be handed StopIteration (asyncio refuses it) or an interrupt.
            plain = isinstance(exc, Exception) and type(exc) is not StopIteration
            failure = exc if plain else RuntimeError(f"the group write failed: {exc!r}")
        finally:
            for n, (_, future) in enumerate(group):
                if failure is not None:
                    future.set_exception(failure)
                else:
                    future.set_result(outcomes[n])
