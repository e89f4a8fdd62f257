"""Rollups per model version and interval: feedback metrics, slices and drift, written idempotently.

One call aggregates one model over one interval [start, end). The metrics come from SQL in
sql/queries/aggregation/ that reads every source by created_at range, so the cost follows the interval's
rows, not the size of the history. The result replaces the interval's rows in one transaction (UPSERT
keyed by model, version, interval_start, interval_end, plus removal of versions no longer active), so a
rerun or a backfill writes exactly what a first run would have written; only computed_at changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from feedback_loop.core import db, notify, queries
from feedback_loop.core.config import ModelConfig, Settings
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.labels import store as labels
from feedback_loop.monitoring import alerts as alert_rules
from feedback_loop.monitoring import drift

log = logging.getLogger(__name__)

CALIBRATION_BINS = 10  # as in sql/queries/aggregation/confidence_histogram.sql and retrain.training

ALERT_TOPIC = "retraining_needed"
# Columns compared when checking reruns and backfills; computed_at records when, not what.
ROLLUP_VALUE_COLUMNS = (
    "model_name",
    "model_version",
    "interval_start",
    "interval_end",
    "n_predictions",
    "n_feedback",
    "n_signals",
    "counts_by_kind",
    "mean_rating",
    "positive_rate",
    "negative_rate",
    "correction_rate",
    "accuracy",
    "n_labelled",
    "review_latency_p50_s",
    "review_latency_p95_s",
    "backlog_size",
    "backlog_oldest_age_s",
    "reviews_asked",
    "labels_from_reviews",
    "label_yield",
    "drift",
    "slices",
)


def check_interval(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInputError("interval start and end must be timezone-aware datetimes")
    if end <= start:
        raise InvalidInputError(f"interval end {end.isoformat()} must be after start {start.isoformat()}")


def intervals(start: datetime, end: datetime, step: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive [a, b) intervals of length `step` covering [start, end) (a backfill's runs)."""
    check_interval(start, end)
    if step <= timedelta(0):
        raise InvalidInputError("interval step must be positive")
    cursor = start
    while cursor < end:
        yield cursor, min(cursor + step, end)
        cursor += step


def _round(value: Any, digits: int = 9) -> Any:
    """Floats summed by PostgreSQL may differ in the last bits with scan order; rounding keeps reruns equal."""
    return round(float(value), digits) if value is not None else None


def _slices(rows: list[dict[str, Any]]) -> dict[int, dict[str, dict[str, dict[str, Any]]]]:
    by_version: dict[int, dict[str, dict[str, dict[str, Any]]]] = {}
    for row in rows:
        column = by_version.setdefault(int(row["model_version"]), {}).setdefault(row["slice_column"], {})
        column[row["slice_value"]] = {
            "n_predictions": int(row["n_predictions"]),
            "mean_confidence": _round(row["mean_confidence"], 6),
            "n_feedback": int(row["n_feedback"]),
            "n_signals": int(row["n_signals"]),
            "negative_rate": _round(row["negative_rate"]),
            "n_labelled": int(row["n_labelled"]),
            "accuracy": _round(row["accuracy"]),
        }
    return by_version


def _drift(
    conn: psycopg.Connection,
    model_name: str,
    version: int,
    profile: dict[str, Any],
    start: datetime,
    end: datetime,
    max_rows: int,
) -> dict[str, Any]:
    if not profile:
        return {}
    params = {
        "model_name": model_name,
        "model_version": version,
        "start": start,
        "end": end,
        "max_rows": max_rows,
    }
    rows = conn.execute(queries.sql("aggregation/drift_sample"), params).fetchall()
    if not rows:
        return {}
    report = drift.drift_report(profile, [r["input"] for r in rows], [float(r["confidence"]) for r in rows])
    report["capped"] = len(rows) >= max_rows
    return report


