"""Airflow adapter: model artifacts go through Airflow's object storage (`ObjectStoragePath`).

`install()` (run by every DAG file through `airflow_dags`) makes `core.artifact_store` build its paths
with ObjectStoragePath, so FEEDBACK_LOOP_ARTIFACT_DIR may name an Airflow connection for the store's
credentials, e.g. `s3://aws_default@bucket/models`; a plain folder stays a local `file://` path.
"""

from __future__ import annotations

from typing import Any

from feedback_loop.core import artifact_store


def object_storage_path(url: str) -> Any:
    # Imported on first use, not when a DAG file is parsed: parsing never touches an artifact.
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


def install() -> None:
    artifact_store.use_path_class(object_storage_path)
