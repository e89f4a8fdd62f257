"""Inference round: set-based scoring (COPY + one UPDATE) against a row-at-a-time baseline, in one run.

On a throwaway database: `digits` v1 is trained on the bundled data and promoted, then N requests (rows of
the digits set, 64 features) are enqueued with `feedback-loop predict`'s COPY path and scored by
`inference.score_batch` (champion load with checksum check, predict_proba, COPY of the predictions, one
UPDATE of the requests, queueing of the low-confidence ones). The baseline writes the same predictions
with one INSERT and one UPDATE per request, as a naive loop would. Also timed: `open_reviews` choosing
and opening a budget of reviews from the resulting queue.

Knobs (environment): BENCH_INFERENCE_ROWS (20000), BENCH_INFERENCE_BUDGET (100).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

from feedback_loop.core import config, db, migrations, store
from feedback_loop.inference import reviews
from feedback_loop.inference import scoring as inference
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import baseline, datasets


def _progress(message: str) -> None:
    print(f"  inference: {message}", file=sys.stderr, flush=True)


def _requests(n: int) -> list[tuple[dict, dict]]:
    frame = datasets.digits()
    features = [c for c in frame.columns if c.startswith("pixel_")]
    records = frame[features + ["writer_group"]].to_dict("records")
    rows = []
    for i in range(n):
        record = records[i % len(records)]
        rows.append(({c: float(record[c]) for c in features}, {"writer_group": record["writer_group"]}))
    return rows


def _row_at_a_time(conn, predictions: list[store.Prediction], request_ids: list[int]) -> None:
    """The naive shape: one INSERT and one UPDATE per request."""
    for prediction, request_id in zip(predictions, request_ids, strict=True):
        conn.execute(
            "INSERT INTO predictions (trace_id, model_name, model_version, input, output_label, confidence, "
            "probabilities, slice, source_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                prediction.trace_id,
                prediction.model_name,
                prediction.model_version,
                json.dumps(prediction.input),
                prediction.output_label,
                prediction.confidence,
                json.dumps(prediction.probabilities),
                json.dumps(prediction.slice),
                prediction.source_run_id,
            ),
        )
        conn.execute(
            "UPDATE inference_requests SET status = 'scored', trace_id = %s, scored_at = now() WHERE id = %s",
            (prediction.trace_id, request_id),
        )


def run() -> list[dict]:
    n = int(os.environ.get("BENCH_INFERENCE_ROWS", "20000"))
    budget = int(os.environ.get("BENCH_INFERENCE_BUDGET", "100"))
    model = config.load().model("digits")
    server = db.resolve_url()
    name = f"fl_bench_inference_{uuid.uuid4().hex[:8]}"
    url = db.ensure_database(server, name)
    results: list[dict] = []
    try:
        migrations.upgrade(url)
        with db.connect(url) as conn:
            _progress("training and promoting digits v1")
            baseline.train_and_register(conn, model, created_by="bench", promote=True)
            rows = _requests(n)

            started = time.perf_counter()
            inference.enqueue_requests(conn, model.name, rows)
            conn.commit()
            enqueue_s = time.perf_counter() - started

            _progress(f"scoring {n:,} requests set-based")
            started = time.perf_counter()
            result = inference.score_batch(
                conn, model, threshold=model.confidence_threshold, batch_size=n, run_id="bench"
            )
            conn.commit()
            set_based_s = time.perf_counter() - started

            started = time.perf_counter()
            tasks = reviews.open_reviews(
                conn,
                model,
                budget=budget,
                hitl_ref={"dag_id": "bench", "run_id": "bench", "task_id": "review"},
            )
            conn.commit()
            open_s = time.perf_counter() - started

            _progress(f"scoring {n:,} requests row at a time (baseline)")
            inference.enqueue_requests(conn, model.name, rows)
            conn.commit()
            started = time.perf_counter()
            estimator, entry = registry.load(conn, model.name)
            pending = inference.fetch_pending(conn, model.name, n)
            batch = inference.score(
                estimator, entry, pending, slice_columns=model.slice_columns, run_id="base"
            )
            _row_at_a_time(conn, batch.predictions, batch.request_ids)
            conn.commit()
            row_s = time.perf_counter() - started
        results += [
            {"metric": "requests", "value": n, "unit": "rows"},
            {"metric": "enqueue (COPY)", "value": n / enqueue_s, "unit": "rows/s"},
            {"metric": "score_batch set-based", "value": result.scored / set_based_s, "unit": "rows/s"},
            {"metric": "score row-at-a-time", "value": len(batch.predictions) / row_s, "unit": "rows/s"},
            {"metric": "set-based / row-at-a-time", "value": row_s / set_based_s, "unit": "x"},
            {"metric": "queued for review", "value": result.queued_total, "unit": "items"},
            {"metric": f"open_reviews budget {budget}", "value": open_s * 1000, "unit": "ms"},
            {"metric": "reviews opened", "value": len(tasks), "unit": "tasks"},
        ]
    finally:
        db.drop_database(server, name)
    return results
