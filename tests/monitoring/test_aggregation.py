"""Rollups against real PostgreSQL: metrics checked against an independent count of the same events,
idempotent reruns, a 30-interval backfill equal to live hour-by-hour runs, drift and alerts."""

from __future__ import annotations

from statistics import quantiles

import pytest

from feedback_loop.core.errors import InvalidInputError
from feedback_loop.monitoring import aggregation
from feedback_loop.registry import versions as registry

from ..support.aggregation import (
    HOUR,
    T0,
    Replayer,
    event_stream,
    register_profiled,
    rollup_values,
    settings_for,
)

pytestmark = pytest.mark.integration

MODEL = "toy"
SLICE = "region"


@pytest.fixture
def settings():
    return settings_for(MODEL, SLICE)


@pytest.fixture
def two_versions(conn, settings):
    register_profiled(conn, settings, MODEL, SLICE, seed=0)
    register_profiled(conn, settings, MODEL, SLICE, seed=1)
    conn.commit()


def aggregate(conn, settings, start, end):
    return aggregation.aggregate_interval(conn, settings.model(MODEL), settings, start, end)


def test_metrics_agree_with_an_independent_count_of_the_events(conn, settings, two_versions):
    events = event_stream(MODEL, [1, 2], hours=3, slice_column=SLICE, per_hour=40)
    Replayer(conn).until(events, T0 + 3 * HOUR)
    start, end = T0 + HOUR, T0 + 2 * HOUR
    rows = {r["model_version"]: r for r in aggregate(conn, settings, start, end)}
    assert sorted(rows) == [1, 2]

    predictions = {e.data["trace_id"]: e.data for e in events if e.kind == "prediction"}
    for version, row in rows.items():
        inside = [e for e in events if start <= e.at < end and e.data["model_version"] == version]
        feedback = [e.data for e in inside if e.kind in ("feedback", "answer")]
        signals = [f for f in feedback if f["kind"] != "comment"]
        negative = [
            f
            for f in signals
            if f["kind"] in ("thumbs_down", "correction")
            or (f["kind"] == "rating" and f["rating"] <= 2)
            or (f["kind"] == "implicit" and f["signal"] != "accepted")
        ]
        labelled = [f for f in feedback if f.get("label")]
        correct = [f for f in labelled if f["label"] == predictions[f["trace_id"]]["output_label"]]
        latencies = sorted(
            (
                e.at - next(r.at for r in events if r.kind == "review" and r.data["key"] == e.data["key"])
            ).total_seconds()
            for e in inside
            if e.kind == "answer"
        )
        assert row["n_predictions"] == sum(1 for e in inside if e.kind == "prediction")
        assert row["n_feedback"] == len(feedback)
        assert row["counts_by_kind"]["correction"] == sum(1 for f in feedback if f["kind"] == "correction")
        assert row["negative_rate"] == pytest.approx(len(negative) / len(signals))
        assert row["accuracy"] == pytest.approx(len(correct) / len(labelled))
        assert row["n_labelled"] == len(labelled)
        assert row["reviews_asked"] == sum(1 for e in inside if e.kind == "review")
        assert row["label_yield"] == pytest.approx(
            sum(1 for e in inside if e.kind == "answer") / row["reviews_asked"]
        )
        if len(latencies) >= 2:
            median = quantiles(latencies, n=2, method="inclusive")[0]
            assert row["review_latency_p50_s"] == pytest.approx(median)
        by_region = {}
        for e in inside:
            if e.kind == "prediction":
                region = e.data["slice"][SLICE]
                by_region[region] = by_region.get(region, 0) + 1
        assert {k: v["n_predictions"] for k, v in row["slices"][SLICE].items()} == by_region
        assert set(row["drift"]["features"]) == {"f0", "f1"}


