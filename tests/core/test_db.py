"""core.db: which PostgreSQL, and databases created on it."""

import threading
import uuid

import pytest

from feedback_loop.core import db

pytestmark = pytest.mark.integration


def test_processes_creating_the_same_database_at_once_all_get_it(pg_server):
    """Parallel simulations (bench/loop_quality.py) each ensure the default database on first use; the
    losers of the race on PostgreSQL's catalog used to fail with a unique violation."""
    name = f"fl_race_{uuid.uuid4().hex[:8]}"
    start = threading.Barrier(6)
    urls, errors = [], []

    def ensure() -> None:
        start.wait()
        try:
            urls.append(db.ensure_database(pg_server, name))
        except Exception as exc:  # noqa: BLE001 - the test reports every failure
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(urls) == 6 and len(set(urls)) == 1
        with db.connect(urls[0]) as conn:
            assert conn.execute("SELECT current_database() AS name").fetchone()["name"] == name
    finally:
        db.drop_database(pg_server, name)
