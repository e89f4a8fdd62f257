"""The rollup SQL reads by interval, whatever the history: checked on the query plans, not on timings.

A history 100 times the interval is generated with the benchmark's SQL; the plans must reach feedback and
predictions only through their time indexes and primary keys, never by scanning a whole table (which
is what made the cost grow with the history before the joins became primary-key lookups).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench import aggregate as bench
from feedback_loop.core import queries

pytestmark = pytest.mark.integration

INTERVAL_PREDICTIONS = 250
HISTORY_PREDICTIONS = 25_000


@pytest.fixture
def history(conn):
    seconds = 3600 / INTERVAL_PREDICTIONS
    bench._register_version(conn)
    bench._load(conn, 0, INTERVAL_PREDICTIONS + HISTORY_PREDICTIONS - 1, bench.TARGET + bench.HOUR, seconds)
    # A consensus label for every prediction, 1 in 20 of them from an audit question.
    conn.execute(
        """
        INSERT INTO consensus_labels (trace_id, model_name, model_version, label, probability, answers,
                                      status, audited)
        SELECT trace_id, model_name, model_version, output_label, 0.9, 1, 'single',
               hashtext(trace_id::text) % 20 = 0
        FROM predictions
        """
    )
    conn.commit()
    for table in ("predictions", "feedback", "review_items", "consensus_labels"):
        conn.execute(f"ANALYZE {table}")  # noqa: S608
    conn.commit()
    return conn


def plan(conn, name: str) -> str:
    params = {
        "model_name": bench.MODEL,
        "start": bench.TARGET,
        "end": bench.TARGET + bench.HOUR,
        "backlog_since": bench.TARGET + bench.HOUR - timedelta(hours=72),
        "slice_columns": ["region"],
        "model_version": 1,
        "max_rows": 50_000,
    }
    rows = conn.execute("EXPLAIN " + queries.sql(f"aggregation/{name}"), params).fetchall()
    return "\n".join(r["QUERY PLAN"] for r in rows)


@pytest.mark.parametrize("name", ["version_metrics", "slice_metrics", "drift_sample"])
def test_rollup_queries_never_scan_the_history(history, name):
    text = plan(history, name)
    assert "Seq Scan on feedback" not in text, text
    assert "Seq Scan on predictions" not in text, text
    if name != "drift_sample":
        assert "feedback_time_idx" in text or "feedback_model_time_idx" in text, text
    if name == "version_metrics":
        assert "predictions_pkey" in text, text


def test_audited_accuracy_reads_the_intervals_predictions_not_every_audit(history):
    """Starting from the audited consensus labels made the query grow with every audit ever answered."""
    text = plan(history, "audited_accuracy")
    assert "Seq Scan on consensus_labels" not in text, text
    assert "Seq Scan on predictions" not in text, text
    assert "consensus_labels_pkey" in text, text
