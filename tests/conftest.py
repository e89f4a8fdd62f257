"""Test session set-up: an isolated Airflow home and a fresh PostgreSQL database, dropped afterwards.

The database server follows the product's own resolution order (FEEDBACK_LOOP_DB_URL, else
127.0.0.1:5432, else a throwaway server); FEEDBACK_LOOP_DB_URL=embedded forces the throwaway server.
Airflow settings must be in the environment before anything imports airflow, hence module level.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="fl-test-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-secret-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "FEEDBACK_LOOP_CONFIG": str(ROOT / "config" / "feedback_loop.yaml"),
    }
)
_STATE_DIR = Path(tempfile.mkdtemp(prefix="fl-test-state-"))
os.environ["FEEDBACK_LOOP_STATE_DIR"] = str(_STATE_DIR)
os.environ["FEEDBACK_LOOP_ARTIFACT_DIR"] = str(_STATE_DIR / "models")
sys.path.insert(0, str(ROOT))

from feedback_loop.core import db, embedded_postgres, migrations  # noqa: E402


def _server_for_tests() -> tuple[str, Path | None]:
    """(server URL, embedded data dir to stop afterwards or None)."""
    configured = os.environ.get(db.ENV_URL, "").strip()
    if configured and configured != db.EMBEDDED:
        return db.normalise(configured), None
    if not configured and db.server_answers(db.LOCAL_SERVER):
        return db.LOCAL_SERVER, None
    data_dir = Path(tempfile.mkdtemp(prefix="fl-test-pg-"))
    server = embedded_postgres.start(data_dir)
    return server.url, data_dir


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    url, embedded_dir = _server_for_tests()
    yield url
    if embedded_dir is not None:
        embedded_postgres.stop(embedded_dir, delete=True)


@pytest.fixture(scope="session")
def db_url(pg_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test session; every process the tests start uses it too."""
    name = f"fl_test_{uuid.uuid4().hex[:10]}"
    url = db.ensure_database(pg_server, name)
    migrations.upgrade(url)
    os.environ[db.ENV_URL] = url
    os.environ["AIRFLOW_CONN_FEEDBACK_DB"] = url
    db.reset_resolution()
    yield url
    db.reset_resolution()
    db.drop_database(pg_server, name)


TABLES = (
    "model_alias_events, eval_case_events, eval_cases, feedback, review_items, feedback_rollups, training_runs, "
    "inference_requests, notifications, consensus_labels, reviewer_accuracy, predictions, model_versions, "
    "feedback_batches, consensus_refreshes"
)


@pytest.fixture
def conn(db_url: str):
    """A connection to an emptied database (tables truncated before the test)."""
    with db.connect(db_url) as connection:
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        connection.commit()
        yield connection


@pytest.fixture
def digits_champion(conn):
    """A small two-feature classifier registered and promoted as the champion of `digits`."""
    from feedback_loop.registry import versions as registry

    from .support.helpers import register_toy

    version = register_toy(conn, model_name="digits")
    registry.promote(conn, "digits", version.version, actor="test")
    conn.commit()
    return version


@pytest.fixture(scope="session")
def dagbag():
    """The DAG files of dags/, parsed once per session."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's own metadata DB (SQLite in the test AIRFLOW_HOME), created once per session."""
    from airflow.utils import db as airflow_db_utils

    airflow_db_utils.resetdb()
    yield


@pytest.fixture
def scheduled_runs(monkeypatch):
    """dag.test(run_after=T) creates the run the scheduler creates when the DAG's schedule fires at T:
    run type `scheduled`, data interval and logical date from the DAG's own timetable (with a data
    interval, Airflow's logical date is the interval's start, not T)."""
    from airflow.models import dagrun
    from airflow.timetables.base import TimeRestriction
    from airflow.utils.types import DagRunType

    def create_scheduled(*, dag, run_id, logical_date, **kwargs):  # noqa: ARG001
        fired = kwargs["run_after"]
        info = dag.timetable.next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(earliest=fired, latest=None, catchup=True),
        )
        assert info is not None and info.run_after == fired, f"the schedule does not fire at {fired}"
        return dag.create_dagrun(
            run_id=dagrun.DagRun.generate_run_id(
                run_type=DagRunType.SCHEDULED, logical_date=info.logical_date, run_after=fired
            ),
            logical_date=info.logical_date,
            data_interval=info.data_interval,
            run_after=fired,
            conf=kwargs.get("conf"),
            run_type=DagRunType.SCHEDULED,
            state=dagrun.DagRunState.RUNNING,
            start_date=kwargs["start_date"],
            triggered_by=kwargs["triggered_by"],
            session=kwargs["session"],
        )

    monkeypatch.setattr(dagrun, "get_or_create_dagrun", create_scheduled)


LAYERS = ("unit", "integration", "dags", "e2e", "reliability")


def pytest_collection_modifyitems(config, items):  # noqa: ARG001
    """Every test belongs to exactly one layer (pytestmark in its module), so `make test-fast` (unit and
    dags) and `-m` selections never silently drop or double-count a test."""
    wrong = [item.nodeid for item in items if len([m for m in item.iter_markers() if m.name in LAYERS]) != 1]
    if wrong:
        raise pytest.UsageError(
            f"{len(wrong)} test(s) need exactly one layer marker ({', '.join(LAYERS)}): {wrong[:5]}"
        )


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
    shutil.rmtree(_STATE_DIR, ignore_errors=True)
