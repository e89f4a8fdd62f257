"""The demo's path in short form (one round) against real Airflow processes: api-server, scheduler,
dag-processor and triggerer started by `feedback_loop.lab.stack`, driven only through HTTP."""

from __future__ import annotations

import os

import pytest

from feedback_loop.core import db
from feedback_loop.lab import demo, stack
from feedback_loop.registry import versions as registry

pytestmark = pytest.mark.e2e


@pytest.fixture
def airflow_metadata_cleanup(db_url):
    yield
    db.drop_database(db_url, stack.metadata_database_name())


@pytest.mark.timeout(1500)
def test_one_cycle_of_the_loop_through_real_airflow(conn, tmp_path, airflow_metadata_cleanup):
    settings = demo.DemoSettings(
        requests_per_round=80,
        review_budget=4,
        rounds=1,
        aggregation_every_minutes=1,
        output_dir=tmp_path / "demo-output",
    )
    result = demo.run(settings)

    # Reviewers answered the review tasks through PATCH .../hitlDetails; answers became feedback.
    assert result.reviews_answered == 4
    reviewed = conn.execute(
        "SELECT count(*) AS n FROM feedback WHERE source = 'review' AND user_id = 'reviewer'"
    ).fetchone()["n"]
    assert reviewed == 4
    # Users posted feedback through the plugin API; PII in comments was masked before storing.
    api_rows = conn.execute("SELECT count(*) AS n FROM feedback WHERE source = 'api'").fetchone()["n"]
    assert api_rows > 0
    leaked = conn.execute(
        "SELECT count(*) AS n FROM feedback WHERE comment ~ '@example.com|4111 1111|555 0100'"
    ).fetchone()["n"]
    assert leaked == 0
    # The scheduler's aggregation rolled up the interval holding the feedback.
    assert result.rollups >= 1
    # Retraining registered v2 through the gate; the rollback was shown and undone, all audited.
    versions = registry.list_versions(conn, "digits")
    assert len(versions) >= 2
    runs = conn.execute(
        "SELECT status, reason FROM training_runs WHERE model_name = 'digits' ORDER BY id"
    ).fetchall()
    (demo_run,) = [r for r in runs if r["reason"] == "demo: feedback arrived"]
    assert demo_run["status"] in ("promoted", "rejected")
    # A retraining the aggregation's alerts triggered ends too; after the demo's own run it may find no
    # feedback newer than the champion's and skip, saying so.
    assert {r["status"] for r in runs} <= {"promoted", "rejected", "skipped"}, runs
    if result.rollback.get("shown"):
        actions = [e.action for e in registry.alias_history(conn, "digits")]
        assert actions[-2:] == ["rollback", "promote"]
    assert all(os.path.isfile(p) for p in result.plots)
    # Every process the demo started is gone.
    assert stack.read_state() is None
