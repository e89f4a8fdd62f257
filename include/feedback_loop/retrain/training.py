"""Default estimator, training and the metrics every model version carries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from feedback_loop.core.errors import ConfigError, InvalidInputError
from feedback_loop.retrain.features import FeatureSpec, feature_spec

if TYPE_CHECKING:
    import pandas as pd

    from feedback_loop.core.config import ModelConfig

PROFILE_BINS = 10
CALIBRATION_BINS = 10  # as in monitoring.aggregation

log = logging.getLogger(__name__)


def default_pipeline(spec: FeatureSpec, seed: int = 42) -> Any:
    """Impute, scale numeric and one-hot categorical columns, then logistic regression.

    Columns are listed explicitly (no make_column_selector) so the artifact loads with skops' default
    trusted types plus our short allow-list.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if spec.numeric:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, spec.numeric))
    if spec.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        transformers.append(("categorical", categorical, spec.categorical))
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers)),
            ("classifier", LogisticRegression(max_iter=2000, random_state=seed)),
        ]
    )


@dataclass
class TrainedModel:
    """A trained version: the served estimator, and what its recipe did on the holdout it never saw."""

    estimator: Any  # what is served: fitted on the training rows and the holdout rows
    spec: FeatureSpec
    classes: list[str]
    metrics: dict[str, Any]  # measured on the holdout by the same recipe fitted without those rows
    reference_profile: dict[str, Any] = field(default_factory=dict)
    # {"rows_sha256", "predicted"}: the recipe's predictions on the holdout, fitted without it; the gate
    # compares versions on these (registry column holdout_predictions).
    holdout_predictions: dict[str, Any] = field(default_factory=dict)


def check_labels(frame: pd.DataFrame, label: str) -> None:
    if label not in frame.columns:
        raise InvalidInputError(f"label column {label!r} not found in the data")
    classes = frame[label].dropna().unique()
    if len(classes) < 2:
        raise InvalidInputError(
            f"label column {label!r} has {len(classes)} class(es); a classifier needs at least two"
        )


def _weight_argument(estimator: Any, weights: Sequence[float]) -> dict[str, Any]:
    """How to hand sample weights to `estimator.fit`: to the last step of a Pipeline, else directly."""
    steps = getattr(estimator, "steps", None)
    if steps:
        return {f"{steps[-1][0]}__sample_weight": list(weights)}
    return {"sample_weight": list(weights)}


def _estimator(model: ModelConfig, made: Any) -> Any:
    """What the configured factory made, if it is a scikit-learn estimator that can be fitted and give
    probabilities; else a ConfigError naming the factory."""
    from sklearn.base import BaseEstimator

    if not isinstance(made, BaseEstimator) or not hasattr(made, "fit"):
        raise ConfigError(
            f"model {model.name!r}: estimator {model.estimator!r} returned a {type(made).__name__}, not a "
            "scikit-learn estimator"
        )
    return made


def fit(
    model: ModelConfig,
    frame: pd.DataFrame,
    spec: FeatureSpec | None = None,
    sample_weight: Sequence[float] | None = None,
) -> Any:
    """Fit the configured estimator on `frame` (features + label), deterministic for the model's seed.

    `sample_weight`: how much each row counts (labels people agree on count more than a single answer);
    an estimator whose fit takes no weights is fitted unweighted, with a warning."""
    check_labels(frame, model.label_column)
    spec = spec or feature_spec(model, frame)
    factory = model.estimator_factory()
    estimator = _estimator(model, factory(spec, model.seed))
    features, labels = frame[spec.features], frame[model.label_column].astype(str)
    if sample_weight is None or all(w == 1.0 for w in sample_weight):
        estimator.fit(features, labels)
        return estimator
    if len(sample_weight) != len(frame):
        raise InvalidInputError(f"sample_weight: {len(sample_weight)} weights for {len(frame)} rows")
    try:
        estimator.fit(features, labels, **_weight_argument(estimator, sample_weight))
    except TypeError as exc:
        log.warning("%s: the estimator takes no sample weights (%s); fitting unweighted", model.name, exc)
        estimator = _estimator(model, factory(spec, model.seed))
        estimator.fit(features, labels)
    return estimator


