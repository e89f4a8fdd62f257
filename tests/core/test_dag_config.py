"""The parse-time digest of the config: the same keys as config.load(), cached per file version, and a
broken file fails every parse exactly as config.load() says."""

import subprocess
import sys
from pathlib import Path

import pytest

from feedback_loop.core import config, dag_config
from feedback_loop.core.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

TWO_MODELS = """
models:
  - name: churn
    label_column: churned
    training_data: {path: data/churn.csv}
    schedules: {inference: "*/5 * * * *"}
  - name: fraud
    label_column: is_fraud
    training_data: {query: "SELECT * FROM fraud_labels"}
    confidence_threshold: 0.9
    review_budget: 7
    gate: {auto_rollback_accuracy_drop: 0.05}
    schedules: {aggregation: null, retraining: "@daily"}
"""


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    path = tmp_path / "state"
    monkeypatch.setenv("FEEDBACK_LOOP_STATE_DIR", str(path))
    dag_config._load.cache_clear()
    yield path
    dag_config._load.cache_clear()


def test_the_digest_carries_what_config_load_says(tmp_path, state_dir):
    path = tmp_path / "models.yaml"
    path.write_text(TWO_MODELS, encoding="utf-8")
    digest = dag_config.models(path)
    for model, full in zip(digest, config.load(path).models, strict=True):
        assert model.name == full.name
        assert model.confidence_threshold == full.confidence_threshold
        assert model.review_budget == full.review_budget
        assert model.auto_rollback_accuracy_drop == full.gate.auto_rollback_accuracy_drop
        for kind in ("inference", "aggregation", "retraining"):
            assert getattr(model.schedules, kind) == getattr(full.schedules, kind)
    assert len(list((state_dir / "cache").glob("dag-config-*.json"))) == 1


def test_a_cached_digest_is_read_without_pydantic_and_a_changed_file_is_validated_again(tmp_path, state_dir):
    path = tmp_path / "models.yaml"
    path.write_text(TWO_MODELS, encoding="utf-8")
    dag_config.models(path)  # validated and cached
    probe = (
        "import sys\n"
        "from feedback_loop.core import dag_config\n"
        f"names = [m.name for m in dag_config.models({str(path)!r})]\n"
        "print(names, 'pydantic' in sys.modules)\n"
    )
    env_run = dict(capture_output=True, text=True, check=True, timeout=60)
    cached = subprocess.run([sys.executable, "-c", probe], **env_run)
    assert cached.stdout.strip() == "['churn', 'fraud'] False"

    path.write_text(TWO_MODELS.replace("name: fraud", "name: spam"), encoding="utf-8")
    changed = subprocess.run([sys.executable, "-c", probe], **env_run)
    assert changed.stdout.strip() == "['churn', 'spam'] True"


def test_a_broken_file_fails_every_time_with_config_loads_words_and_is_not_cached(tmp_path, state_dir):
    path = tmp_path / "models.yaml"
    path.write_text(
        TWO_MODELS.replace("confidence_threshold: 0.9", "confidence_threshold: 2"), encoding="utf-8"
    )
    for _ in range(2):
        with pytest.raises(ConfigError) as caught:
            dag_config.models(path)
        with pytest.raises(ConfigError) as expected:
            config.load(path)
        assert str(caught.value) == str(expected.value)
        assert "models[1].confidence_threshold" in str(caught.value)
    assert not list((state_dir / "cache").glob("dag-config-*.json"))


def test_a_missing_file_is_the_same_config_error(tmp_path, state_dir):  # noqa: ARG001
    with pytest.raises(ConfigError, match="configuration file not found"):
        dag_config.models(tmp_path / "nowhere.yaml")


def test_a_corrupt_cache_file_is_ignored(tmp_path, state_dir):
    path = tmp_path / "models.yaml"
    path.write_text(TWO_MODELS, encoding="utf-8")
    dag_config.models(path)
    for cache in (state_dir / "cache").glob("dag-config-*.json"):
        cache.write_text('{"key": "', encoding="utf-8")
    dag_config._load.cache_clear()
    assert [m.name for m in dag_config.models(path)] == ["churn", "fraud"]


def test_the_default_path_is_config_default_path(monkeypatch, tmp_path, state_dir):  # noqa: ARG001
    monkeypatch.setenv(config.ENV_CONFIG, str(ROOT / "config" / "feedback_loop.yaml"))
    assert [m.name for m in dag_config.models()] == [m.name for m in config.load().models]
