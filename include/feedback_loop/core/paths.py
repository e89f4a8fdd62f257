"""Where the project keeps local state (throwaway PostgreSQL, model artifacts, demo output)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # include/feedback_loop (this file is in core/)
ENV_CONFIG = "FEEDBACK_LOOP_CONFIG"


@functools.cache  # fixed for the life of a process; the API asks on every request (via the config path)
def project_root() -> Path | None:
    """The source checkout this package runs from, when it runs from one (editable install)."""
    candidate = PACKAGE_DIR.parents[1]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def shipped_config_path() -> Path:
    """The commented example configuration shipped with the package (never FEEDBACK_LOOP_CONFIG)."""
    root = project_root()
    if root is not None:
        return root / "config" / "feedback_loop.yaml"
    return PACKAGE_DIR / "config" / "feedback_loop.yaml"


def config_path() -> Path:
    """FEEDBACK_LOOP_CONFIG, else the shipped example (here so that reading it needs no pydantic)."""
    return _config_path(os.environ.get(ENV_CONFIG))


@functools.lru_cache(maxsize=8)  # the API asks on every request: building the Path was ~3 % of an event
def _config_path(configured: str | None) -> Path:
    return Path(configured) if configured else shipped_config_path()


def state_tag() -> str:
    """A short name of this state folder, for what it keeps outside it (a metadata database, Redis keys):
    two checkouts, or a test session and `make up`, sharing a server never meet each other's."""
    import hashlib

    return hashlib.sha256(str(state_dir().resolve()).encode()).hexdigest()[:8]


def state_dir() -> Path:
    """`.local/` in the checkout, or FEEDBACK_LOOP_STATE_DIR, or ~/.local/share/feedback-loop."""
    configured = os.environ.get("FEEDBACK_LOOP_STATE_DIR")
    if configured:
        path = Path(configured)
    elif (root := project_root()) is not None:
        path = root / ".local"
    else:
        path = Path.home() / ".local" / "share" / "feedback-loop"
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact_dir() -> Path:
    """Where model artifacts are written; shared storage in a distributed deployment."""
    configured = os.environ.get("FEEDBACK_LOOP_ARTIFACT_DIR")
    path = Path(configured) if configured else state_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sql_dir() -> Path:
    """The sql/ folder: in the checkout, or shipped inside the package when installed from a wheel."""
    root = project_root()
    if root is not None and (root / "sql").is_dir():
        return root / "sql"
    return PACKAGE_DIR / "sql"
