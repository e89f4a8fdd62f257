"""The API's PostgreSQL connections: a `psycopg_pool.ConnectionPool`, created at the first request.

Opening a PostgreSQL connection per request costs a server process fork; the API keeps MIN_SIZE open and
grows to MAX_SIZE under load. Connections are opened as `feedback_loop.core.db.connect` opens them (dict
rows, the URL from `db.resolve_url`), and the URL is resolved at first use: building or importing the app
never connects or reads configuration.

Before a connection is handed out, its socket is looked at (no round trip): an idle connection whose server
has sent something, as a server ending the connection does (a PostgreSQL restart, pg_terminate_backend), is
checked with an empty query. One that fails the check is dropped, and so are the other idle ones, which
broke with it: requests then wait for fresh connections instead of each finding a dead one. A quiet socket
is handed out unchecked: the check used to be a round trip on every request. A connection kept idle for
IDLE_CHECK_SECONDS or more is always checked, for a server gone without a word (a host or network down). After close(), until
reopen(), connections are opened per use and closed after it, so a request still running at shutdown ends
normally.
"""

from __future__ import annotations

import logging
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from feedback_loop.core import db
from feedback_loop.core.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

MIN_SIZE = 2
MAX_SIZE = 16
CONNECT_TIMEOUT_SECONDS = 10
PROBE_TIMEOUT_SECONDS = 2  # one connection attempt after a timed-out wait, to name the reason
PROBE_EVERY_SECONDS = 5.0  # a probe's finding stands for the timeouts that follow within this
IDLE_CHECK_SECONDS = 30.0  # a connection idle this long is checked with a query even if its socket is quiet
AT_HAND_SECONDS = 0.001  # psycopg_pool refuses a zero wait even with a connection idle
# Threads that find dead connections within this of the first finding are the same outage: one warning.
DRAIN_WARNING_SECONDS = 1.0
# What the health endpoint shows of psycopg_pool's get_stats(): sizes now, counters since the pool opened.
STATS = (
    "pool_min",
    "pool_max",
    "pool_size",
    "pool_available",
    "requests_waiting",
    "requests_num",
    "requests_errors",
    "connections_errors",
    "connections_lost",
    "returns_bad",
)


