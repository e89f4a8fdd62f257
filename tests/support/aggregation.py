"""Builders for aggregation tests: a model version with a reference profile and a deterministic stream of
timestamped predictions, feedback and review events that can be replayed hour by hour (as a live
deployment sees them) or all at once (as a backfill does)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback_loop.core import config
from feedback_loop.registry import versions as registry

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def settings_for(model_name: str, slice_column: str, **alerts: Any) -> config.Settings:
    alert_lines = "".join(f"\n  {k}: {v}" for k, v in alerts.items())
    return config.parse(
        f"""
models:
  - name: {model_name}
    label_column: y
    slice_columns: [{slice_column}]
    training_data: {{path: unused.csv}}
    review_queue_max_age_hours: 6
alerts:
  psi: 0.2{alert_lines}
""",
        "aggregation-test.yaml",
    )


def register_profiled(conn, settings: config.Settings, model_name: str, slice_column: str, seed: int = 0):
    """Train a two-feature model on 2,000 rows and register it with metrics and its reference profile."""
    import numpy as np
    import pandas as pd

    from feedback_loop.retrain import training

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 2))
    frame = pd.DataFrame(
        {
            "f0": x[:, 0],
            "f1": x[:, 1],
            slice_column: np.where(rng.random(2000) < 0.5, "north", "south"),
            "y": np.where(x[:, 0] + 0.3 * rng.normal(size=2000) > 0, "b", "a"),
        }
    )
    trained = training.train(settings.model(model_name), frame)
    return registry.register(
        conn,
        model_name,
        trained.estimator,
        created_by="test",
        metrics=trained.metrics,
        reference_profile=trained.reference_profile,
        classes=trained.classes,
        feature_columns=trained.spec.features,
    )


@dataclass
class Event:
    at: datetime
    kind: str  # prediction | feedback | review | answer
    data: dict[str, Any] = field(default_factory=dict)


def event_stream(
    model_name: str,
    versions: list[int],
    hours: int,
    slice_column: str,
    *,
    per_hour: int = 15,
    seed: int = 1,
    shift: dict[str, float] | None = None,
    estimator: Any = None,
    start: datetime = T0,
    happy: bool = False,
) -> list[Event]:
    """Predictions with feedback of every kind, review items answered hours later or never, in time order.

    With `estimator`, labels and confidences are the model's own (so confidence matches its reference
    profile); otherwise a cheap stand-in. `happy` users mostly approve and reviewers mostly confirm, so
    no alert but drift fires.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    shift = shift or {}
    events: list[Event] = []
    for hour in range(hours):
        base = start + hour * HOUR
        for version in versions:
            for _ in range(per_hour):
                at = base + timedelta(seconds=int(rng.integers(0, 3000)))
                trace = uuid.UUID(bytes=rng.bytes(16), version=4)
                f0 = float(rng.normal()) + shift.get("f0", 0.0)
                f1 = float(rng.normal()) + shift.get("f1", 0.0)
                label = "b" if f0 > 0 else "a"
                confidence = float(np.clip(0.5 + abs(f0) / 4, 0.5, 0.99))
                events.append(
                    Event(
                        at,
                        "prediction",
                        {
                            "trace_id": trace,
                            "model_name": model_name,
                            "model_version": version,
                            "input": {"f0": f0, "f1": f1},
                            "output_label": label,
                            "confidence": confidence,
                            "slice": {slice_column: "north" if rng.random() < 0.5 else "south"},
                        },
                    )
                )
                roll = rng.random()
                if happy:  # push the draw into the thumbs-up band most of the time
                    roll = roll * 0.15 if rng.random() < 0.9 else roll
                later = at + timedelta(seconds=int(rng.integers(1, 500)))
                common = {"trace_id": trace, "model_name": model_name, "model_version": version}
                if roll < 0.15:
                    events.append(Event(later, "feedback", {**common, "kind": "thumbs_up"}))
                elif roll < 0.3:
                    events.append(Event(later, "feedback", {**common, "kind": "thumbs_down"}))
                elif roll < 0.45:
                    rating = int(rng.integers(1, 6))
                    events.append(Event(later, "feedback", {**common, "kind": "rating", "rating": rating}))
                elif roll < 0.55:
                    wrong = "a" if label == "b" else "b"
                    events.append(Event(later, "feedback", {**common, "kind": "correction", "label": wrong}))
                elif roll < 0.6:
                    events.append(Event(later, "feedback", {**common, "kind": "comment", "comment": "meh"}))
                elif roll < 0.65:
                    signal = "accepted" if rng.random() < 0.5 else "abandoned"
                    events.append(Event(later, "feedback", {**common, "kind": "implicit", "signal": signal}))
                if rng.random() < 0.3:
                    key = uuid.uuid4().hex
                    events.append(Event(at, "review", {**common, "key": key}))
                    if rng.random() < 0.8:
                        answered = at + timedelta(seconds=int(rng.integers(60, 4 * 3600)))
                        right = 0.97 if happy else 0.7
                        truth = label if rng.random() < right else ("a" if label == "b" else "b")
                        kind = "thumbs_up" if truth == label else "correction"
                        events.append(
                            Event(answered, "answer", {**common, "key": key, "label": truth, "kind": kind})
                        )
    if estimator is not None:
        import pandas as pd

        scored = [e for e in events if e.kind == "prediction"]
        frame = pd.DataFrame([e.data["input"] for e in scored])
        probabilities = estimator.predict_proba(frame)
        for event, row in zip(scored, probabilities, strict=True):
            event.data["confidence"] = float(row.max())
            event.data["output_label"] = str(estimator.classes_[row.argmax()])
    events.sort(key=lambda e: (e.at, e.kind, str(e.data.get("trace_id"))))
    return events


