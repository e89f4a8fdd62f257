"""Model registry in PostgreSQL: versions with metrics and data snapshots, skops artifacts checked by
sha256, and an append-only alias history where promotion and rollback are single transactions.

No version becomes champion (promotion, rollback, automatic rollback, a retraining's promotion) without
`check_servable`: its artifact's checksum and trusted types, and `check_fit` (its columns and classes against
its record, the configured feature columns and the champion). `model register --artifact` runs `check_fit`
before anything is stored.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.types.json import Jsonb

from feedback_loop.core import artifact_store, config, db, queries
from feedback_loop.core.errors import (
    ConflictError,
    FeedbackLoopError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
)

log = logging.getLogger(__name__)

CHAMPION = "champion"
# Types skops does not trust by default that our pipelines legitimately contain. Anything else found in
# an artifact is refused: we never trust whatever list the file itself presents.
TRUSTED_EXTRA_TYPES = frozenset({"numpy.dtype"})


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    artifact_uri: str
    sha256: str
    format: str
    status: str
    classes: list[str]
    feature_columns: list[str]
    metrics: dict[str, Any]
    data_snapshot: dict[str, Any]
    reference_profile: dict[str, Any]
    # The recipe's predictions on the gate's holdout, fitted without it (see retrain.training.train).
    holdout_predictions: dict[str, Any]
    parent_version: int | None
    created_by: str
    note: str
    created_at: datetime

    @property
    def artifact_path(self) -> Path:
        """The local file of a `file://` artifact (for other stores, the URL's path part)."""
        return artifact_store.local_path(self.artifact_uri) or Path(unquote(urlsplit(self.artifact_uri).path))

    def summary(self) -> dict[str, Any]:
        """The fields people list and compare (no reference profile)."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "status": self.status,
            "accuracy": self.metrics.get("accuracy"),
            "train_rows": self.metrics.get("train_rows"),
            "sha256": self.sha256,
            "artifact_uri": self.artifact_uri,
            "parent_version": self.parent_version,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class AliasEvent:
    id: int
    model_name: str
    alias: str
    version: int
    previous_version: int | None
    action: str
    actor: str
    reason: str
    created_at: datetime


def _lock(conn: psycopg.Connection, scope: str, model_name: str) -> None:
    """Transaction-scoped lock per model and purpose, held until commit or rollback."""
    db.transaction_lock(conn, f"registry:{scope}:{model_name}")


_SKOPS_IMPORT = threading.Lock()


def _skops_io() -> ModuleType:
    """skops.io, imported without a flood of Airflow warnings.

    On import skops names scipy's ufuncs by calling getattr() on every loaded module. Where Airflow is
    loaded (every task, the API server) that reaches each of Airflow's deprecated-import shims, and each
    one warns: 1,160 log lines that say nothing about the model. Only those warnings are silenced."""
    if "skops.io" not in sys.modules:
        # One thread imports under the filter (catch_warnings swaps process-wide state); the others wait.
        with _SKOPS_IMPORT, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
            import skops.io  # noqa: F401 - imported here for the filter above
    # A real import, not sys.modules: it waits for a module another thread is still importing.
    import skops.io as sio

    return sio


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_artifact(
    estimator: Any, model_name: str, version: int, directory: str | Path | None = None
) -> tuple[str, str]:
    """Serialise with skops to <artifact root>/<model>/v<version>.skops (core.artifact_store: a folder or
    an object store), all or nothing; (its URL, the sha256 of the bytes written)."""
    data = _skops_io().dumps(estimator)
    url = artifact_store.location(model_name, version, directory)
    artifact_store.write_bytes(url, data)
    return url, hashlib.sha256(data).hexdigest()


def register(
    conn: psycopg.Connection,
    model_name: str,
    estimator: Any,
    *,
    created_by: str,
    metrics: dict[str, Any] | None = None,
    data_snapshot: dict[str, Any] | None = None,
    reference_profile: dict[str, Any] | None = None,
    holdout_predictions: dict[str, Any] | None = None,
    classes: list[str] | None = None,
    feature_columns: list[str] | None = None,
    parent_version: int | None = None,
    status: str = "registered",
    note: str = "",
    artifact_root: str | Path | None = None,
) -> ModelVersion:
    """Allocate the next version number, write the artifact and record it, in one transaction."""
    with conn.transaction():
        _lock(conn, "register", model_name)
        row = conn.execute(queries.sql("registry/next_version"), {"model_name": model_name}).fetchone()
        version = int(row["next"])
        url, sha256 = write_artifact(estimator, model_name, version, artifact_root)
        classes = classes if classes is not None else [str(c) for c in getattr(estimator, "classes_", [])]
        if feature_columns is None:
            feature_columns = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
        conn.execute(
            queries.sql("registry/insert_version"),
            {
                "model_name": model_name,
                "version": version,
                "artifact_uri": url,
                "sha256": sha256,
                "status": status,
                "classes": Jsonb(classes),
                "feature_columns": Jsonb(feature_columns),
                "metrics": Jsonb(metrics or {}),
                "data_snapshot": Jsonb(data_snapshot or {}),
                "reference_profile": Jsonb(reference_profile or {}),
                "holdout_predictions": Jsonb(holdout_predictions or {}),
                "parent_version": parent_version,
                "created_by": created_by,
                "note": note,
            },
        )
    log.info("registered %s v%s (%s) at %s", model_name, version, status, url)
    return get_version(conn, model_name, version)


def _version_from_row(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**{**row, "sha256": row["sha256"].strip()})


def get_version(conn: psycopg.Connection, model_name: str, version: int) -> ModelVersion:
    row = conn.execute(
        queries.sql("registry/version"), {"model_name": model_name, "version": version}
    ).fetchone()
    if row is None:
        _require_model(conn, model_name)
        raise NotFoundError(
            f"model {model_name!r} has no version {version} (see `feedback-loop model list --model {model_name}`)"
        )
    return _version_from_row(row)


def no_version(model_name: str) -> NotFoundError:
    """The error for a model without any version, saying how to make its first one."""
    return NotFoundError(
        f"unknown model {model_name!r}: no version has been registered; train and serve its first one with "
        f"`feedback-loop model register --model {model_name} --train --promote`"
    )


def _require_model(conn: psycopg.Connection, model_name: str) -> None:
    found = conn.execute(queries.sql("registry/model_exists"), {"model_name": model_name}).fetchone()
    if found is None:
        raise no_version(model_name)


def list_versions(conn: psycopg.Connection, model_name: str) -> list[ModelVersion]:
    rows = conn.execute(queries.sql("registry/versions"), {"model_name": model_name}).fetchall()
    if not rows:
        raise no_version(model_name)
    return [_version_from_row(r) for r in rows]


def model_names(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(queries.sql("registry/model_names")).fetchall()
    return [r["model_name"] for r in rows]


def current_version(conn: psycopg.Connection, model_name: str, alias: str = CHAMPION) -> int | None:
    row = conn.execute(
        queries.sql("registry/current_version"), {"model_name": model_name, "alias": alias}
    ).fetchone()
    return None if row is None else int(row["version"])


def champion(conn: psycopg.Connection, model_name: str) -> ModelVersion:
    version = current_version(conn, model_name)
    if version is None:
        _require_model(conn, model_name)
        raise NotFoundError(
            f"model {model_name!r} has no champion yet; serve a version with "
            f"`feedback-loop model promote --model {model_name} --version N` (see `feedback-loop model list`)"
        )
    return get_version(conn, model_name, version)


def alias_history(conn: psycopg.Connection, model_name: str, alias: str = CHAMPION) -> list[AliasEvent]:
    rows = conn.execute(
        queries.sql("registry/alias_history"), {"model_name": model_name, "alias": alias}
    ).fetchall()
    return [AliasEvent(**r) for r in rows]


def _move_alias(
    conn: psycopg.Connection,
    model_name: str,
    version: int,
    *,
    action: str,
    actor: str,
    reason: str,
    alias: str,
    expected_current: int | None = None,
) -> AliasEvent:
    target = get_version(conn, model_name, version)
    if target.status == "rejected":
        raise InvalidInputError(f"{model_name} v{version} was rejected by the gate and cannot serve")
    current = current_version(conn, model_name, alias)
    if expected_current is not None and current != expected_current:
        raise ConflictError(
            f"{model_name} {alias} is v{current}, not v{expected_current}; someone moved it meanwhile"
        )
    if current == version:
        raise ConflictError(f"{model_name} v{version} is already {alias}")
    try:
        check_servable(conn, target)
    except FeedbackLoopError as exc:
        verb = "not rolled back" if action == "rollback" else "not promoted"
        stays = f"{alias} stays v{current}" if current is not None else f"{model_name} has no {alias}"
        raise type(exc)(f"{exc}; {verb}: {stays}") from exc
    row = conn.execute(
        queries.sql("registry/insert_alias_event"),
        {
            "model_name": model_name,
            "alias": alias,
            "version": version,
            "previous_version": current,
            "action": action,
            "actor": actor,
            "reason": reason,
        },
    ).fetchone()
    log.info("%s: %s %s v%s -> v%s by %s (%s)", model_name, action, alias, current, version, actor, reason)
    return AliasEvent(**row)


def promote(
    conn: psycopg.Connection,
    model_name: str,
    version: int,
    *,
    actor: str,
    reason: str = "",
    alias: str = CHAMPION,
    expected_current: int | None = None,
) -> AliasEvent:
    """Make `version` the holder of `alias`; one transaction, serialised per model."""
    with conn.transaction():
        _lock(conn, f"alias:{alias}", model_name)
        return _move_alias(
            conn,
            model_name,
            version,
            action="promote",
            actor=actor,
            reason=reason,
            alias=alias,
            expected_current=expected_current,
        )


def previous_holder(conn: psycopg.Connection, model_name: str, alias: str = CHAMPION) -> int | None:
    """The version the current holder replaced when it was last promoted: rolling back walks back along
    the promotion lineage (v3 -> v2 -> v1), it does not toggle between the last two holders."""
    history = alias_history(conn, model_name, alias)
    if not history:
        return None
    current = history[-1].version
    for event in reversed(history):
        if event.action == "promote" and event.version == current:
            return event.previous_version
    return None


def rollback(
    conn: psycopg.Connection,
    model_name: str,
    *,
    actor: str,
    reason: str = "",
    to_version: int | None = None,
    alias: str = CHAMPION,
) -> AliasEvent:
    """Move `alias` back to `to_version` (default: the previous holder); audited like a promotion."""
    with conn.transaction():
        _lock(conn, f"alias:{alias}", model_name)
        current = current_version(conn, model_name, alias)
        if current is None:
            _require_model(conn, model_name)
            raise InvalidInputError(f"model {model_name!r} has no {alias} to roll back from")
        target = to_version if to_version is not None else previous_holder(conn, model_name, alias)
        if target is None:
            raise InvalidInputError(
                f"model {model_name!r}: {alias} v{current} did not replace an earlier version; "
                "nothing earlier to roll back to"
            )
        if target >= current:
            raise InvalidInputError(
                f"to_version: a rollback goes back to a version older than {alias} v{current}, got v{target}; "
                f"to serve v{target}, promote it (feedback-loop model promote --model {model_name} "
                f"--version {target})"
            )
        return _move_alias(
            conn, model_name, target, action="rollback", actor=actor, reason=reason, alias=alias
        )


def read_skops(data: bytes, label: str) -> Any:
    """Deserialise skops bytes that hold only types skops trusts plus our allow-list; anything else, or
    a file skops cannot read, is refused. `label` names the artifact in the error."""
    sio = _skops_io()

    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # noqa: BLE001 - any parse failure means the file is not a valid artifact
        raise IntegrityError(f"{label}: not a readable skops file: {exc}") from exc
    unexpected = sorted(untrusted - TRUSTED_EXTRA_TYPES)
    if unexpected:
        raise IntegrityError(f"{label}: artifact contains untrusted types {unexpected}; refusing to load")
    return sio.loads(data, trusted=sorted(untrusted))


def load_artifact(version: ModelVersion) -> Any:
    """Load the estimator after verifying its sha256 and that it holds only trusted types."""
    label = f"{version.model_name} v{version.version}"
    where = artifact_store.local_path(version.artifact_uri) or version.artifact_uri
    try:
        data = artifact_store.read_bytes(version.artifact_uri)
    except FileNotFoundError:
        raise IntegrityError(f"{label}: artifact {where} is missing") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != version.sha256:
        raise IntegrityError(
            f"{label}: artifact checksum mismatch "
            f"(recorded {version.sha256[:12]}…, file {actual[:12]}…); refusing to load {where}"
        )
    return read_skops(data, label)


def load(conn: psycopg.Connection, model_name: str, version: int | None = None) -> tuple[Any, ModelVersion]:
    """The estimator and its registry entry: `version`, or the current champion."""
    entry = get_version(conn, model_name, version) if version is not None else champion(conn, model_name)
    return load_artifact(entry), entry


# ---- fitness: checked before any version becomes champion, and before an artifact is registered ----------


def check_servable(conn: psycopg.Connection, version: ModelVersion) -> Any:
    """Load `version`'s artifact (checksum, trusted types) and check that it fits its model (`check_fit`).
    Every move of an alias runs this first. Returns the estimator."""
    estimator = load_artifact(version)
    label = f"{version.model_name} v{version.version}"
    check_fit(conn, version.model_name, estimator, label=label, entry=version)
    return estimator


def check_fit(
    conn: psycopg.Connection,
    model_name: str,
    estimator: Any,
    *,
    label: str,
    entry: ModelVersion | None = None,
) -> None:
    """Raise unless `estimator` can serve `model_name`; `entry` is its registry record (None: not registered
    yet). Checked, each failure one line naming `label`:

    * a classifier (predict_proba) that agrees with its record: the columns it was fitted on and its
      classes are the ones the registry recorded (else IntegrityError);
    * fitted on named columns (scoring builds a frame by name), as many and the same as the model's: its
      configured `feature_columns` when the config lists them, else those of the champion (else of the newest
      other version that could serve);
    * classes: a later version may add a class (people can teach a new label through feedback) but never
      drop one an earlier version predicts; compared with the same reference version.
    """
    if not hasattr(estimator, "predict_proba"):
        raise InvalidInputError(f"{label}: the estimator has no predict_proba; a classifier is needed")
    names = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
    count = getattr(estimator, "n_features_in_", None)
    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    if entry is not None:
        recorded = list(entry.feature_columns)
        if names and recorded and names != recorded:
            raise IntegrityError(
                f"{label}: the artifact reads columns {_few(names)} but the registry records {_few(recorded)}"
            )
        if entry.classes and sorted(classes) != sorted(entry.classes):
            raise IntegrityError(
                f"{label}: the artifact predicts classes {_few(classes)} but the registry records "
                f"{_few(list(entry.classes))}"
            )
        names = names or recorded
    reference = _reference(conn, model_name, exclude=None if entry is None else entry.version)
    theirs = "" if reference is None else _holder(conn, reference)
    expected, source = _expected_features(model_name, reference, theirs)
    if expected is not None:
        if count is not None and count != len(expected):
            raise InvalidInputError(
                f"{label}: n_features_in_ {count} but the model has {len(expected)} features ({source})"
            )
        if names and set(names) != set(expected):
            missing, unknown = sorted(set(expected) - set(names)), sorted(set(names) - set(expected))
            raise InvalidInputError(
                f"{label}: feature columns differ from those of {source}: missing {_few(missing)}, "
                f"unknown {_few(unknown)}"
            )
    if not names:
        raise InvalidInputError(
            f"{label}: fitted without feature names (n_features_in_ {count}); fit it on a DataFrame whose "
            "columns are the model's features"
        )
    if reference is not None and reference.classes and classes:
        ours = "this version" if entry is None else f"v{entry.version}"
        newer_is_ours = entry is None or entry.version > reference.version
        older, newer = (reference.classes, classes) if newer_is_ours else (classes, reference.classes)
        dropped = sorted(set(older) - set(newer))
        if dropped:
            lacking = ours if newer_is_ours else theirs
            raise InvalidInputError(
                f"{label}: classes differ from {theirs}'s: {lacking} lacks {_few(dropped)} that the earlier "
                "version predicts (a later version may add classes, never drop one)"
            )


def _few(items: list[str], n: int = 8) -> str:
    shown = sorted(items)
    return repr(shown) if len(shown) <= n else f"{shown[:n]!r} ... ({len(shown)} in all)"


def _holder(conn: psycopg.Connection, version: ModelVersion) -> str:
    is_champion = current_version(conn, version.model_name) == version.version
    return f"champion v{version.version}" if is_champion else f"v{version.version}"


def _reference(conn: psycopg.Connection, model_name: str, exclude: int | None) -> ModelVersion | None:
    """What a new holder is compared with: the champion, else the newest other version that could serve."""
    holder = current_version(conn, model_name)
    if holder is not None and holder != exclude:
        return get_version(conn, model_name, holder)
    rows = conn.execute(queries.sql("registry/versions"), {"model_name": model_name}).fetchall()
    others = [r for r in rows if r["version"] != exclude and r["status"] != "rejected"]
    return _version_from_row(others[-1]) if others else None


def _expected_features(
    model_name: str, reference: ModelVersion | None, reference_label: str
) -> tuple[list[str] | None, str]:
    """The columns the model reads, and where that comes from: the configured list, else the reference."""
    try:
        configured = config.load().model(model_name)
    except NotFoundError:  # registered but not configured (e.g. imported for a comparison)
        configured = None
    if configured is not None and isinstance(configured.feature_columns, list):
        return list(configured.feature_columns), f"feature_columns in {config.default_path()}"
    if reference is not None and reference.feature_columns:
        return list(reference.feature_columns), reference_label
    return None, ""
