"""Small builders shared by integration tests (not fixtures: plain functions)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from feedback_loop.core import config, db, store
from feedback_loop.registry import versions as registry

CONFIG = config.parse(
    """
models:
  - name: toy
    label_column: y
    training_data: {path: unused.csv}
""",
    "toy.yaml",
)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`feedback-loop ARGS` in a fresh process, as a user types it (exit code and stderr are the contract)."""
    return subprocess.run(
        [sys.executable, "-m", "feedback_loop.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )


def toy_estimator(seed: int = 0, flip: bool = False):
    import numpy as np
    import pandas as pd

    from feedback_loop.retrain import training

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 2))
    y = np.where(x[:, 0] > 0, "b", "a")
    if flip:
        y = np.where(y == "a", "b", "a")
    frame = pd.DataFrame({"f0": x[:, 0], "f1": x[:, 1], "y": y})
    return training.fit(CONFIG.model("toy"), frame)


def register_toy(conn, model_name: str = "toy", **kwargs) -> registry.ModelVersion:
    return registry.register(conn, model_name, toy_estimator(), created_by="test", **kwargs)


def make_predictions(conn, model_name: str, version: int, n: int, confidence: float = 0.9) -> list[uuid.UUID]:
    traces = [uuid.uuid4() for _ in range(n)]
    store.log_predictions(
        conn,
        (
            store.Prediction(
                trace_id=t,
                model_name=model_name,
                model_version=version,
                input={"f0": i, "f1": -i},
                output_label="a",
                confidence=confidence,
                probabilities={"a": confidence, "b": 1 - confidence},
                slice={"region": "north" if i % 2 else "south"},
            )
            for i, t in enumerate(traces)
        ),
    )
    return traces


@contextmanager
def running_stack(db_url: str) -> Iterator:
    """`make up`'s Airflow (feedback_loop.lab.stack) for one test; stopped and its metadata DB dropped after."""
    from feedback_loop.lab import stack

    state = stack.up()
    try:
        yield state
    finally:
        stack.down(quiet=True, stop_database=False)
        db.drop_database(db_url, stack.metadata_database_name())