def test_backlog_counts_items_open_at_the_interval_end(conn, settings, two_versions):
    conn.execute(
        """
        INSERT INTO predictions (trace_id, model_name, model_version, input, output_label, confidence, created_at)
        VALUES ('00000000-0000-4000-8000-000000000001', 'toy', 1, '{}', 'a', 0.5, %(t)s),
               ('00000000-0000-4000-8000-000000000002', 'toy', 1, '{}', 'a', 0.5, %(t)s)
        """,
        {"t": T0},
    )
    conn.execute(
        """
        INSERT INTO review_items (trace_id, model_name, model_version, reason, created_at, status, answered_at)
        VALUES ('00000000-0000-4000-8000-000000000001', 'toy', 1, 'low_confidence', %(t)s, 'open', NULL),
               ('00000000-0000-4000-8000-000000000002', 'toy', 1, 'low_confidence', %(t)s, 'answered', %(a)s)
        """,
        {"t": T0, "a": T0 + 2 * HOUR + HOUR / 2},
    )
    conn.commit()
    (first,) = aggregate(conn, settings, T0 + HOUR, T0 + 2 * HOUR)
    assert (first["backlog_size"], first["backlog_oldest_age_s"]) == (2, 2 * 3600)
    (third,) = aggregate(conn, settings, T0 + 2 * HOUR, T0 + 3 * HOUR)
    assert (third["backlog_size"], third["backlog_oldest_age_s"]) == (1, 3 * 3600)
    # Past the queue's max age (6 h in this config) items would have expired: not backlog any more.
    assert aggregate(conn, settings, T0 + 6 * HOUR, T0 + 7 * HOUR) == []


def test_audited_accuracy_counts_the_audit_answers_on_the_intervals_predictions(conn, settings, two_versions):
    # (trace, version, scored at, predicted, consensus label, audited)
    rows = [
        (1, 1, T0 + HOUR, "a", "a", True),  # in the interval, audited, right
        (2, 1, T0 + HOUR, "a", "b", True),  # ... audited, wrong
        (3, 1, T0 + HOUR, "a", "b", False),  # ... a review, not an audit: not counted
        (4, 1, T0, "a", "a", True),  # audited, but scored in the hour before
        (5, 2, T0 + HOUR, "b", "b", True),
    ]
    for n, version, at, predicted, label, audited in rows:
        trace = f"00000000-0000-4000-8000-{n:012d}"
        conn.execute(
            """
            INSERT INTO predictions (trace_id, model_name, model_version, input, output_label, confidence,
                                     created_at)
            VALUES (%(trace)s, 'toy', %(version)s, '{}', %(predicted)s, 0.5, %(at)s)
            """,
            {"trace": trace, "version": version, "predicted": predicted, "at": at + HOUR / 4},
        )
        conn.execute(
            """
            INSERT INTO consensus_labels (trace_id, model_name, model_version, label, probability, answers,
                                          status, audited)
            VALUES (%(trace)s, 'toy', %(version)s, %(label)s, 0.9, 1, 'single', %(audited)s)
            """,
            {"trace": trace, "version": version, "label": label, "audited": audited},
        )
    conn.commit()
    rows_by_version = {r["model_version"]: r for r in aggregate(conn, settings, T0 + HOUR, T0 + 2 * HOUR)}
    assert {v: (r["audited_n"], r["audited_correct"]) for v, r in rows_by_version.items()} == {
        1: (2, 1),
        2: (1, 1),
    }


def test_rerunning_an_interval_three_times_leaves_identical_rows(conn, settings, two_versions):
    Replayer(conn).until(event_stream(MODEL, [1, 2], hours=2, slice_column=SLICE), T0 + 2 * HOUR)
    snapshots = []
    for _ in range(3):
        aggregate(conn, settings, T0 + HOUR, T0 + 2 * HOUR)
        snapshots.append(rollup_values(conn, MODEL))
    assert len(snapshots[0]) == 2
    assert snapshots[0] == snapshots[1] == snapshots[2]


