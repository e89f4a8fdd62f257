"""Eval cases from failures: corrected feedback on a wrong prediction joins the regression set.

The label is the trace's *resolved* label (training_data.resolve), so a correction that other reviewers
overruled never becomes a must-pass case; the provenance is the feedback row that carried it. Promotion is
idempotent: running it twice stores nothing new, and a trace whose resolved label changed is updated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from feedback_loop import queries

log = logging.getLogger(__name__)


def promote_failures(conn: psycopg.Connection, model_name: str, corrected: Sequence[dict[str, Any]]) -> dict:
    """Upsert `corrected` traces (trace_id, expected_label, wrong_label, feedback_id) into eval_cases.

    Returns {"inserted": n, "updated": n, "unchanged": n}; commits.
    """
    failures = [c for c in corrected if c["expected_label"] != c["wrong_label"]]
    if not failures:
        return {"inserted": 0, "updated": 0, "unchanged": 0}
    params = {
        "model_name": model_name,
        "trace_ids": [str(c["trace_id"]) for c in failures],
        "expected": [c["expected_label"] for c in failures],
        "wrong": [c["wrong_label"] for c in failures],
        "feedback_ids": [c["feedback_id"] for c in failures],
    }
    conn.commit()  # end any implicit transaction so the block below commits on its own
    with conn.transaction():
        rows = conn.execute(queries.sql("retraining/upsert_eval_cases"), params).fetchall()
    inserted = sum(1 for r in rows if r["inserted"])
    result = {"inserted": inserted, "updated": len(rows) - inserted, "unchanged": len(failures) - len(rows)}
    log.info("%s: eval cases from reported failures: %s", model_name, result)
    return result


def load(conn: psycopg.Connection, model_name: str) -> list[dict[str, Any]]:
    """Every eval case of the model, oldest first."""
    return conn.execute(queries.sql("retraining/eval_cases_for_model"), {"model_name": model_name}).fetchall()