class Replayer:
    """Writes events into the database in time order, keeping the review-item ids it created."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.review_ids: dict[str, tuple[int, datetime]] = {}
        self.position = 0

    def until(self, events: list[Event], end: datetime) -> None:
        while self.position < len(events) and events[self.position].at < end:
            self.apply(events[self.position])
            self.position += 1
        self.conn.commit()

    def apply(self, event: Event) -> None:
        d = event.data
        if event.kind == "prediction":
            self.conn.execute(
                """
                INSERT INTO predictions (trace_id, model_name, model_version, input, output_label, confidence,
                    slice, created_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                """,
                (
                    d["trace_id"],
                    d["model_name"],
                    d["model_version"],
                    json.dumps(d["input"]),
                    d["output_label"],
                    d["confidence"],
                    json.dumps(d["slice"]),
                    event.at,
                ),
            )
        elif event.kind == "feedback":
            self.insert_feedback(event.at, d, source="api")
        elif event.kind == "review":
            row = self.conn.execute(
                """
                INSERT INTO review_items (trace_id, model_name, model_version, reason, created_at)
                VALUES (%s, %s, %s, 'low_confidence', %s) RETURNING id
                """,
                (d["trace_id"], d["model_name"], d["model_version"], event.at),
            ).fetchone()
            self.review_ids[d["key"]] = (int(row["id"]), event.at)
        elif event.kind == "answer":
            item_id, created = self.review_ids[d["key"]]
            self.conn.execute(
                "UPDATE review_items SET status = 'answered', answered_at = %s WHERE id = %s",
                (event.at, item_id),
            )
            self.insert_feedback(
                event.at,
                {**d, "review_item_id": item_id, "latency_seconds": (event.at - created).total_seconds()},
                source="review",
            )

    def insert_feedback(self, at: datetime, d: dict[str, Any], source: str) -> None:
        self.conn.execute(
            """
            INSERT INTO feedback (trace_id, model_name, model_version, kind, rating, label, signal, comment,
                source, review_item_id, latency_seconds, created_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                d["trace_id"],
                d["model_name"],
                d["model_version"],
                d["kind"],
                d.get("rating"),
                d.get("label"),
                d.get("signal"),
                d.get("comment"),
                source,
                d.get("review_item_id"),
                d.get("latency_seconds"),
                at,
            ),
        )


def rollup_values(conn, model_name: str) -> list[tuple]:
    """Every stored rollup of a model without computed_at, in key order (what reruns must reproduce)."""
    from feedback_loop.monitoring.aggregation import ROLLUP_VALUE_COLUMNS

    rows = conn.execute(
        f"SELECT {', '.join(ROLLUP_VALUE_COLUMNS)} FROM feedback_rollups WHERE model_name = %s "  # noqa: S608
        "ORDER BY model_version, interval_start, interval_end",
        (model_name,),
    ).fetchall()
    return [tuple(json.dumps(r[c], sort_keys=True, default=str) for c in ROLLUP_VALUE_COLUMNS) for r in rows]
