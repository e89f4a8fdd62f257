"""The negative-rate check's look-up of a version's newest feedback, on real PostgreSQL: the right rows,
read from the index without sorting the whole version (triage runs it on every negative event)."""

from __future__ import annotations

import pytest

from feedback_loop.core import queries

from ..support.helpers import make_predictions, register_toy

pytestmark = pytest.mark.integration

ROWS = 3_001  # the newest second holds two rows, then three per second: the 10th is inside a tie
WINDOW = 10


def _rows_read_from_feedback(plan: dict) -> float:
    """Rows the plan's scans of feedback produced or threw away, over all their loops."""
    here = 0.0
    if plan.get("Relation Name") == "feedback":
        kept_or_removed = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        here = kept_or_removed * plan.get("Actual Loops", 1)
    return here + sum(_rows_read_from_feedback(child) for child in plan.get("Plans", []))


def test_the_newest_items_come_from_the_index_even_before_the_version_is_analyzed(conn):
    register_toy(conn)
    traces = make_predictions(conn, "toy", 1, ROWS)
    # Three rows per timestamp, so the window's edge falls inside a tie (broken by id, newest first); the
    # table is not analyzed, as for a version promoted since the last ANALYZE.
    conn.execute(
        """
        INSERT INTO feedback (trace_id, model_name, model_version, kind, source, created_at)
        SELECT t, 'toy', 1, CASE WHEN i %% 4 = 0 THEN 'thumbs_down' ELSE 'thumbs_up' END,
               'api', timestamptz '2026-12-01' + make_interval(secs => i / 3)
        FROM unnest(%(traces)s::uuid[]) WITH ORDINALITY AS x (t, i)
        """,
        {"traces": traces},
    )
    params = {"model_name": "toy", "model_version": 1, "window": WINDOW}
    sql = queries.sql("api/negative_window")
    got = [(r["id"], r["is_negative"]) for r in conn.execute(sql, params).fetchall()]
    everything = conn.execute(
        "SELECT id, is_negative, created_at FROM feedback WHERE model_name = 'toy' AND model_version = 1"
    ).fetchall()
    ordered = sorted(everything, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    assert ordered[WINDOW - 1]["created_at"] == ordered[WINDOW]["created_at"]  # the edge is inside a tie
    assert got == [(r["id"], r["is_negative"]) for r in ordered[:WINDOW]]

    (plan,) = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone().values()
    assert _rows_read_from_feedback(plan[0]["Plan"]) <= 3 * WINDOW, plan
