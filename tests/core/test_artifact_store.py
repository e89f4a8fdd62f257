"""Model artifacts in a folder or an object store, through universal-pathlib outside Airflow and through
Airflow's ObjectStoragePath inside it (the factory `adapters.airflow_artifacts` installs); the registry
verifies the sha256 on every read whichever store holds the bytes."""

from __future__ import annotations

import uuid

import pytest
from sklearn.dummy import DummyClassifier

from feedback_loop.adapters import airflow_artifacts
from feedback_loop.core import artifact_store
from feedback_loop.core.errors import IntegrityError
from feedback_loop.registry import versions as registry

pytestmark = pytest.mark.integration


@pytest.fixture(params=["upath", "airflow"])
def path_class(request):
    """Both factories: the default one (CLI, simulator) and Airflow's ObjectStoragePath (DAG tasks)."""
    if request.param == "airflow":
        airflow_artifacts.install()
    yield request.param
    artifact_store.use_path_class(None)


def estimator():
    return DummyClassifier(strategy="most_frequent").fit([[0.0], [1.0], [1.0]], ["0", "1", "1"])


def test_a_folder_is_stored_as_its_file_url_and_written_whole(tmp_path, path_class):
    url = artifact_store.location("m", 3, tmp_path / "models")
    assert url == (tmp_path / "models").resolve().as_uri() + "/m/v3.skops"
    artifact_store.write_bytes(url, b"first")
    artifact_store.write_bytes(url, b"second")  # replaced through a temporary sibling and a rename
    assert artifact_store.read_bytes(url) == b"second"
    assert artifact_store.local_path(url).read_bytes() == b"second"
    assert [p.name for p in (tmp_path / "models" / "m").iterdir()] == ["v3.skops"]
    with pytest.raises(FileNotFoundError):
        artifact_store.read_bytes(url.replace("v3", "v4"))


def test_the_environment_may_name_an_object_store(monkeypatch, path_class):
    monkeypatch.setenv(artifact_store.ENV_ARTIFACT_DIR, "memory://artifacts/models/")
    assert artifact_store.location("digits", 2) == "memory://artifacts/models/digits/v2.skops"


def test_the_registry_round_trips_through_an_object_store_and_verifies_the_checksum(conn, path_class):
    root = f"memory://fl-{uuid.uuid4().hex[:8]}/models"
    entry = registry.register(conn, "store_test", estimator(), created_by="test", artifact_root=root)
    conn.commit()
    assert entry.artifact_uri == f"{root}/store_test/v1.skops"
    loaded, serving = registry.load(conn, "store_test", 1)
    assert list(loaded.predict([[0.0]])) == ["1"] and serving.sha256 == entry.sha256

    # Bytes changed behind the registry's back are refused, as for a local file.
    stored = artifact_store.read_bytes(entry.artifact_uri)
    artifact_store.write_bytes(entry.artifact_uri, stored + b"\0")
    with pytest.raises(IntegrityError, match="store_test v1: artifact checksum mismatch"):
        registry.load(conn, "store_test", 1)
    artifact_store.path(entry.artifact_uri).unlink()
    with pytest.raises(IntegrityError, match=f"store_test v1: artifact {entry.artifact_uri} is missing"):
        registry.load(conn, "store_test", 1)


def test_inside_airflow_paths_are_object_storage_paths():
    from airflow.sdk import ObjectStoragePath

    airflow_artifacts.install()
    try:
        made = artifact_store.path("file:///tmp/models/m/v1.skops")
        assert isinstance(made, ObjectStoragePath) and made.protocol == "file"
    finally:
        artifact_store.use_path_class(None)