def evaluate(estimator: Any, frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    """Accuracy and macro F1 of `estimator` on `frame`, plus accuracy per slice value."""
    return metrics_of(frame, [str(p) for p in estimator.predict(frame[spec.features])], spec)


def metrics_of(frame: pd.DataFrame, predicted_labels: Sequence[str], spec: FeatureSpec) -> dict[str, Any]:
    """Accuracy and macro F1 of `predicted_labels` (one per row of `frame`), plus accuracy per slice value."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    truth = frame[spec.label].astype(str).to_numpy()
    predicted = np.asarray(predicted_labels, dtype=str)
    metrics: dict[str, Any] = {
        "rows": int(len(frame)),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "slices": {},
    }
    for column in spec.slices:
        if column not in frame.columns:
            continue
        per_value = {}
        for value, index in frame.groupby(column, dropna=False).groups.items():
            mask = frame.index.get_indexer(index)
            per_value[str(value)] = {
                "rows": int(len(mask)),
                "accuracy": float(accuracy_score(truth[mask], predicted[mask])),
            }
        metrics["slices"][column] = per_value
    return metrics


def calibration(estimator: Any, frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    """How often the model is right at each confidence, from a frame it was not trained on: an isotonic
    fit of right/wrong against confidence, read at the middle of ten bins of width 0.1. The aggregation
    turns the confidences of unlabelled predictions into an accuracy estimate with it (in the manner of
    CBPE)."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    confidence = estimator.predict_proba(frame[spec.features]).max(axis=1)
    right = estimator.predict(frame[spec.features]).astype(str) == frame[spec.label].astype(str).to_numpy()
    middles = (np.arange(CALIBRATION_BINS) + 0.5) / CALIBRATION_BINS
    if len(frame) < 2 or len(set(right)) < 2:
        return {"bins": CALIBRATION_BINS, "accuracy": [float(m) for m in middles], "rows": int(len(frame))}
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        confidence, right.astype(float)
    )
    return {
        "bins": CALIBRATION_BINS,
        "accuracy": [round(float(v), 6) for v in fitted.predict(middles)],
        "rows": int(len(frame)),
    }


def reference_profile(estimator: Any, frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    """Distributions at training time, the baseline the aggregation DAG measures drift against.

    Numeric features: decile edges and the share of rows per bin; categorical: share per value;
    confidence: the same binned shape over the model's top-class probability.
    """
    import numpy as np

    def binned(values: np.ndarray) -> dict[str, Any]:
        values = values[~np.isnan(values)]
        if values.size == 0:
            return {"type": "numeric", "edges": [], "shares": [], "sample": []}
        edges = np.unique(np.quantile(values, np.linspace(0, 1, PROFILE_BINS + 1)))
        inner = edges[1:-1]
        counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
        rng = np.random.default_rng(0)
        sample = rng.choice(values, size=min(500, values.size), replace=False)
        return {
            "type": "numeric",
            "edges": [float(e) for e in inner],
            "shares": [float(c) / values.size for c in counts],
            "sample": [float(v) for v in np.sort(sample)],
        }

    profile: dict[str, Any] = {"rows": int(len(frame)), "features": {}}
    for column in spec.features:
        series = frame[column]
        if column in spec.categorical:
            shares = series.astype(str).value_counts(normalize=True)
            profile["features"][column] = {"type": "categorical", "shares": shares.round(6).to_dict()}
        else:
            profile["features"][column] = binned(series.astype(float).to_numpy())
    confidence = estimator.predict_proba(frame[spec.features]).max(axis=1)
    profile["confidence"] = binned(np.asarray(confidence, dtype=float))
    return profile


def rows_sha256(frame: pd.DataFrame) -> str:
    """A hash of the rows' values (not their index): tells later whether two frames hold the same rows."""
    import hashlib

    import pandas as pd

    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()


def train(
    model: ModelConfig,
    frame: pd.DataFrame,
    *,
    holdout: pd.DataFrame | None = None,
    holdout_share: float = 0.25,
    sample_weight: Sequence[float] | None = None,
) -> TrainedModel:
    """Evaluate the recipe on a holdout, then serve it refitted on every row, holdout included.

    The recipe (the configured estimator on `frame`, or on all but a stratified `holdout_share` of it when
    no `holdout` is given) is fitted without the holdout rows and measured on them: metrics, calibration
    and the per-row predictions the gate compares versions on. The served estimator is the same recipe
    fitted on the training rows plus the holdout rows (weight 1, like base rows), as a cross-validated
    search refits on all the data: a fixed 25% of clean base rows that no model learns from would cost
    every version accuracy (docs/benchmarks.md, "Loop quality").
    """
    import pandas as pd
    from sklearn.model_selection import train_test_split

    check_labels(frame, model.label_column)
    spec = feature_spec(model, frame)
    if holdout is None and sample_weight is not None:
        raise InvalidInputError("sample_weight: give weights only with an explicit holdout")
    if holdout is None:
        counts = frame[model.label_column].value_counts()
        stratify = frame[model.label_column] if counts.min() >= 2 else None
        frame, holdout = train_test_split(
            frame, test_size=holdout_share, random_state=model.seed, stratify=stratify
        )
    measured = fit(model, frame, spec, sample_weight)
    metrics = evaluate(measured, holdout, spec)
    metrics["calibration"] = calibration(measured, holdout, spec)
    predicted = [str(p) for p in measured.predict(holdout[spec.features])]
    everything = pd.concat([frame, holdout], ignore_index=True)
    weights = None if sample_weight is None else [*sample_weight, *([1.0] * len(holdout))]
    estimator = fit(model, everything, spec, weights)
    metrics["train_rows"] = int(len(everything))
    metrics["measured_on"] = (
        f"{len(holdout)} holdout rows, by the recipe fitted on the other {len(frame)} rows; the served "
        "estimator is refitted with the holdout rows added"
    )
    return TrainedModel(
        estimator=estimator,
        spec=spec,
        classes=[str(c) for c in estimator.classes_],
        metrics=metrics,
        reference_profile=reference_profile(estimator, everything, spec),
        holdout_predictions={"rows_sha256": rows_sha256(holdout), "predicted": predicted},
    )
