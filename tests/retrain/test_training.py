import numpy as np
import pandas as pd
import pytest

from feedback_loop.core import config
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.retrain import datasets, training
from feedback_loop.retrain.features import feature_spec

pytestmark = pytest.mark.unit

MIXED = config.parse(
    """
models:
  - name: mixed
    label_column: y
    slice_columns: [region]
    training_data: {path: unused.csv}
    seed: 7
""",
    "t.yaml",
).model("mixed")


def mixed_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green"], size=n)
    frame = pd.DataFrame(
        {
            "x": x,
            "colour": colour,
            "region": rng.choice(["north", "south"], size=n),
            "y": np.where(x + (colour == "red") > 0.5, "yes", "no"),
        }
    )
    frame.loc[::17, "x"] = np.nan  # missing values must be imputed, not crash training
    return frame


def test_feature_spec_excludes_label_and_slices_and_detects_categoricals():
    spec = feature_spec(MIXED, mixed_frame())
    assert spec.features == ["x", "colour"]
    assert spec.categorical == ["colour"]
    assert spec.numeric == ["x"]


def test_training_is_deterministic_and_reports_slice_metrics():
    first = training.train(MIXED, mixed_frame())
    second = training.train(MIXED, mixed_frame())
    assert first.metrics == second.metrics
    assert first.metrics["accuracy"] > 0.8
    assert set(first.metrics["slices"]["region"]) == {"north", "south"}
    assert first.classes == ["no", "yes"]


def test_reference_profile_has_bins_for_numeric_and_shares_for_categorical():
    trained = training.train(MIXED, mixed_frame())
    features = trained.reference_profile["features"]
    assert features["colour"]["type"] == "categorical"
    assert sum(features["colour"]["shares"].values()) == pytest.approx(1.0)
    assert sum(features["x"]["shares"]) == pytest.approx(1.0)
    assert len(features["x"]["shares"]) == len(features["x"]["edges"]) + 1
    assert trained.reference_profile["confidence"]["type"] == "numeric"


def test_single_class_label_is_refused_with_a_clear_message():
    frame = mixed_frame().assign(y="yes")
    with pytest.raises(InvalidInputError, match="has 1 class"):
        training.train(MIXED, frame)


def test_digits_bundle_and_stratified_limit():
    frame = datasets.digits()
    assert frame.shape == (1797, 66)
    small = datasets.stratified_head(frame, "label", 100, seed=1)
    assert len(small) == 100
    assert small["label"].nunique() == 10


def test_the_served_model_learns_from_the_holdout_the_metrics_come_from_the_recipe_without_it():
    frame = mixed_frame()
    trained = training.train(MIXED, frame)
    spec = trained.spec
    train_part, holdout = train_test_split_like_training(frame)
    without = training.fit(MIXED, train_part, spec)
    # Metrics and the stored holdout predictions are those of the recipe fitted without the holdout ...
    assert trained.metrics["accuracy"] == pytest.approx(training.evaluate(without, holdout, spec)["accuracy"])
    assert trained.holdout_predictions["predicted"] == [
        str(p) for p in without.predict(holdout[spec.features])
    ]
    assert trained.holdout_predictions["rows_sha256"] == training.rows_sha256(holdout)
    # ... and the served estimator is that recipe refitted on every row.
    everything = training.fit(MIXED, frame, spec)
    coefficients = trained.estimator.named_steps["classifier"].coef_
    assert trained.metrics["train_rows"] == len(frame)
    assert np.allclose(coefficients, everything.named_steps["classifier"].coef_)
    assert not np.allclose(coefficients, without.named_steps["classifier"].coef_)


def train_test_split_like_training(frame: pd.DataFrame):
    from sklearn.model_selection import train_test_split

    return train_test_split(frame, test_size=0.25, random_state=MIXED.seed, stratify=frame["y"])


def test_a_factory_that_returns_no_estimator_is_a_config_error_naming_it():
    import pandas as pd

    from feedback_loop.core import config
    from feedback_loop.core.errors import ConfigError

    model = config.parse(
        "models:\n  - {name: t, label_column: y, training_data: {path: x.csv}, "
        "estimator: 'tests.support.artifacts:not_an_estimator'}",
        "t.yaml",
    ).model("t")
    frame = pd.DataFrame({"f0": [0.0, 1.0, 2.0, 3.0], "y": ["a", "b", "a", "b"]})
    with pytest.raises(
        ConfigError, match=r"model 't': estimator '.*not_an_estimator' returned a str, not a scikit-learn"
    ):
        training.fit(model, frame)