def test_thirty_interval_backfill_equals_hour_by_hour_runs(conn, settings, two_versions):
    hours = 30
    events = event_stream(MODEL, [1, 2], hours=hours, slice_column=SLICE, per_hour=12)
    replay = Replayer(conn)
    for start, end in aggregation.intervals(T0, T0 + hours * HOUR, HOUR):
        replay.until(events, end)  # what a live deployment knows when the interval closes
        aggregate(conn, settings, start, end)
    live = rollup_values(conn, MODEL)
    assert len(live) == 2 * hours

    conn.execute("DELETE FROM feedback_rollups")
    conn.commit()
    for start, end in reversed(list(aggregation.intervals(T0, T0 + hours * HOUR, HOUR))):
        aggregate(conn, settings, start, end)
    assert rollup_values(conn, MODEL) == live


def test_a_version_without_activity_loses_its_row_on_rerun(conn, settings, two_versions):
    Replayer(conn).until(event_stream(MODEL, [1, 2], hours=1, slice_column=SLICE), T0 + HOUR)
    assert len(aggregate(conn, settings, T0, T0 + HOUR)) == 2
    for table in ("feedback", "review_items", "predictions"):
        conn.execute(f"DELETE FROM {table} WHERE model_version = 2")  # noqa: S608
    conn.commit()
    aggregate(conn, settings, T0, T0 + HOUR)
    assert [r[1] for r in rollup_values(conn, MODEL)] == ["1"]


def test_injected_drift_on_one_feature_crosses_the_psi_threshold(conn, settings, two_versions):
    estimator, _ = registry.load(conn, MODEL, 1)
    events = event_stream(
        MODEL, [1], hours=1, slice_column=SLICE, per_hour=400, shift={"f1": 1.5}, estimator=estimator
    )
    Replayer(conn).until(events, T0 + HOUR)
    (row,) = aggregate(conn, settings, T0, T0 + HOUR)
    features = row["drift"]["features"]
    assert features["f1"]["psi"] > settings.alerts.psi
    assert features["f1"]["ks_pvalue"] < 0.001
    assert features["f0"]["psi"] < settings.alerts.psi
    assert row["drift"]["confidence"]["psi"] < settings.alerts.psi  # f1 barely moves the model's output
    assert row["drift"]["max_psi"]["feature"] == "f1"

    found = aggregation.evaluate_alerts(conn, settings, MODEL, T0, T0 + HOUR)
    drift_alerts = [a for a in found if a.kind == "drift"]
    assert [a.metric for a in drift_alerts] == ["drift.f1.psi"]
    extra = aggregation.event_extra(MODEL, T0, T0 + HOUR, found)
    assert "f1" in extra["reason"] and extra["model_name"] == MODEL


def test_alerts_notify_once_per_interval(conn, settings, two_versions):
    Replayer(conn).until(
        event_stream(MODEL, [1], hours=1, slice_column=SLICE, per_hour=300, shift={"f0": 2.0}), T0 + HOUR
    )
    aggregate(conn, settings, T0, T0 + HOUR)
    found = aggregation.evaluate_alerts(conn, settings, MODEL, T0, T0 + HOUR)
    assert found
    first = aggregation.notify_alerts(conn, settings, MODEL, T0, T0 + HOUR, found)
    again = aggregation.notify_alerts(conn, settings, MODEL, T0, T0 + HOUR, found)
    assert first is not None and again is None
    stored = conn.execute("SELECT topic, payload FROM notifications").fetchall()
    assert len(stored) == 1
    assert stored[0]["topic"].startswith("retraining_needed:toy:")
    assert "drifted" in str(stored[0]["payload"])


def test_interval_must_be_aware_and_ordered(conn, settings):
    with pytest.raises(InvalidInputError, match="after start"):
        aggregate(conn, settings, T0 + HOUR, T0)
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        aggregate(conn, settings, T0.replace(tzinfo=None), (T0 + HOUR).replace(tzinfo=None))
