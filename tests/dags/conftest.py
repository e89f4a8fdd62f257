"""Airflow fixtures: the DagBag of dags/ and a fresh Airflow metadata database for dag.test() runs."""

from __future__ import annotations

import pytest

from ..conftest import ROOT


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's own metadata DB (SQLite in the test AIRFLOW_HOME), created once per session."""
    from airflow.utils import db as airflow_db_utils

    airflow_db_utils.resetdb()
    yield
