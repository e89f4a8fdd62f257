"""A configured training_data.query runs read-only (issue 14): even one that slipped past the config check
cannot write, and says so in one line."""

from __future__ import annotations

import pytest

from feedback_loop.core import config
from feedback_loop.core.errors import ConfigError
from feedback_loop.retrain import datasets, training_data

pytestmark = pytest.mark.integration


def with_query(query: str):
    """A model whose query skipped validation, as if the check at load had a hole."""
    model = config.parse(
        "models:\n  - {name: q, label_column: y, training_data: {query: 'SELECT 1 AS y'}}", "q.yaml"
    ).model("q")
    return model.model_copy(update={"training_data": model.training_data.model_copy(update={"query": query})})


@pytest.fixture
def probe(conn):
    conn.execute("DROP TABLE IF EXISTS hostile_probe")
    conn.execute("CREATE TABLE hostile_probe (y text)")
    conn.execute("INSERT INTO hostile_probe VALUES ('kept')")
    conn.execute(
        "CREATE OR REPLACE FUNCTION hostile_write() RETURNS text LANGUAGE sql AS "
        "$$ INSERT INTO hostile_probe VALUES ('by a function') RETURNING y $$"
    )
    conn.commit()
    yield
    conn.rollback()
    conn.execute("DROP FUNCTION IF EXISTS hostile_write()")
    conn.execute("DROP TABLE IF EXISTS hostile_probe")
    conn.commit()


@pytest.mark.parametrize("runner", [datasets.load_training_data, training_data.load_base])
@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE hostile_probe",
        "WITH gone AS (DELETE FROM hostile_probe RETURNING y) SELECT y FROM gone",
        "WITH x AS (INSERT INTO hostile_probe VALUES ('added') RETURNING y) SELECT y FROM x",
        "SELECT hostile_write() AS y",  # passes any reading of the text: only the database can tell
    ],
)
def test_a_query_that_writes_is_refused_by_the_database_and_changes_nothing(conn, probe, runner, query):
    # A server-side cursor (load_base) cannot hold DROP or a writing WITH at all ("cannot run"); everything
    # else that writes meets the read-only transaction.
    expected = (
        "tried to write .*read-only"
        if "hostile_write" in query or runner is datasets.load_training_data
        else "cannot run"
    )
    with pytest.raises(ConfigError, match=rf"model 'q': training_data.query {expected}"):
        runner(conn, with_query(query)) if runner is training_data.load_base else runner(
            with_query(query), conn
        )
    conn.rollback()
    assert conn.execute("SELECT y FROM hostile_probe").fetchall() == [{"y": "kept"}]
    # The connection is still usable for writes afterwards: only the query ran read-only.
    conn.execute("INSERT INTO hostile_probe VALUES ('after')")
    conn.rollback()


@pytest.mark.parametrize("runner", [datasets.load_training_data, training_data.load_base])
def test_a_reading_query_still_works_inside_a_caller_transaction(conn, probe, runner):
    conn.execute("INSERT INTO hostile_probe VALUES ('mine')")  # the caller's open transaction
    model = with_query("SELECT y, y AS x FROM hostile_probe ORDER BY y")
    frame = runner(conn, model) if runner is training_data.load_base else runner(model, conn)
    assert sorted(frame["y"]) == ["kept", "mine"]
    conn.execute("INSERT INTO hostile_probe VALUES ('later')")  # still read-write after the query
    conn.commit()
    assert len(conn.execute("SELECT y FROM hostile_probe").fetchall()) == 3
