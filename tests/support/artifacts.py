"""Hostile artifacts for registry tests: a flipped byte, classifiers that do not fit the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Flip one bit of one byte (the middle one by default): the file keeps its size and still unzips
    far enough to look like an artifact, but its checksum no longer matches."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def fitted(columns: list[str] | int, labels: list[str] | None = None, rows: int = 60) -> Any:
    """A logistic regression fitted on random data: on a DataFrame with `columns`, or on a bare array of
    `columns` features (no feature names); predicting `labels` (default a, b)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    labels = labels or ["a", "b"]
    rng = np.random.default_rng(0)
    width = columns if isinstance(columns, int) else len(columns)
    x = rng.normal(size=(rows, width))
    y = [labels[i % len(labels)] for i in range(rows)]
    data = x if isinstance(columns, int) else pd.DataFrame(x, columns=columns)
    return LogisticRegression(max_iter=500).fit(data, y)


def not_an_estimator(spec: Any, seed: int = 0) -> str:
    """An estimator factory (config `estimator: tests.support.artifacts:not_an_estimator`) that returns none."""
    return "rm -rf /"
