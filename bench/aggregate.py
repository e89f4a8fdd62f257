"""Aggregating one interval must cost the same whatever the size of the history.

In a dedicated database (dropped afterwards) the benchmark builds a history of feedback rows (with their
predictions and review items) at a steady rate of rows per hour, then times `aggregate_interval` for one
hour at the end: first with 1M rows of feedback history, then after growing the history to 10M with older
rows. The interval's own rows are the same in both. In the same run it times what a pandas job would do:
read the whole feedback table (joined to predictions) and group it by version and hour.

Sizes: BENCH_AGGREGATE_ROWS="1000000,10000000" (comma-separated, ascending); interval rows:
BENCH_AGGREGATE_INTERVAL_ROWS (default 5000).
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from feedback_loop.core import config, db, migrations
from feedback_loop.monitoring import aggregation

MODEL = "bench"
TARGET = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
REPEATS = 5

SETTINGS = config.parse(
    f"""
models:
  - name: {MODEL}
    label_column: y
    slice_columns: [region]
    training_data: {{path: unused.csv}}
""",
    "bench.yaml",
)

# History rows are generated in SQL. Feedback row i belongs to prediction i/2 (two feedback rows per
# prediction), created within the prediction's hour; every 20th prediction was sent to review, and 1 in 20 of the
# predictions reviewers answered was an audit question (the shipped audit share).
PREDICTIONS_SQL = """
INSERT INTO predictions (trace_id, model_name, model_version, input, output_label, confidence, slice, created_at)
SELECT md5('p' || i)::uuid, %(model)s, 1 + (i %% 2),
       jsonb_build_object('f0', round((random() * 4 - 2)::numeric, 4), 'f1', round((random() * 4 - 2)::numeric, 4)),
       CASE WHEN i %% 3 = 0 THEN 'a' ELSE 'b' END, 0.5 + random() / 2,
       jsonb_build_object('region', CASE WHEN i %% 4 = 0 THEN 'north' ELSE 'south' END),
       %(end)s - make_interval(secs => (i + 1) * %(seconds_per_row)s::float8)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
"""
FEEDBACK_SQL = """
INSERT INTO feedback (trace_id, model_name, model_version, kind, rating, label, signal, comment, source,
                      latency_seconds, created_at)
SELECT md5('p' || (j / 2))::uuid, %(model)s, 1 + ((j / 2) %% 2), k.kind,
       CASE WHEN k.kind = 'rating' THEN 1 + (j %% 5) END,
       CASE WHEN k.kind = 'correction' THEN 'a' WHEN k.kind = 'thumbs_up' AND j %% 4 = 1 THEN 'b' END,
       CASE WHEN k.kind = 'implicit' THEN 'accepted' END,
       CASE WHEN k.kind = 'comment' THEN 'fine' END,
       CASE WHEN j %% 10 = 7 THEN 'review' ELSE 'api' END,
       CASE WHEN j %% 10 = 7 THEN 60 + (j %% 3600) END,
       %(end)s - make_interval(secs => (j / 2 + 1) * %(seconds_per_row)s::float8) + interval '1 second'
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS j
CROSS JOIN LATERAL (SELECT (ARRAY['thumbs_up', 'thumbs_down', 'rating', 'correction', 'comment', 'implicit'])
                           [1 + (j %% 6)] AS kind) AS k
"""
REVIEWS_SQL = """
INSERT INTO review_items (trace_id, model_name, model_version, reason, status, created_at, answered_at)
SELECT md5('p' || i)::uuid, %(model)s, 1 + (i %% 2), CASE WHEN i %% 20 = 0 THEN 'low_confidence' ELSE 'audit' END,
       CASE WHEN i %% 3 = 0 THEN 'queued' ELSE 'answered' END, t,
       CASE WHEN i %% 3 = 0 THEN NULL ELSE t + interval '40 minutes' END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i,
     LATERAL (SELECT %(end)s - make_interval(secs => (i + 1) * %(seconds_per_row)s::float8) AS t) AS x
