"""The one place that decides which PostgreSQL to use and opens connections to it.

Resolution order (docs/architecture.md, "Where PostgreSQL comes from"):
1. FEEDBACK_LOOP_DB_URL, when set; the value `embedded` forces the throwaway server;
2. an installed URL source (`db_url.use_url_source`): inside Airflow the adapter installs the `feedback_db`
   connection, and then that is the only other answer: no fallback to a local or throwaway server;
3. a server on 127.0.0.1:5432, if one answers: a dedicated database `feedback_loop` is created on it;
4. a throwaway server started under `.local/pg` from the embedded-PostgreSQL wheel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from feedback_loop.core import db_url, embedded_postgres, paths, queries
from feedback_loop.core.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

ENV_URL = db_url.ENV_URL
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DATABASE = "feedback_loop"
EMBEDDED = db_url.EMBEDDED

_resolved: str | None = None


@contextmanager
def read_only(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction (inside an open one: a savepoint) in which PostgreSQL refuses every write, rolled back
    at the end: for SQL the configuration supplies. The caller's transaction is read-write again afterwards
    (a savepoint's rollback undoes SET TRANSACTION READ ONLY)."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        yield


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def normalise(url: str) -> str:
    """Accept SQLAlchemy-style driver suffixes (postgresql+psycopg://) that libpq does not know."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.startswith(("postgresql+", "postgres+")):
        return f"postgresql://{rest}"
    return url


def server_answers(url: str, timeout: float = 2.0) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout))):
            return True
    except psycopg.OperationalError:
        return False


def ensure_database(server_url: str, database: str) -> str:
    """Create `database` on the server if missing; returns its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                log.info("created database %s", database)
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                # Created by a concurrent process: that is what we wanted. Two CREATE DATABASE racing on
                # the catalog fail with a unique violation on pg_database rather than DuplicateDatabase.
                pass
    return with_database(server_url, database)


def drop_database(server_url: str, database: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def embedded_data_dir() -> os.PathLike:
    return paths.state_dir() / "pg"


def start_embedded() -> str:
    server = embedded_postgres.start(embedded_data_dir())
    return server.url


def resolve_url() -> str:
    """The URL of the feedback database, following the resolution order above (cached per process)."""
    global _resolved
    if _resolved is not None:
        return _resolved
    configured = os.environ.get(ENV_URL, "").strip()
    if configured and configured != EMBEDDED:
        _resolved = normalise(configured)
        return _resolved
    if not configured:
        source = db_url.installed_source()
        if source is not None:
            _resolved = normalise(source())
            return _resolved
        if server_answers(LOCAL_SERVER):
            log.info("using the PostgreSQL server on 127.0.0.1:5432")
            _resolved = ensure_database(LOCAL_SERVER, DEFAULT_DATABASE)
            return _resolved
        log.info("no PostgreSQL on 127.0.0.1:5432; starting a throwaway server under %s", embedded_data_dir())
    _resolved = ensure_database(start_embedded(), DEFAULT_DATABASE)
    return _resolved


def reset_resolution() -> None:
    """Forget the cached URL (tests switch databases; an installed source changed)."""
    global _resolved
    _resolved = None


db_url.on_change(reset_resolution)


def cannot_connect(target: str, exc: psycopg.OperationalError) -> DatabaseUnavailableError:
    """The error for a failed connection attempt: which server, and libpq's first line of why."""
    host = urlsplit(target).hostname or "local socket"
    return DatabaseUnavailableError(
        f"cannot connect to the feedback database at {host}: {str(exc).strip().splitlines()[0]}"
    )


@contextmanager
def connect(url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg connection with dict rows; commits on success, rolls back on error, always closes."""
    target = url or resolve_url()
    try:
        conn = psycopg.connect(target, row_factory=dict_row, autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise cannot_connect(target, exc) from exc
    with conn:
        yield conn


def transaction_lock(conn: psycopg.Connection, key: str) -> None:
    """Wait for, then hold, the lock named `key` until the current transaction ends."""
    conn.execute(queries.sql("locks/transaction_lock"), {"key": key})
