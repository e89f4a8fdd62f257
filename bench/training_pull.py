"""Training-data pull: the streaming path (server-side cursor, one row per trace, frame built in chunks)
against `pandas.read_sql` of the same query followed by the same label resolution.

Builds a throwaway database with N predictions of 64 numeric features (digits-shaped) and ~1.4 feedback
rows per prediction, then measures rows/s and peak Python memory (tracemalloc, which sees numpy and pandas
buffers too) for both paths. Run: `.venv/bin/python -m bench training_pull` (BENCH_PULL_ROWS to resize).
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
import uuid
import warnings
from datetime import UTC, datetime

ROWS = int(os.environ.get("BENCH_PULL_ROWS", "20000"))
FEATURES = [f"pixel_{i}" for i in range(64)]


def _populate(url: str, n: int) -> None:
    import numpy as np

    from feedback_loop.core import db, store

    rng = np.random.default_rng(0)
    with db.connect(url) as conn:
        conn.execute(
            "INSERT INTO model_versions (model_name, version, artifact_uri, sha256, created_by) "
            "VALUES ('bench', 1, 'file:///dev/null', %s, 'bench')",
            ("0" * 64,),
        )
        values = rng.integers(0, 17, size=(n, len(FEATURES))).astype(float)
        labels = rng.integers(0, 10, size=n)
        traces = [uuid.uuid4() for _ in range(n)]
        store.log_predictions(
            conn,
            (
                store.Prediction(
                    trace_id=traces[i],
                    model_name="bench",
                    model_version=1,
                    input=dict(zip(FEATURES, values[i].tolist(), strict=True)),
                    output_label=str(labels[i]),
                    confidence=0.7,
                    slice={"writer_group": "abc"[i % 3]},
                )
                for i in range(n)
            ),
        )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY feedback (trace_id, model_name, model_version, kind, rating, label, source, user_id) FROM STDIN"
            ) as copy,
        ):
            for i, trace in enumerate(traces):
                if i % 5 == 0:
                    copy.write_row(
                        (trace, "bench", 1, "correction", None, str((labels[i] + 1) % 10), "review", "r1")
                    )
                    copy.write_row((trace, "bench", 1, "thumbs_up", None, None, "api", "u1"))
                elif i % 5 == 1:
                    copy.write_row((trace, "bench", 1, "rating", 5, None, "api", "u2"))
                    copy.write_row((trace, "bench", 1, "thumbs_down", None, None, "api", "u3"))
                else:
                    copy.write_row((trace, "bench", 1, "thumbs_up", None, None, "api", None))
        conn.execute("ANALYZE")


def _model():
    from feedback_loop.core import config

    return config.parse(
        "models:\n  - name: bench\n    label_column: label\n    slice_columns: [writer_group]\n"
        "    training_data: {bundled: digits}\n",
        "bench.yaml",
    ).model("bench")


def _measure(fn) -> tuple[float, float, int]:
    """(seconds, peak MiB, rows): timed on a plain pass, memory on a second pass under tracemalloc (which
    slows Python down several times, so its pass is not timed)."""
    gc.collect()
    started = time.perf_counter()
    rows = fn()
    seconds = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak / 2**20, rows


def run() -> list[dict]:
    import pandas as pd

    from feedback_loop.core import db, migrations, queries
    from feedback_loop.retrain import training_data

    server = db.resolve_url()
    name = f"fl_bench_{uuid.uuid4().hex[:8]}"
    url = db.ensure_database(server, name)
    model = _model()
    columns = [*FEATURES, "writer_group"]
    try:
        migrations.upgrade(url)
        _populate(url, ROWS)
        window = {"start": datetime(1970, 1, 1, tzinfo=UTC), "end": datetime.now(UTC)}

        def streaming() -> int:
            with db.connect(url) as conn:
                pulled = training_data.pull_feedback(
                    conn,
                    model,
                    columns,
                    **window,
                    min_rating=4,
                    include_corrections=True,
                    numeric_columns=FEATURES,
                )
            return len(pulled.frame)

        def read_sql() -> int:
            with db.connect(url) as conn, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy; a DBAPI conn works
                raw = pd.read_sql(
                    queries.sql("retraining/feedback_votes"), conn, params={"model_name": "bench", **window}
                )
            records = []
            for row in raw.to_dict("records"):
                resolution = training_data.resolve(training_data._votes(row), row["output_label"])
                if resolution.label is not None:
                    values = {**row["input"], **row["slice"]}
                    records.append([*(values.get(c) for c in columns), resolution.label])
            frame = pd.DataFrame.from_records(records, columns=[*columns, "label"])
            return len(frame)

        s_time, s_peak, s_rows = _measure(streaming)
        r_time, r_peak, r_rows = _measure(read_sql)
        if s_rows != r_rows or not s_rows:
            raise RuntimeError(f"the two paths disagree or found nothing: {s_rows} vs {r_rows} rows")
    finally:
        db.drop_database(server, name)
    return [
        {"metric": "traces pulled", "value": float(ROWS), "unit": "traces"},
        {"metric": "labelled rows out", "value": float(s_rows), "unit": "rows"},
        {"metric": "streaming rows/s", "value": ROWS / s_time, "unit": "traces/s"},
        {"metric": "read_sql rows/s", "value": ROWS / r_time, "unit": "traces/s"},
        {"metric": "streaming peak memory", "value": s_peak, "unit": "MiB"},
        {"metric": "read_sql peak memory", "value": r_peak, "unit": "MiB"},
        {"metric": "memory ratio read_sql/stream", "value": r_peak / s_peak, "unit": "x"},
        {"metric": "speed ratio stream/read_sql", "value": r_time / s_time, "unit": "x"},
    ]