WHERE i %% 20 = 0 OR i %% 100 = 3  -- reviewer answers fall on predictions 5m + 3: 1 in 20 of them audits
"""


def _sizes() -> list[int]:
    raw = os.environ.get("BENCH_AGGREGATE_ROWS", "1000000,10000000")
    return sorted(int(x) for x in raw.split(",") if x.strip())


def _progress(message: str) -> None:
    print(f"  aggregate: {message}", file=sys.stderr, flush=True)


def _register_version(conn) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    values = rng.uniform(-2, 2, size=5000)
    edges = np.quantile(values, np.linspace(0, 1, 11))[1:-1]
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=10)
    numeric = {
        "type": "numeric",
        "edges": edges.tolist(),
        "shares": (counts / values.size).tolist(),
        "sample": np.sort(values[:500]).tolist(),
    }
    confidence = {
        **numeric,
        "edges": (0.75 + edges / 8).tolist(),
        "sample": (0.75 + np.sort(values[:500]) / 8).tolist(),
    }
    profile = {"rows": 5000, "features": {"f0": numeric, "f1": numeric}, "confidence": confidence}
    for version in (1, 2):
        conn.execute(
            """
            INSERT INTO model_versions (model_name, version, artifact_uri, sha256, created_by, metrics,
                reference_profile)
            VALUES (%s, %s, 'file:///bench', repeat('0', 64), 'bench', '{"accuracy": 0.9}', %s)
            """,
            (MODEL, version, __import__("json").dumps(profile)),
        )


def _load(conn, first_prediction: int, last_prediction: int, end: datetime, seconds: float) -> None:
    """Predictions [first, last] counted back from `end`, one every `seconds`, with feedback and reviews."""
    try:
        with conn.transaction():
            conn.execute("SET session_replication_role = replica")  # bulk load: skip FK triggers
    except Exception:  # noqa: BLE001 - needs superuser; without it the load is just slower
        pass
    params = {
        "model": MODEL,
        "end": end,
        "seconds_per_row": seconds,
        "first": first_prediction,
        "last": last_prediction,
    }
    conn.execute(PREDICTIONS_SQL, params)
    conn.execute(REVIEWS_SQL, params)
    conn.execute(FEEDBACK_SQL, {**params, "first": 2 * first_prediction, "last": 2 * last_prediction + 1})


def _time_interval(url: str) -> tuple[float, list[dict]]:
    model = SETTINGS.model(MODEL)
    timings, rows = [], []
    with db.connect(url) as conn:
        for _ in range(REPEATS):
            started = time.perf_counter()
            rows = aggregation.aggregate_interval(conn, model, SETTINGS, TARGET, TARGET + HOUR)
            timings.append(time.perf_counter() - started)
    return statistics.median(timings), rows


def _pandas_full_read(url: str) -> tuple[float, dict]:
    """Read every feedback row with its prediction's label, then roll up by version and hour."""
    import pandas as pd

    started = time.perf_counter()
    buffer = io.BytesIO()
    with db.connect(url) as conn, conn.cursor() as cur:
        query = (
            "COPY (SELECT f.model_version, f.kind, f.rating, f.label, f.is_negative, extract(epoch FROM f.created_at), p.output_label "
            "FROM feedback f JOIN predictions p ON p.trace_id = f.trace_id) TO STDOUT WITH (FORMAT csv)"
        )
        with cur.copy(query) as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    frame = pd.read_csv(
        buffer,
        names=["model_version", "kind", "rating", "label", "is_negative", "epoch", "output_label"],
    )
    frame["interval"] = (frame["epoch"] // 3600).astype("int64")
    frame["signal"] = frame["kind"] != "comment"
    frame["negative"] = frame["is_negative"] == "t"
    frame["labelled"] = frame["label"].notna()
    frame["correct"] = frame["labelled"] & (frame["label"] == frame["output_label"])
    grouped = frame.groupby(["model_version", "interval"]).agg(
        n_feedback=("kind", "size"),
        n_signals=("signal", "sum"),
        n_negative=("negative", "sum"),
        n_labelled=("labelled", "sum"),
        n_correct=("correct", "sum"),
        mean_rating=("rating", "mean"),
    )
    elapsed = time.perf_counter() - started
    target = grouped.xs(int(TARGET.timestamp()) // 3600, level="interval")
    summary = {
        int(v): {"n_feedback": int(r.n_feedback), "negative_rate": r.n_negative / r.n_signals}
        for v, r in target.iterrows()
    }
    return elapsed, {"seconds": elapsed, "rows": int(len(frame)), "target": summary}


def run() -> list[dict]:
    sizes = _sizes()
    interval_predictions = int(os.environ.get("BENCH_AGGREGATE_INTERVAL_ROWS", "5000")) // 2
    seconds_per_prediction = 3600 / interval_predictions  # a steady rate: the interval holds the same rows
    server = db.resolve_url()
    name = f"fl_bench_aggregate_{uuid.uuid4().hex[:8]}"
    url = db.ensure_database(server, name)
    results: list[dict] = []
    try:
        migrations.upgrade(url)
        with db.connect(url) as conn:
            _register_version(conn)
            _progress(f"interval of {2 * interval_predictions:,} feedback rows at {TARGET:%Y-%m-%d %H:%M}")
            # Prediction indexes count down into the past: 0 .. n-1 is the target hour, the rest is history.
            _load(conn, 0, interval_predictions - 1, TARGET + HOUR, seconds_per_prediction)
        loaded = 0
        first_sql: float | None = None
        first_pandas: float | None = None
        for size in sizes:
            history_predictions = size // 2
            started = time.perf_counter()
            with db.connect(url) as conn:
                _load(
                    conn,
                    interval_predictions + loaded,
                    interval_predictions + history_predictions - 1,
                    TARGET + HOUR,
                    seconds_per_prediction,
                )
            with db.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE predictions")
                conn.execute("VACUUM ANALYZE feedback")
                conn.execute("VACUUM ANALYZE review_items")
                total = conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"]
            loaded = history_predictions
            _progress(f"history of {total:,} feedback rows loaded in {time.perf_counter() - started:.0f}s")
            seconds, rows = _time_interval(url)
            pandas_seconds, pandas_result = _pandas_full_read(url)
            for row in rows:  # same data, same answer: the comparison is fair
                expected = pandas_result["target"][row["model_version"]]
                assert row["n_feedback"] == expected["n_feedback"], (row["n_feedback"], expected)
                assert abs(row["negative_rate"] - expected["negative_rate"]) < 1e-9
            label = f"{size / 1e6:g}M"
            interval_rows = sum(r["n_feedback"] for r in rows)
            _progress(
                f"{label}: one interval ({interval_rows:,} feedback rows) {seconds * 1000:.0f} ms; "
                f"pandas full read + groupby {pandas_seconds:.1f}s"
            )
            results += [
                {"metric": f"history_{label}_feedback_rows", "value": total, "unit": "rows"},
                {"metric": f"interval_{label}_sql_ms", "value": seconds * 1000, "unit": "ms (median of 5)"},
                {"metric": f"pandas_{label}_full_read_groupby_s", "value": pandas_seconds, "unit": "s"},
                {"metric": f"pandas_over_sql_{label}", "value": pandas_seconds / seconds, "unit": "x"},
            ]
            if first_sql is None:
                first_sql, first_pandas = seconds, pandas_seconds
            else:
                results += [
                    {
                        "metric": f"interval_sql_ratio_{label}_vs_first",
                        "value": seconds / first_sql,
                        "unit": "x",
                    },
                    {
                        "metric": f"pandas_ratio_{label}_vs_first",
                        "value": pandas_seconds / first_pandas,
                        "unit": "x",
                    },
                ]
    finally:
        db.drop_database(server, name)
    return results
