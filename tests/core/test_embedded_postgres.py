"""The throwaway-server path, exercised even where a PostgreSQL server already runs."""

import os
import subprocess
import sys

import psycopg
import pytest

from feedback_loop.core import db, embedded_postgres, migrations
from feedback_loop.registry import versions as registry

from ..support.helpers import toy_estimator

pytestmark = pytest.mark.integration


@pytest.mark.embedded
def test_start_migrate_round_trip_stop(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("embedded-pg")
    server = embedded_postgres.start(data_dir)
    try:
        assert embedded_postgres.start(data_dir) == server, "a second start reuses the running server"
        url = db.ensure_database(server.url, "feedback_loop")
        assert migrations.upgrade(url)
        with db.connect(url) as conn:
            version = registry.register(conn, "toy", toy_estimator(), created_by="embedded-test")
            registry.promote(conn, "toy", version.version, actor="embedded-test")
        with db.connect(url) as conn:
            assert registry.champion(conn, "toy").version == 1
    finally:
        embedded_postgres.stop(data_dir)
    assert embedded_postgres.status(data_dir) is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.url, connect_timeout=2)


@pytest.mark.embedded
def test_cli_with_db_url_embedded_starts_its_own_server(tmp_path):
    env = {**os.environ, "FEEDBACK_LOOP_DB_URL": "embedded", "FEEDBACK_LOOP_STATE_DIR": str(tmp_path)}
    env.pop("AIRFLOW_CONN_FEEDBACK_DB", None)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "feedback_loop.cli", "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        assert "applied" in result.stdout and "127.0.0.1" in result.stdout
        assert embedded_postgres.status(tmp_path / "pg") is not None
        stopped = subprocess.run(
            [sys.executable, "-m", "feedback_loop.cli", "db", "stop-embedded"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stopped.returncode == 0, stopped.stderr
        assert embedded_postgres.status(tmp_path / "pg") is None
    finally:
        embedded_postgres.stop(tmp_path / "pg")
