"""A small thread-safe pool of psycopg connections for the API's worker threads.

Opening a PostgreSQL connection per request costs a server process fork; the API keeps a few open.
Connections are opened exactly as `feedback_loop.core.db.connect` opens them (dict rows, same URL resolution).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from feedback_loop.core import db
from feedback_loop.core.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)


class ConnectionPool:
    def __init__(
        self, url: str | Callable[[], str] | None = None, max_size: int = 16, wait_seconds: float = 10.0
    ) -> None:
        self._url = url
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_size)
        self._wait_seconds = wait_seconds
        self._closed = False

    def _target(self) -> str:
        if callable(self._url):
            return self._url()
        return self._url or db.resolve_url()

    def url(self) -> str:
        return self._target()

    def _open(self) -> psycopg.Connection:
        target = self._target()
        try:
            return psycopg.connect(target, row_factory=dict_row, connect_timeout=10)
        except psycopg.OperationalError as exc:
            host = urlsplit(target).hostname or "local socket"
            raise DatabaseUnavailableError(
                f"cannot connect to the feedback database at {host}: {str(exc).strip().splitlines()[0]}"
            ) from exc

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection in a fresh transaction: committed when the block succeeds, rolled back otherwise."""
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise DatabaseUnavailableError(
                f"all feedback database connections stayed busy for {self._wait_seconds:.0f}s"
            )
        conn: psycopg.Connection | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._open()
            try:
                yield conn
                conn.commit()
            except BaseException:
                if not conn.broken and not conn.closed:
                    try:
                        conn.rollback()
                    except psycopg.Error:
                        conn.close()
                raise
        finally:
            if conn is not None:
                reusable = (
                    not self._closed
                    and not conn.closed
                    and not conn.broken
                    and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                )
                if reusable:
                    self._idle.put(conn)
                else:
                    conn.close()
            self._slots.release()

    def reopen(self) -> None:
        self._closed = False

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
