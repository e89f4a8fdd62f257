"""What the DAG files read from the configuration when they are parsed, without importing pydantic.

Every DAG file needs a few keys of the config to build its structure (model names for the trigger form,
the cron schedules, whether any model enables automatic rollback). Validating the file with the pydantic
models of `config` costs ~100 ms per parse (building the model classes, then YAML and validation), and a
dag-processor child pays it for every file. So the digest of a file that validated is kept in a small JSON
file under the state dir, keyed by the sha256 of the config's bytes and of the code that validates it:
the next parse reads that JSON instead. A file that changed, or new validation code, misses the cache and
is validated in full again; a file that fails validation is never cached, so it fails every parse with the
file, the key and the reason as `config.load()` words it. Tasks still read `config.load()` at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from feedback_loop.core import paths

CACHE_FORMAT = 1
# The code whose output the digest depends on: a change to any of them invalidates every cached digest.
_VALIDATING_CODE = ("config.py", "schedules.py", "dag_config.py")


@dataclass(frozen=True)
class ScheduleDigest:
    inference: str | None
    aggregation: str | None
    retraining: str | None


@dataclass(frozen=True)
class ModelDigest:
    """One configured model as far as DAG structure goes (shaped like config.ModelConfig for those keys)."""

    name: str
    confidence_threshold: float
    review_budget: int
    schedules: ScheduleDigest
    auto_rollback_accuracy_drop: float | None


def _digest(settings: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": m.name,
            "confidence_threshold": m.confidence_threshold,
            "review_budget": m.review_budget,
            "schedules": {
                "inference": m.schedules.inference,
                "aggregation": m.schedules.aggregation,
                "retraining": m.schedules.retraining,
            },
            "auto_rollback_accuracy_drop": m.gate.auto_rollback_accuracy_drop,
        }
        for m in settings.models
    ]


def _models(rows: list[dict[str, Any]]) -> tuple[ModelDigest, ...]:
    return tuple(
        ModelDigest(**{**row, "schedules": ScheduleDigest(**row["schedules"])})  # type: ignore[arg-type]
        for row in rows
    )


@lru_cache(maxsize=1)
def _code_fingerprint() -> bytes:
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{sys.version_info[:2]}".encode())
    here = Path(__file__).resolve().parent
    for name in _VALIDATING_CODE:
        digest.update((here / name).read_bytes())
    return digest.digest()


def _cache_file(target: Path) -> Path:
    name = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    return paths.state_dir() / "cache" / f"dag-config-{name}.json"


def _read_cache(cache: Path, key: str) -> tuple[ModelDigest, ...] | None:
    try:
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored.get("key") != key:
            return None
        return _models(stored["models"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written by an older version or edited by hand: validate again


def _write_cache(cache: Path, key: str, rows: list[dict[str, Any]]) -> None:
    """Best effort: a read-only state dir only means the next parse validates again."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=cache.parent, prefix=".dag-config-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"key": key, "models": rows}, handle)
        os.replace(temporary, cache)
    except OSError:
        pass


def _key(data: bytes) -> str:
    return hashlib.sha256(_code_fingerprint() + data).hexdigest()


@lru_cache(maxsize=8)
def _load(target: str, key: str) -> tuple[ModelDigest, ...]:
    try:
        cache: Path | None = _cache_file(Path(target))
    except OSError:
        cache = None  # no usable state dir: validate on every parse, as before the cache existed
    found = _read_cache(cache, key) if cache else None
    if found is not None:
        return found
    from feedback_loop.core import config  # pydantic: only when this version of the file was not seen yet

    rows = _digest(config.load(target))  # raises ConfigError naming the file, the key and the reason
    try:
        unchanged = _key(Path(target).read_bytes()) == key
    except OSError:
        unchanged = False
    if cache and unchanged:  # the file validated is the file the key was computed from
        _write_cache(cache, key, rows)
    return _models(rows)


def models(path: Path | str | None = None) -> tuple[ModelDigest, ...]:
    """The configured models' parse-time keys; ConfigError (as `config.load()` raises it) when the file is
    missing or invalid."""
    target = Path(path) if path else paths.config_path()
    try:
        data = target.read_bytes()
    except OSError:
        # Missing or unreadable: let config.load() word the error exactly as it always has.
        from feedback_loop.core import config

        config.load(target)
        raise  # not reached: load() raises for a file that cannot be read
    return _load(str(target), _key(data))
