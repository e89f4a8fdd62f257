"""Train a model on its configured base data and register it: the first version of a model."""

from __future__ import annotations

from typing import Any

import psycopg

from feedback_loop.core.config import ModelConfig
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import datasets, training


def data_snapshot(frame: Any, model: ModelConfig, source: str) -> dict[str, Any]:
    """Row counts and a hash of the rows, enough to tell later what a version was trained on."""
    return {
        "source": source,
        "rows": int(len(frame)),
        "base_rows": int(len(frame)),
        "feedback_rows": 0,
        "class_counts": {str(k): int(v) for k, v in frame[model.label_column].value_counts().items()},
        "rows_sha256": training.rows_sha256(frame),
    }


def train_and_register(
    conn: psycopg.Connection, model: ModelConfig, *, created_by: str, promote: bool, reason: str = ""
) -> registry.ModelVersion:
    frame = datasets.load_training_data(model, conn)
    trained = training.train(model, frame)
    source = model.training_data.bundled or model.training_data.path or "query"
    version = registry.register(
        conn,
        model.name,
        trained.estimator,
        created_by=created_by,
        metrics=trained.metrics,
        data_snapshot=data_snapshot(frame, model, f"base:{source}"),
        reference_profile=trained.reference_profile,
        holdout_predictions=trained.holdout_predictions,
        classes=trained.classes,
        feature_columns=trained.spec.features,
        note=reason or "trained on the configured base data",
    )
    if promote:
        registry.promote(
            conn,
            model.name,
            version.version,
            actor=created_by,
            reason=reason or "first version trained on base data",
        )
    return version
