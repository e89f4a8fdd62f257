"""Where model artifacts are stored: a local folder by default, or any object store fsspec knows.

`FEEDBACK_LOOP_ARTIFACT_DIR` is a folder (default `<state dir>/models`) or a URL: `file:///shared/models`,
`s3://bucket/models`, `gs://bucket/models`, ... Each artifact is `<root>/<model>/v<N>.skops`, recorded in
the registry by its URL (`file:///...` for a folder), so every worker that sees the same storage finds it.

Paths are pathlib-like objects made by one factory: outside Airflow (CLI, simulator, tests) universal-
pathlib's `UPath`, credentials from the environment as fsspec reads them; inside Airflow the adapters
install Airflow's `ObjectStoragePath` (`adapters.airflow_artifacts`), the same API on the same fsspec
file systems, which also takes credentials from an Airflow connection named in the URL
(`s3://aws_default@bucket/models`). This module never imports Airflow.

The checksum is not this module's business: the registry records the sha256 of the bytes it wrote and
verifies it on every read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from feedback_loop.core import paths

ENV_ARTIFACT_DIR = "FEEDBACK_LOOP_ARTIFACT_DIR"

_path_factory: Callable[[str], Any] | None = None


def use_path_class(factory: Callable[[str], Any] | None) -> None:
    """Make artifact paths with `factory(url)` (Airflow's ObjectStoragePath); None: back to UPath."""
    global _path_factory
    _path_factory = factory


def path(url: str) -> Any:
    """The pathlib-like object of an artifact URL (read_bytes, write_bytes, exists, parent, mkdir, ...)."""
    if _path_factory is not None:
        return _path_factory(url)
    from upath import UPath

    return UPath(url)


def is_url(location: str) -> bool:
    return "://" in location


def root(directory: str | Path | None = None) -> str:
    """The URL artifacts go under: `directory`, else FEEDBACK_LOOP_ARTIFACT_DIR, else the local default.
    A folder becomes its absolute `file://` URL (created if missing)."""
    location = str(directory) if directory is not None else os.environ.get(ENV_ARTIFACT_DIR, "").strip()
    if location and is_url(location):
        return location.rstrip("/")
    folder = Path(location) if location else paths.artifact_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve().as_uri()


def location(model_name: str, version: int, directory: str | Path | None = None) -> str:
    return f"{root(directory)}/{model_name}/v{version}.skops"


def local_path(url: str) -> Path | None:
    """The file of a `file://` URL; None for any other store."""
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def write_bytes(url: str, data: bytes) -> None:
    """Store data at url so that a reader sees either nothing or all of it: on a file system through a
    temporary sibling and a rename; an object store's single PUT is already all or nothing."""
    target = path(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    if local_path(url) is None:
        target.write_bytes(data)
        return
    temporary = path(f"{url}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        temporary.rename(target)  # on a local file system an os.rename: atomic, replaces target
    finally:
        if temporary.exists():
            temporary.unlink()


def read_bytes(url: str) -> bytes:
    """The stored bytes; FileNotFoundError when nothing is stored there."""
    return path(url).read_bytes()
