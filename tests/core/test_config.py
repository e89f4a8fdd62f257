from pathlib import Path

import pytest

from feedback_loop.core import config
from feedback_loop.core.errors import ConfigError, NotFoundError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

VALID = """
models:
  - name: churn
    label_column: churned
    training_data: {path: data/churn.csv}
  - name: fraud
    label_column: is_fraud
    feature_columns: [amount, country]
    training_data: {query: "SELECT * FROM fraud_labels"}
    confidence_threshold: 0.9
"""


def test_bundled_example_parses_and_describes_the_demo_model():
    settings = config.load(ROOT / "config" / "feedback_loop.yaml")
    digits = settings.model("digits")
    assert digits.training_data.bundled == "digits"
    assert digits.estimator == config.DEFAULT_ESTIMATOR
    assert 0 < digits.confidence_threshold <= 1


def test_several_models_with_defaults_and_overrides():
    settings = config.parse(VALID, "x.yaml")
    assert [m.name for m in settings.models] == ["churn", "fraud"]
    assert settings.model("churn").confidence_threshold == 0.8
    assert settings.model("fraud").confidence_threshold == 0.9
    assert settings.model("fraud").feature_columns == ["amount", "country"]


def test_unknown_model_names_the_configured_ones():
    settings = config.parse(VALID, "x.yaml")
    with pytest.raises(NotFoundError, match="configured models: churn, fraud"):
        settings.model("nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: []", r"x.yaml: .*at least one model"),
        (
            "models:\n  - {name: a, label_column: y, training_data: {}}",
            r"x.yaml: models\[0\].training_data: .*exactly one",
        ),
        (
            "models:\n  - {name: a, label_column: y, training_data: {path: f.csv}, confidence_threshold: 2}",
            r"models\[0\].confidence_threshold: Input should be less than or equal to 1",
        ),
        (
            "models:\n  - {name: 'bad name', label_column: y, training_data: {path: f}}",
            r"models\[0\].name: .*letters",
        ),
        (
            "models:\n  - {name: a, label_column: y, training_data: {path: f}, colour: red}",
            r"models\[0\].colour: Extra",
        ),
        (
            "models:\n  - {name: a, label_column: y, training_data: {path: f}, estimator: 'os.system'}",
            r"estimator: .*import path",
        ),
        ("models: [\n", r"x.yaml: not valid YAML"),
        ("- just a list", r"x.yaml: expected a mapping"),
        (
            "models:\n  - {name: a, label_column: y, training_data: {path: f}}\n  - {name: a, label_column: y, training_data: {path: f}}",
            r"repeated: a",
        ),
    ],
)
def test_errors_name_the_file_the_key_and_the_reason(text, expected):
    with pytest.raises(ConfigError, match=expected):
        config.parse(text, "x.yaml")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        config.load(tmp_path / "missing.yaml")


def test_estimator_factory_resolves_and_reports_bad_paths():
    settings = config.parse(VALID, "x.yaml")
    assert callable(settings.model("churn").estimator_factory())
    broken = settings.model("churn").model_copy(update={"estimator": "no_such_module:make"})
    with pytest.raises(ConfigError, match="cannot be imported"):
        broken.estimator_factory()
