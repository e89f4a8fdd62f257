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


def with_display(display: str) -> str:
    return f"models:\n  - {{name: a, label_column: y, training_data: {{path: f}}, input_display: {display}}}"


IMAGE = "kind: image, width: 8, height: 8, columns: 'pixel_{i}', value_range: [0, 16]"


def test_input_display_is_a_table_unless_set_and_an_image_or_text_when_set():
    settings = config.parse(VALID, "x.yaml")
    assert settings.model("churn").input_display == config.TableDisplay()
    image = config.parse(with_display(f"{{{IMAGE}, invert: true}}"), "x.yaml").model("a").input_display
    assert isinstance(image, config.ImageDisplay) and image.invert and image.scale == 16
    assert image.column_names()[:2] == ["pixel_0", "pixel_1"] and len(image.column_names()) == 64
    listed = config.parse(
        with_display("{kind: image, width: 2, height: 1, columns: [b, a], value_range: [-1, 1]}"), "x.yaml"
    )
    assert listed.model("a").input_display.column_names() == ["b", "a"]
    text = config.parse(with_display("{kind: text, column: message}"), "x.yaml").model("a").input_display
    assert isinstance(text, config.TextDisplay) and (text.column, text.max_chars) == ("message", 2000)


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("{kind: video}", r"models\[0\].input_display: Input tag 'video' .* 'table', 'image', 'text'"),
        ("{width: 8}", r"models\[0\].input_display: Unable to extract tag using discriminator 'kind'"),
        (
            "{kind: image, columns: 'p{i}', value_range: [0, 1]}",
            r"models\[0\].input_display.width: Field required",
        ),
        (f"{{{IMAGE}, colour: red}}", r"models\[0\].input_display.colour: Extra inputs"),
        (
            "{kind: image, width: 8, height: 8, columns: px, value_range: [0, 1]}",
            r"input_display.columns: .*\{i\} exactly once",
        ),
        (
            "{kind: image, width: 2, height: 2, columns: [a, b, c], value_range: [0, 1]}",
            r"input_display: .*columns: 3 names given, .* = 4",
        ),
        (
            "{kind: image, width: 1, height: 2, columns: [a, a], value_range: [0, 1]}",
            r"input_display: .*columns: repeated names \['a'\]",
        ),
        (
            "{kind: image, width: 8, height: 8, columns: 'p{i}', value_range: [16, 0]}",
            r"input_display: .*value_range: low must be below high",
        ),
        (
            "{kind: image, width: 8, height: 8, columns: 'p{i}', value_range: [0]}",
            r"input_display.value_range",
        ),
        (f"{{{IMAGE}, scale: 0}}", r"input_display.scale: Input should be greater than or equal to 1"),
        (
            "{kind: image, width: 512, height: 8, columns: 'p{i}', value_range: [0, 1], scale: 8}",
            r"input_display: .*scale: .*4096 pixels",
        ),
        ("{kind: text}", r"models\[0\].input_display.column: Field required"),
        (
            "{kind: text, column: m, max_chars: 0}",
            r"input_display.max_chars: Input should be greater than or equal to 1",
        ),
    ],
)
def test_input_display_errors_name_the_key(display, expected):
    with pytest.raises(ConfigError, match=expected):
        config.parse(with_display(display), "x.yaml")


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        config.load(tmp_path / "missing.yaml")


def test_estimator_factory_resolves_and_reports_bad_paths():
    settings = config.parse(VALID, "x.yaml")
    assert callable(settings.model("churn").estimator_factory())
    broken = settings.model("churn").model_copy(update={"estimator": "no_such_module:make"})
    with pytest.raises(ConfigError, match="cannot be imported"):
        broken.estimator_factory()


# ---- hostile input (issue 14) ------------------------------------------------------------------------------


def test_a_config_file_that_is_not_utf8_is_one_config_error_naming_the_file(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"models:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"{path}: not UTF-8 text \(byte 0xe9 at offset 21\)"):
        config.load(path)


@pytest.mark.parametrize(
    ("estimator", "expected"),
    [
        ("os:system", r"estimator: 'os:system' comes from the Python standard library \(os\)"),
        ("subprocess:call", r"standard library \(subprocess\)"),
        ("builtins:eval", r"standard library \(builtins\)"),
        ("mypackage.models:_private", r"estimator: .*private"),
    ],
)
def test_an_estimator_must_not_name_the_standard_library(estimator, expected):
    text = f"models:\n  - {{name: a, label_column: y, training_data: {{path: f}}, estimator: '{estimator}'}}"
    with pytest.raises(ConfigError, match=expected):
        config.parse(text, "x.yaml")


def test_an_estimator_that_cannot_take_spec_and_seed_is_refused_when_resolved():
    text = "models:\n  - {name: a, label_column: y, training_data: {path: f}, estimator: 'sklearn.datasets:load_digits'}"
    model = config.parse(text, "x.yaml").model("a")
    with pytest.raises(ConfigError, match=r"estimator 'sklearn.datasets:load_digits' cannot be called as"):
        model.estimator_factory()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("DROP TABLE feedback", "must be a single SELECT or WITH statement, got DROP"),
        ("SELECT 1 AS y; DROP TABLE feedback", "one statement only"),
        ("WITH gone AS (DELETE FROM feedback RETURNING id) SELECT id AS y FROM gone", "DELETE writes"),
        (
            "WITH x AS (INSERT INTO notifications DEFAULT VALUES RETURNING 1 AS y) SELECT y FROM x",
            "INSERT writes",
        ),
        ("SELECT * INTO copy_of_feedback FROM feedback", "INTO writes"),
        ("SELECT id AS y FROM feedback FOR UPDATE", "UPDATE writes"),
    ],
)
def test_a_configured_query_must_be_one_read_only_statement(query, expected):
    text = f'models:\n  - {{name: a, label_column: y, training_data: {{query: "{query}"}}}}'
    with pytest.raises(ConfigError, match=rf"x.yaml: models\[0\].training_data.query: .*{expected}"):
        config.parse(text, "x.yaml")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT g AS y FROM generate_series(1, 3) g;",
        "  -- base rows\n  with t as (select 1 as y) select * from t",
        "SELECT 'a; DROP TABLE feedback' AS y, \"delete\" AS z",
        "(SELECT 1 AS y) UNION ALL (SELECT 2)",
    ],
)
def test_read_only_queries_pass(query):
    text = "models:\n  - name: a\n    label_column: y\n    training_data:\n      query: |\n"
    text += "".join(f"        {line}\n" for line in query.splitlines())
    assert config.parse(text, "x.yaml").model("a").training_data.query.strip().startswith(query.strip()[:5])