class ConnectionPool:
    def __init__(
        self,
        url: str | Callable[[], str] | None = None,
        min_size: int = MIN_SIZE,
        max_size: int = MAX_SIZE,
        wait_seconds: float = 10.0,
    ) -> None:
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._closed = False
        self._probe: tuple[float, DatabaseUnavailableError | None] = (float("-inf"), None)
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection, float] = weakref.WeakKeyDictionary()
        self._drained_at = float("-inf")

    def url(self) -> str:
        if callable(self._url):
            return self._url()
        return self._url or db.resolve_url()

    @contextmanager
    def connection(self, wait_seconds: float | None = None) -> Iterator[psycopg.Connection]:
        """A connection in a fresh transaction: committed when the block succeeds, rolled back otherwise.
        Waits up to `wait_seconds` (default: the pool's) for a free connection."""
        pool = self._pooled()
        if pool is None:
            with db.connect(self.url()) as conn:
                yield conn
            return
        wait = self._wait_seconds if wait_seconds is None else wait_seconds
        with ExitStack() as stack:
            try:
                # psycopg_pool commits or rolls back, then takes the connection back (or drops it if broken)
                conn = stack.enter_context(pool.connection(timeout=wait))
            except psycopg_pool.PoolTimeout:
                raise self._timed_out(wait, pool) from None
            except psycopg_pool.PoolClosed:
                raise DatabaseUnavailableError("the feedback API is shutting down") from None
            yield conn

    @contextmanager
    def connection_at_hand(self) -> Iterator[psycopg.Connection | None]:
        """`connection()` when a checked connection is idle in the pool now, else None at once: never waits
        for one to come free or to be opened, and never probes the server."""
        pool = self._pooled()
        if pool is None:
            yield None
            return
        with ExitStack() as stack:
            try:
                conn = stack.enter_context(pool.connection(timeout=AT_HAND_SECONDS))
            except (psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed, psycopg_pool.TooManyRequests):
                conn = None
            yield conn

    def stats(self) -> dict[str, int]:
        """The pool's sizes and counters (zeros before the first request)."""
        pool = self._pool
        found: dict[str, Any] = pool.get_stats() if pool is not None else {}
        return {"pool_min": self._min_size, "pool_max": self._max_size} | {
            name: int(found.get(name, 0)) for name in STATS if name not in ("pool_min", "pool_max")
        }

    def reopen(self) -> None:
        with self._lock:
            self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # ---- steps ------------------------------------------------------------------------------------

    def _pooled(self) -> psycopg_pool.ConnectionPool | None:
        """The pool, created and opened on first use; None while closed."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._closed:
                return None
            if self._pool is None:
                self._pool = psycopg_pool.ConnectionPool(
                    self.url(),
                    kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                    min_size=self._min_size,
                    max_size=self._max_size,
                    timeout=self._wait_seconds,
                    check=self._check,
                    reset=self._returned,
                    name="feedback-api",
                    open=False,
                )
                self._pool.open(wait=False)
            return self._pool

    def _returned(self, conn: psycopg.Connection) -> None:
        self._returned_at[conn] = time.monotonic()

    def _check(self, conn: psycopg.Connection) -> None:
        """psycopg_pool's own check, for a connection whose socket is not quiet or that was idle for long
        (module docstring); when it fails the server has likely restarted, so drop the idle connections
        too rather than let each of the next requests find one of them dead."""
        returned = self._returned_at.get(conn)
        if returned is not None and time.monotonic() - returned < IDLE_CHECK_SECONDS and _quiet(conn):
            return
        try:
            psycopg_pool.ConnectionPool.check_connection(conn)
        except psycopg.Error as exc:
            # Several threads can check dead connections of one outage at once; each used to log it.
            with self._lock:
                now = time.monotonic()
                first, self._drained_at = now - self._drained_at > DRAIN_WARNING_SECONDS, now
            reason = str(exc).strip().splitlines()[0]
            (log.warning if first else log.debug)("dropping idle feedback database connections: %s", reason)
            pool = self._pool
            if pool is not None:
                pool.drain()
            raise

    def _timed_out(self, wait: float, pool: psycopg_pool.ConnectionPool) -> DatabaseUnavailableError:
        """Why no connection came: the server refuses new ones, or all stayed busy (PoolBusyError). With
        every connection open and in use they were busy; otherwise the pool could not open more (it may
        have backed off from reconnecting during the whole wait, so no new error need show), and one direct
        attempt names the reason, and its finding stands for PROBE_EVERY_SECONDS (waiters timing out at
        the same moment may each probe once): a probe opens a server process, not something to do for
        every waiter of an overloaded server."""
        stats = pool.get_stats()
        if stats.get("pool_size", 0) >= self._max_size and stats.get("pool_available", 0) == 0:
            return PoolBusyError(f"all feedback database connections stayed busy for {wait:.0f}s")
        with self._lock:
            probed_at, found = self._probe
            if time.monotonic() - probed_at < PROBE_EVERY_SECONDS:
                return found or PoolBusyError(f"no feedback database connection came free within {wait:.0f}s")
        target = self.url()
        try:
            psycopg.connect(target, connect_timeout=PROBE_TIMEOUT_SECONDS).close()
        except psycopg.OperationalError as exc:
            found = db.cannot_connect(target, exc)
        else:
            found = None
        with self._lock:
            self._probe = (time.monotonic(), found)
        return found or PoolBusyError(f"no feedback database connection came free within {wait:.0f}s")


class PoolBusyError(DatabaseUnavailableError):
    """The database answers, but no pooled connection came free in time (503, retry)."""


def _quiet(conn: psycopg.Connection) -> bool:
    """True when the server sent nothing on this idle connection: a server ending it sends an error and
    closes the socket, which makes it readable. A zero-timeout poll, not a round trip."""
    if conn.closed or conn.broken:
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)