def compute(
    conn: psycopg.Connection, model: ModelConfig, settings: Settings, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The rollup rows of one model and interval, one per model version with activity (not written)."""
    check_interval(start, end)
    params = {
        "model_name": model.name,
        "start": start,
        "end": end,
        "backlog_since": end - timedelta(hours=model.review_queue_max_age_hours),
        "slice_columns": list(model.slice_columns),
    }
    metrics = conn.execute(queries.sql("aggregation/version_metrics"), params).fetchall()
    if not metrics:
        return []
    versions = [int(r["model_version"]) for r in metrics]
    slices = (
        _slices(conn.execute(queries.sql("aggregation/slice_metrics"), params).fetchall())
        if model.slice_columns
        else {}
    )
    profiles = {
        int(r["version"]): r
        for r in conn.execute(
            queries.sql("aggregation/version_profiles"), {"model_name": model.name, "versions": versions}
        ).fetchall()
    }
    audits = {
        int(r["model_version"]): r
        for r in conn.execute(queries.sql("aggregation/audited_accuracy"), params).fetchall()
    }
    bins: dict[int, dict[int, int]] = {}
    for r in conn.execute(queries.sql("aggregation/confidence_histogram"), params).fetchall():
        bins.setdefault(int(r["model_version"]), {})[int(r["bin"])] = int(r["n"])
    rollups = []
    for row in metrics:
        version = int(row["model_version"])
        profile = (profiles.get(version) or {}).get("reference_profile") or {}
        audit = audits.get(version) or {"audited_n": 0, "audited_correct": 0}
        calibration = ((profiles.get(version) or {}).get("metrics") or {}).get("calibration")
        rollups.append(
            {
                "model_name": model.name,
                "model_version": version,
                "interval_start": start,
                "interval_end": end,
                "n_predictions": int(row["n_predictions"]),
                "n_feedback": int(row["n_feedback"]),
                "n_signals": int(row["n_signals"]),
                "counts_by_kind": row["counts_by_kind"],
                "mean_rating": _round(row["mean_rating"]),
                "positive_rate": _round(row["positive_rate"]),
                "negative_rate": _round(row["negative_rate"]),
                "correction_rate": _round(row["correction_rate"]),
                "accuracy": _round(row["accuracy"]),
                "n_labelled": int(row["n_labelled"]),
                "review_latency_p50_s": _round(row["review_latency_p50_s"], 6),
                "review_latency_p95_s": _round(row["review_latency_p95_s"], 6),
                "backlog_size": int(row["backlog_size"]),
                "backlog_oldest_age_s": _round(row["backlog_oldest_age_s"], 6),
                "reviews_asked": int(row["reviews_asked"]),
                "labels_from_reviews": int(row["labels_from_reviews"]),
                "label_yield": _round(row["label_yield"]),
                "drift": _drift(
                    conn, model.name, version, profile, start, end, settings.aggregation.drift_max_rows
                ),
                "slices": slices.get(version, {}),
                "audited_n": int(audit["audited_n"]),
                "audited_correct": int(audit["audited_correct"]),
                "estimated_accuracy": _round(estimated_accuracy(bins.get(version, {}), calibration)),
            }
        )
    return rollups


def estimated_accuracy(bins: dict[int, int], calibration: dict[str, Any] | None) -> float | None:
    """Accuracy without labels, in the manner of CBPE: each prediction counts with the accuracy the
    version's calibration (fitted on its holdout at training time) gives its confidence bin. Without a
    calibration, the bin's middle confidence stands in for it (right only for a calibrated model)."""
    total = sum(bins.values())
    if not total:
        return None
    per_bin = (calibration or {}).get("accuracy")
    if not per_bin or len(per_bin) != CALIBRATION_BINS:
        per_bin = [(b - 0.5) / CALIBRATION_BINS for b in range(1, CALIBRATION_BINS + 1)]
    return sum(n * float(per_bin[min(max(b, 1), CALIBRATION_BINS) - 1]) for b, n in bins.items()) / total


def aggregate_interval(
    conn: psycopg.Connection, model: ModelConfig, settings: Settings, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Compute and store the rollups of one model and interval in one transaction; returns the rows.

    Concurrent runs for the same model and interval serialise on an advisory lock, so the interval ends
    up with one consistent set of rows whatever the overlap between a scheduled run and a backfill.
    """
    with conn.transaction():
        db.transaction_lock(conn, f"rollup:{model.name}:{start.isoformat()}:{end.isoformat()}")
        # Consensus labels and reviewer reliability from every answer so far (when any came since the
        # last refresh): the audited accuracy below and the reviewer alerts read them.
        labels.refresh_if_changed(conn, model)
        rollups = compute(conn, model, settings, start, end)
        for rollup in rollups:
            conn.execute(
                queries.sql("aggregation/upsert_rollup"),
                {
                    **rollup,
                    "start": start,
                    "end": end,
                    "counts_by_kind": Jsonb(rollup["counts_by_kind"]),
                    "drift": Jsonb(rollup["drift"]),
                    "slices": Jsonb(rollup["slices"]),
                },
            )
        conn.execute(
            queries.sql("aggregation/delete_stale_rollups"),
            {
                "model_name": model.name,
                "start": start,
                "end": end,
                "versions": [r["model_version"] for r in rollups],
            },
        )
    log.info(
        "%s: rolled up %s version(s) for [%s, %s): %s",
        model.name,
        len(rollups),
        start.isoformat(),
        end.isoformat(),
        ", ".join(
            f"v{r['model_version']} {r['n_predictions']} predictions/{r['n_feedback']} feedback"
            for r in rollups
        )
        or "no activity",
    )
    return rollups


def read_rollups(
    conn: psycopg.Connection, model_name: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    params = {"model_name": model_name, "start": start, "end": end}
    return conn.execute(queries.sql("aggregation/rollups_for_interval"), params).fetchall()


def evaluate_alerts(
    conn: psycopg.Connection, settings: Settings, model_name: str, start: datetime, end: datetime
) -> list[alert_rules.Alert]:
    """Thresholds crossed by the stored rollups of one model and interval."""
    rollups = read_rollups(conn, model_name, start, end)
    if not rollups:
        return []
    profiles = {
        int(r["version"]): r
        for r in conn.execute(
            queries.sql("aggregation/version_profiles"),
            {"model_name": model_name, "versions": [r["model_version"] for r in rollups]},
        ).fetchall()
    }
    found: list[alert_rules.Alert] = []
    for rollup in rollups:
        metrics = (profiles.get(int(rollup["model_version"])) or {}).get("metrics") or {}
        found.extend(alert_rules.evaluate(rollup, metrics, settings.alerts))
    active = conn.execute(
        queries.sql("aggregation/reviewers_in_interval"),
        {"model_name": model_name, "start": start, "end": end},
    ).fetchall()
    latest = max(int(r["model_version"]) for r in rollups)
    floor = settings.model(model_name).review.min_reviewer_accuracy
    found.extend(alert_rules.reviewer_alerts(active, model_name, latest, floor))
    return found


def event_extra(model_name: str, start: datetime, end: datetime, found: list[alert_rules.Alert]) -> dict:
    """The extra of a `retraining_needed` asset event: which model, which interval, and why."""
    return {
        "model_name": model_name,
        "interval_start": start.isoformat(),
        "interval_end": end.isoformat(),
        "reason": "; ".join(a.message for a in found),
        "alerts": [a.as_dict() for a in found],
    }


def notify_alerts(
    conn: psycopg.Connection,
    settings: Settings,
    model_name: str,
    start: datetime,
    end: datetime,
    found: list[alert_rules.Alert],
) -> notify.Delivery | None:
    """Send one webhook message for the interval's alerts; a retried or re-run interval with the same
    alerts does not notify twice (the outbox already holds the message and retries its delivery)."""
    if not found:
        return None
    text = f"{model_name}: retraining needed after [{start.isoformat()}, {end.isoformat()})"
    fields = {a.metric + f" (v{a.model_version})": a.message for a in found}
    topic = f"{ALERT_TOPIC}:{model_name}:{start.isoformat()}/{end.isoformat()}"
    existing = conn.execute(
        queries.sql("aggregation/alert_notified"),
        {"topic": topic, "payload": Jsonb(notify.slack_payload(text, fields))},
    ).fetchone()
    if existing is not None:
        log.info(
            "%s: alerts for this interval were already notified (notification %s)", model_name, existing["id"]
        )
        return None
    return notify.notify(conn, topic, text, settings.notify, fields)
