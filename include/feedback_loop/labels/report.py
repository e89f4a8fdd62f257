"""The reviewers of a model as people read them: how much each answered, how often they were right on
gold questions and agreed with the others, and how much the reviewers agree overall.

Read by `feedback-loop reviewers list` and the dashboard; both show the stored estimates (refreshed by
retraining, by an aggregation run when answers came since the last refresh, or by `reviewers list
--refresh`).
"""

from __future__ import annotations

from typing import Any

import psycopg

from feedback_loop.core import queries
from feedback_loop.core.config import ReviewConfig
from feedback_loop.labels import agreement, consensus
from feedback_loop.labels import store as labels


def _share(k: int, n: int) -> dict[str, Any]:
    interval = agreement.wilson(k, n)
    return {
        "correct": k,
        "of": n,
        "share": round(k / n, 6) if n else None,
        "interval": [round(v, 6) for v in interval] if interval else None,
    }


def _rounded(value: float | None) -> float | None:
    return round(float(value), 6) if value is not None else None


def reviewers(conn: psycopg.Connection, model_name: str, review: ReviewConfig) -> dict[str, Any]:
    rows = conn.execute(queries.sql("labels/reviewer_accuracy"), {"model_name": model_name}).fetchall()
    people = [
        {
            "reviewer": row["reviewer"],
            "answers": int(row["answers"]),
            "estimated_accuracy": round(float(row["accuracy"]), 6),
            # The one-sided credible interval's ends (consensus.CREDIBLE); None before the first refresh
            # after the migration that added them.
            "accuracy_lower": _rounded(row["accuracy_lower"]),
            "accuracy_upper": _rounded(row["accuracy_upper"]),
            # Acted on only when credibly below: the upper end of the credible interval is below the floor.
            "below_threshold": consensus.credibly_below(row, review.min_reviewer_accuracy),
            "gold": _share(int(row["gold_correct"]), int(row["gold_answers"])),
            "agreement": _share(int(row["agreed"]), int(row["compared"])),
            "updated_at": row["updated_at"],
        }
        for row in rows
    ]
    reviewed = labels.load(conn, model_name)
    units = agreement.agreement_units(
        {"item": a.item, "label": a.label} for a in reviewed.answers if a.label is not None
    )
    state = conn.execute(queries.sql("labels/waiting_second_opinions"), {"model_name": model_name}).fetchone()
    alpha = agreement.krippendorff_alpha(units)
    return {
        "model_name": model_name,
        "reviewers": people,
        "krippendorff_alpha": round(alpha, 6) if alpha is not None else None,
        "traces_with_several_answers": sum(1 for unit in units if len(unit) >= 2),
        "second_opinions_waiting": int(state["waiting"]),
        "consensus_by_status": dict(state["by_status"] or {}),
        "min_reviewer_accuracy": review.min_reviewer_accuracy,
    }
