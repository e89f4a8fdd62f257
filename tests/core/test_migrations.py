import subprocess
import sys
import uuid

import pytest

from feedback_loop.core import db, migrations

pytestmark = pytest.mark.integration

EXPECTED_TABLES = {
    "schema_migrations",
    "model_versions",
    "model_alias_events",
    "predictions",
    "review_items",
    "feedback",
    "feedback_rollups",
    "eval_cases",
    "training_runs",
    "inference_requests",
    "notifications",
}


def schema_fingerprint(url: str) -> list[tuple]:
    with db.connect(url) as conn:
        columns = conn.execute(
            """
            SELECT table_name, column_name, data_type, is_nullable, column_default
            FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name
            """
        ).fetchall()
        constraints = conn.execute(
            """
            SELECT conrelid::regclass::text AS tbl, pg_get_constraintdef(oid) AS def
            FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2
            """
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexdef"
        ).fetchall()
        recorded = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
    return [tuple(r.values()) for r in columns + constraints + indexes + recorded]


@pytest.fixture
def fresh_db(pg_server):
    name = f"fl_mig_{uuid.uuid4().hex[:8]}"
    url = db.ensure_database(pg_server, name)
    yield url
    db.drop_database(pg_server, name)


def test_upgrade_creates_every_table_and_second_run_changes_nothing(fresh_db):
    first = migrations.upgrade(fresh_db)
    assert first == [m.version for m in migrations.discover()]
    before = schema_fingerprint(fresh_db)
    assert migrations.upgrade(fresh_db) == []
    assert schema_fingerprint(fresh_db) == before
    with db.connect(fresh_db) as conn:
        tables = {
            r["table_name"]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                " AND table_type = 'BASE TABLE'"
            ).fetchall()
        }
    assert EXPECTED_TABLES <= tables


def test_two_concurrent_cli_upgrades_leave_one_identical_schema(fresh_db, pg_server):
    env_base = {"FEEDBACK_LOOP_DB_URL": fresh_db}
    import os

    env = {**os.environ, **env_base}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "feedback_loop.cli", "db", "upgrade", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    # Exactly one runner applied the migrations; the other found them applied.
    applied = sorted(len(__import__("json").loads(out)["applied"]) for out, _ in outputs)
    assert applied == [0, len(migrations.discover())]

    other = f"fl_mig_ref_{uuid.uuid4().hex[:8]}"
    reference = db.ensure_database(pg_server, other)
    try:
        migrations.upgrade(reference)
        assert schema_fingerprint(fresh_db) == schema_fingerprint(reference)
    finally:
        db.drop_database(pg_server, other)


def test_migration_files_are_numbered_and_idempotent_in_text():
    found = migrations.discover()
    assert [m.version for m in found] == sorted(m.version for m in found)
    for migration in found:
        for line in migration.text.splitlines():
            statement = line.strip().upper()
            if (
                statement.startswith("CREATE TABLE")
                or statement.startswith("CREATE INDEX")
                or statement.startswith("CREATE UNIQUE INDEX")
            ):
                assert "IF NOT EXISTS" in statement, f"{migration.path.name}: {line.strip()}"
