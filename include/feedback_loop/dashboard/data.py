"""What the dashboard shows, read from feedback_rollups and the registry (no Airflow, no HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from feedback_loop.core import queries, schedules
from feedback_loop.core.config import ReviewConfig
from feedback_loop.labels import agreement, report
from feedback_loop.registry import versions as registry


@dataclass
class ModelView:
    model_name: str
    since: datetime | None
    until: datetime | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    aliases: list[registry.AliasEvent] = field(default_factory=list)
    champion: int | None = None
    reviewers: dict[str, Any] = field(default_factory=dict)  # labels.report.reviewers
    aggregation_schedule: str | None = None  # the model's schedules.aggregation (None: by hand only)
    next_rollup: datetime | None = None  # when the scheduler next rolls up an interval of it

    @property
    def versions(self) -> list[int]:
        return sorted({int(r["model_version"]) for r in self.rows})

    def series(self, column: str) -> dict[str, list[tuple[datetime, float | None]]]:
        """Per version label, (interval end, value) points in time order."""
        out: dict[str, list[tuple[datetime, float | None]]] = {}
        for row in self.rows:
            out.setdefault(f"v{row['model_version']}", []).append((row["interval_end"], row[column]))
        return dict(sorted(out.items(), key=lambda item: int(item[0][1:])))

    def latest(self) -> dict[int, dict[str, Any]]:
        """The newest rollup of every version in the window."""
        newest: dict[int, dict[str, Any]] = {}
        for row in self.rows:
            newest[int(row["model_version"])] = row
        return dict(sorted(newest.items()))

    def totals(self) -> dict[int, dict[str, Any]]:
        """Window totals per version: volumes summed, rates weighted by their denominators."""
        totals: dict[int, dict[str, Any]] = {}
        for row in self.rows:
            t = totals.setdefault(
                int(row["model_version"]),
                {
                    "n_predictions": 0,
                    "n_feedback": 0,
                    "n_signals": 0,
                    "negative": 0.0,
                    "n_labelled": 0,
                    "correct": 0.0,
                    "audited_n": 0,
                    "audited_correct": 0,
                    "estimated": 0.0,
                    "estimated_over": 0,
                },
            )
            t["n_predictions"] += row["n_predictions"]
            t["audited_n"] += row.get("audited_n") or 0
            t["audited_correct"] += row.get("audited_correct") or 0
            if row.get("estimated_accuracy") is not None:
                t["estimated"] += row["estimated_accuracy"] * row["n_predictions"]
                t["estimated_over"] += row["n_predictions"]
            t["n_feedback"] += row["n_feedback"]
            t["n_signals"] += row["n_signals"]
            t["negative"] += (row["negative_rate"] or 0) * row["n_signals"]
            t["n_labelled"] += row["n_labelled"]
            t["correct"] += (row["accuracy"] or 0) * row["n_labelled"]
        for t in totals.values():
            t["negative_rate"] = t["negative"] / t["n_signals"] if t["n_signals"] else None
            t["accuracy"] = t["correct"] / t["n_labelled"] if t["n_labelled"] else None
            t["audited_accuracy"] = t["audited_correct"] / t["audited_n"] if t["audited_n"] else None
            t["audited_interval"] = agreement.wilson(t["audited_correct"], t["audited_n"])
            t["estimated_accuracy"] = t["estimated"] / t["estimated_over"] if t["estimated_over"] else None
            both = t["audited_accuracy"] is not None and t["estimated_accuracy"] is not None
            t["estimate_error"] = t["estimated_accuracy"] - t["audited_accuracy"] if both else None
        return dict(sorted(totals.items()))

    def slice_totals(self) -> list[dict[str, Any]]:
        """Window totals per (version, slice column, value): the bias audit table."""
        acc: dict[tuple[int, str, str], dict[str, float]] = {}
        for row in self.rows:
            for column, values in (row["slices"] or {}).items():
                for value, m in values.items():
                    t = acc.setdefault(
                        (int(row["model_version"]), column, value),
                        {
                            "n_predictions": 0,
                            "n_signals": 0,
                            "negative": 0.0,
                            "n_labelled": 0,
                            "correct": 0.0,
                        },
                    )
                    t["n_predictions"] += m.get("n_predictions", 0)
                    t["n_signals"] += m.get("n_signals", 0)
                    t["negative"] += (m.get("negative_rate") or 0) * m.get("n_signals", 0)
                    t["n_labelled"] += m.get("n_labelled", 0)
                    t["correct"] += (m.get("accuracy") or 0) * m.get("n_labelled", 0)
        return [
            {
                "model_version": version,
                "column": column,
                "value": value,
                "n_predictions": int(t["n_predictions"]),
                "negative_rate": t["negative"] / t["n_signals"] if t["n_signals"] else None,
                "n_labelled": int(t["n_labelled"]),
                "accuracy": t["correct"] / t["n_labelled"] if t["n_labelled"] else None,
            }
            for (version, column, value), t in sorted(acc.items())
        ]


def load(
    conn: psycopg.Connection,
    model_name: str,
    days: int,
    min_drift_rows: int = 1,
    review: ReviewConfig | None = None,
    aggregation_schedule: str | None = None,
) -> ModelView:
    """The last `days` days of rollups of a model, ending at its newest rollup, plus its alias history.

    PSI from intervals with fewer than `min_drift_rows` predictions is blanked: with a handful of rows
    most bins are empty and PSI is large by construction, the same reason alerts ignore it.
    """
    latest = conn.execute(queries.sql("aggregation/dashboard_latest"), {"model_name": model_name}).fetchone()
    until = latest["latest"] if latest else None
    view = ModelView(
        model_name=model_name, since=None, until=until, aggregation_schedule=aggregation_schedule
    )
    if aggregation_schedule:
        view.next_rollup = schedules.next_fire(aggregation_schedule, datetime.now(UTC))
    if until is not None:
        view.since = until - timedelta(days=days)
        view.rows = conn.execute(
            queries.sql("aggregation/dashboard_series"),
            {"model_name": model_name, "since": view.since, "until": until},
        ).fetchall()
        for row in view.rows:
            if (row["drift_rows"] or 0) < min_drift_rows:
                row["max_psi"] = row["max_psi_feature"] = None
            latency = row["review_latency_p50_s"]
            row["review_latency_p50_h"] = None if latency is None else latency / 3600
    view.aliases = registry.alias_history(conn, model_name)
    view.champion = view.aliases[-1].version if view.aliases else None
    view.reviewers = report.reviewers(conn, model_name, review or ReviewConfig())
    return view
