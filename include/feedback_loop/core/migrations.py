"""Ordered, idempotent schema migrations from sql/migrations, tracked in `schema_migrations`.

Safe to run twice and from several processes at once: a session-level advisory lock serialises runners,
and each migration commits together with its row in `schema_migrations`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from feedback_loop.core import db, paths
from feedback_loop.core.errors import FeedbackLoopError

log = logging.getLogger(__name__)

# Arbitrary constant shared by every runner: "feedback-loop migrations".
MIGRATION_LOCK_ID = 0x46424C4D
FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or paths.sql_dir() / "migrations"
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = FILENAME.match(path.name)
        if not match:
            raise FeedbackLoopError(f"{path}: migration files must be named NNNN_lower_snake.sql")
        found.append(Migration(version=match.group(1), name=match.group(2), path=path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise FeedbackLoopError(f"{directory}: two migrations share a number: {versions}")
    return found


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    text PRIMARY KEY,
            name       text NOT NULL,
            checksum   char(64) NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def applied(conn: psycopg.Connection) -> dict[str, str]:
    """version -> checksum of the migrations recorded in the database."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").fetchone()
    if not exists["present"]:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {row["version"]: row["checksum"] for row in rows}


def upgrade(url: str | None = None, directory: Path | None = None) -> list[str]:
    """Apply every pending migration; returns the versions applied by this call (empty when current)."""
    migrations = discover(directory)
    done: list[str] = []
    with db.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            _ensure_table(conn)
            recorded = applied(conn)
            for migration in migrations:
                if migration.version in recorded:
                    if recorded[migration.version] != migration.checksum:
                        log.warning(
                            "migration %s_%s changed after it was applied; write a new migration instead",
                            migration.version,
                            migration.name,
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.text)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log.info("applied migration %s_%s", migration.version, migration.name)
                done.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return done


def pending(url: str | None = None, directory: Path | None = None) -> list[str]:
    with db.connect(url) as conn:
        recorded = applied(conn)
    return [m.version for m in discover(directory) if m.version not in recorded]
