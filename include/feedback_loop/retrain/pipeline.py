"""Retraining as plain steps: start a run, pull data, train, gate, register, promote, finish.

The model_retraining DAG wires these; `feedback-loop simulate` and tests call `run()` directly. Every step
writes what it learned to its `training_runs` row, so a run that dies part-way still explains itself.

Serialisation: `model_lock()` holds a PostgreSQL session advisory lock per model on its own connection for
the whole critical section (read champion -> pull -> train -> gate -> register -> promote). Two runs for
one model, from one Airflow or from two deployments sharing the database, never interleave; the second
waits (and logs which run it waits for). If the process dies, its connection closes and the lock goes
with it. Promotion also passes `expected_current`, so a champion moved by someone else (a rollback, a
manual promote, an approval that waited for hours outside the lock) is detected, not overwritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from feedback_loop.core import db, queries
from feedback_loop.core.config import ModelConfig, Settings
from feedback_loop.core.errors import ConflictError, InvalidInputError, NotFoundError
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import eval_cases, gate, training_data

if TYPE_CHECKING:
    from feedback_loop.retrain.training import TrainedModel

log = logging.getLogger(__name__)

LOCK_CLASS = 0x46425254  # first key of the two-key advisory lock: "FBRT", feedback-loop retraining
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_LOCK_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class RunParams:
    model_name: str
    min_rating: int
    include_corrections: bool
    window_start: datetime
    window_end: datetime
    dry_run: bool = False
    reason: str = ""
    triggered_by: str = "unknown"
    airflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["window_start"] = self.window_start.isoformat()
        data["window_end"] = self.window_end.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunParams:
        return cls(
            **{
                **data,
                "window_start": datetime.fromisoformat(data["window_start"]),
                "window_end": datetime.fromisoformat(data["window_end"]),
            }
        )


def _when(name: str, value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"{name}: {value!r} is not an ISO date or timestamp (e.g. 2026-11-01 or 2026-11-01T12:00Z)"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve_params(
    model: ModelConfig,
    *,
    min_rating: int | None = None,
    include_corrections: bool = True,
    window_start: Any = None,
    window_end: Any = None,
    window_days: int | None = None,
    dry_run: bool = False,
    reason: str = "",
    triggered_by: str = "unknown",
    airflow_run_id: str | None = None,
    now: datetime | None = None,
) -> RunParams:
    """Validate trigger parameters; errors name the field. Default window: all feedback up to now."""
    rating = model.min_rating if min_rating is None else min_rating
    if not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidInputError(f"min_rating: must be an integer from 1 to 5, got {rating!r}")
    end = _when("window_end", window_end) or (now or datetime.now(UTC))
    start = _when("window_start", window_start)
    if window_days is not None:
        if start is not None:
            raise InvalidInputError("window_days: give either window_start or window_days, not both")
        if not isinstance(window_days, int) or window_days <= 0:
            raise InvalidInputError(f"window_days: must be a positive number of days, got {window_days!r}")
        start = end - timedelta(days=window_days)
    start = start or EPOCH
    if start >= end:
        raise InvalidInputError(
            f"window_start: {start.isoformat()} is not before window_end {end.isoformat()}"
        )
    return RunParams(
        model_name=model.name,
        min_rating=rating,
        include_corrections=bool(include_corrections),
        window_start=start,
        window_end=end,
        dry_run=bool(dry_run),
        reason=(reason or "").strip(),
        triggered_by=triggered_by,
        airflow_run_id=airflow_run_id,
    )


# --- the training_runs row -------------------------------------------------------------------------------


@contextmanager
def _write(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction that really commits at its end: steps must be durable one by one (a crash after
    registering must leave the registration), so any implicit read transaction is ended first."""
    conn.commit()
    with conn.transaction():
        yield


def start_run(conn: psycopg.Connection, params: RunParams) -> int:
    """Insert the run's row (status running) and commit it, so a crash later still leaves a trace."""
    with _write(conn):
        row = conn.execute(
            queries.sql("retraining/insert_run"),
            {
                "model_name": params.model_name,
                "triggered_by": params.triggered_by,
                "reason": params.reason,
                "params": Jsonb(params.to_dict()),
                "airflow_run_id": params.airflow_run_id,
            },
        ).fetchone()
    log.info("%s: training run #%s started by %s", params.model_name, row["id"], params.triggered_by)
    return int(row["id"])


def record(
    conn: psycopg.Connection,
    run_id: int,
    *,
    status: str | None = None,
    data_snapshot: dict | None = None,
    metrics: dict | None = None,
    champion_version: int | None = None,
    candidate_version: int | None = None,
    gate_verdict: dict | None = None,
    decision: str | None = None,
    finished: bool = False,
) -> dict[str, Any]:
    """Write what a step learned to the run's row, committed at once."""

    def js(value: dict | None) -> Jsonb | None:
        return None if value is None else Jsonb(value)

    with _write(conn):
        row = conn.execute(
            queries.sql("retraining/update_run"),
            {
                "id": run_id,
                "status": status,
                "data_snapshot": js(data_snapshot),
                "metrics": js(metrics),
                "champion_version": champion_version,
                "candidate_version": candidate_version,
                "gate": js(gate_verdict),
                "decision": decision,
                "finished": finished,
            },
        ).fetchone()
    if row is None:
        raise NotFoundError(f"unknown training run #{run_id}")
    return row


def get_run(conn: psycopg.Connection, run_id: int) -> dict[str, Any]:
    row = conn.execute(queries.sql("retraining/get_run"), {"id": run_id}).fetchone()
    if row is None:
        raise NotFoundError(f"unknown training run #{run_id}")
    return row


def recent_runs(conn: psycopg.Connection, model_name: str, limit: int = 10) -> list[dict[str, Any]]:
    """The model's latest training runs, newest first."""
    return conn.execute(
        queries.sql("retraining/recent_runs"), {"model_name": model_name, "limit": limit}
    ).fetchall()


def finish_run(conn: psycopg.Connection, run_id: int) -> str:
    """Close the run: if no step recorded an outcome (a task failed, the process died), mark it failed and
    say how far it got. Returns the final status."""
    run = get_run(conn, run_id)
    if run["status"] == "running":
        if run["candidate_version"] is not None:
            decision = (
                f"stopped after registering v{run['candidate_version']} and before promoting it; "
                f"the champion is unchanged (v{run['champion_version']})"
            )
        else:
            decision = "stopped before registering a candidate; nothing changed (see the task log)"
        with _write(conn):
            conn.execute(queries.sql("retraining/close_unfinished_run"), {"id": run_id, "decision": decision})
        log.warning("%s: training run #%s failed: %s", run["model_name"], run_id, decision)
        return "failed"
    return str(run["status"])


# --- serialisation ---------------------------------------------------------------------------------------


@contextmanager
def model_lock(
    model_name: str,
    *,
    url: str | None = None,
    timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    poll_s: float = 1.0,
) -> Iterator[None]:
    """Hold the per-model retraining lock (session advisory lock on a dedicated connection)."""
    started = time.monotonic()
    lock_key = {"lock_class": LOCK_CLASS, "model_name": model_name}
    with db.connect(url, autocommit=True) as lock_conn:
        waited = False
        while True:
            row = lock_conn.execute(queries.sql("retraining/try_lock"), lock_key).fetchone()
            if row["ok"]:
                break
            if not waited:
                holder = lock_conn.execute(
                    queries.sql("retraining/running_run"), {"model_name": model_name}
                ).fetchone()
                what = (
                    f"training run #{holder['id']} (started {holder['started_at']:%Y-%m-%d %H:%M:%S})"
                    if holder
                    else "another run"
                )
                log.info("%s: waiting for %s to release the retraining lock", model_name, what)
                waited = True
            if time.monotonic() - started > timeout_s:
                raise ConflictError(
                    f"model {model_name!r}: another retraining run held the lock for more than {timeout_s:.0f}s"
                )
            time.sleep(poll_s)
        if waited:
            log.info("%s: got the retraining lock after %.1fs", model_name, time.monotonic() - started)
        try:
            yield
        finally:
            lock_conn.execute(queries.sql("retraining/unlock"), lock_key)


# --- the steps -------------------------------------------------------------------------------------------


def _eval_case_hint(model_name: str, result: GateResult) -> str:
    """Where to look when must-pass eval cases failed: one of them may carry a wrong label."""
    failing = [c.id for c in result.candidate.cases if c.must_pass and not c.passed]
    if not failing or all(c.name != gate.MUST_PASS_CHECK or c.passed for c in result.verdict.checks):
        return ""
    ids = " ".join(f"--id {i}" for i in failing[:5])
    return (
        f" (a case's label may be wrong: `feedback-loop eval-cases list --model {model_name} {ids}`; "
        "`eval-cases demote` takes a wrong one out of the must-pass set)"
    )


def pull(conn: psycopg.Connection, model: ModelConfig, params: RunParams) -> training_data.TrainingSet:
    return training_data.build(
        conn,
        model,
        start=params.window_start,
        end=params.window_end,
        min_rating=params.min_rating,
        include_corrections=params.include_corrections,
    )


def train_candidate(model: ModelConfig, data: training_data.TrainingSet) -> TrainedModel:
    """Fit the configured pipeline on base + feedback rows; metrics on the fixed base holdout."""
    from feedback_loop.retrain import training

    return training.train(model, data.train, holdout=data.holdout)


@dataclass
class GateResult:
    verdict: gate.Verdict
    candidate: gate.Scores
    champion: gate.Scores | None
    cases: int = 0


def evaluate_and_gate(
    conn: psycopg.Connection, model: ModelConfig, data: training_data.TrainingSet, trained: TrainedModel
) -> GateResult:
    """Score candidate and champion on the same holdout and every eval case, then compare."""
    import pandas as pd

    from feedback_loop.retrain.features import FeatureSpec

    cases = eval_cases.load(conn, model.name)
    candidate = gate.score(trained.estimator, trained.spec, data.holdout, cases, version=None)
    champion_scores = None
    champion_version = registry.current_version(conn, model.name)
    if champion_version is not None:
        estimator, entry = registry.load(conn, model.name, champion_version)
        features = entry.feature_columns or trained.spec.features
        spec = FeatureSpec(
            features=features,
            categorical=[c for c in features if c in trained.spec.categorical],
            label=model.label_column,
            slices=trained.spec.slices,
        )
        numeric = [
            c for c in features if c in data.holdout and pd.api.types.is_numeric_dtype(data.holdout[c])
        ]
        champion_scores = gate.score(
            estimator, spec, data.holdout, cases, version=champion_version, numeric=numeric
        )
    verdict = gate.compare(candidate, champion_scores, model.gate)
    return GateResult(verdict=verdict, candidate=candidate, champion=champion_scores, cases=len(cases))


def _metrics(result: GateResult, trained: TrainedModel) -> dict[str, Any]:
    def side(scores: gate.Scores | None) -> dict[str, Any] | None:
        if scores is None:
            return None
        return {
            **scores.holdout,
            "eval_case_pass_rate": scores.case_pass_rate(),
            "eval_cases": len(scores.cases),
        }

    return {
        "candidate": {**side(result.candidate), "train_rows": trained.metrics.get("train_rows")},
        "champion": side(result.champion),
    }


def register_candidate(
    conn: psycopg.Connection,
    model: ModelConfig,
    run_id: int,
    trained: TrainedModel,
    data: training_data.TrainingSet,
    result: GateResult,
    *,
    created_by: str,
) -> registry.ModelVersion:
    """Register the candidate: status 'registered' if it passed the gate, else 'rejected' (never served)."""
    passed = result.verdict.passed
    note = (
        f"training run #{run_id}: passed the gate"
        if passed
        else f"training run #{run_id}: rejected by the gate: {'; '.join(result.verdict.reasons)}"
    )
    metrics = {
        **trained.metrics,
        "eval_case_pass_rate": result.candidate.case_pass_rate(),
        "eval_cases": len(result.candidate.cases),
        "gate_passed": passed,
    }
    conn.commit()  # registry.register must run as its own, committed transaction
    version = registry.register(
        conn,
        model.name,
        trained.estimator,
        created_by=created_by,
        metrics=metrics,
        data_snapshot={**data.snapshot, "training_run_id": run_id},
        reference_profile=trained.reference_profile,
        classes=trained.classes,
        feature_columns=trained.spec.features,
        parent_version=result.verdict.champion_version,
        status="registered" if passed else "rejected",
        note=note[:2000],
    )
    result.verdict.candidate_version = version.version
    result.candidate.version = version.version
    record(
        conn,
        run_id,
        candidate_version=version.version,
        champion_version=result.verdict.champion_version,
        gate_verdict=result.verdict.to_dict() | {"table": result.verdict.table()},
        metrics=_metrics(result, trained),
    )
    return version


def promote_candidate(
    conn: psycopg.Connection,
    model_name: str,
    run_id: int,
    version: int,
    *,
    expected_current: int | None,
    actor: str,
    reason: str,
) -> registry.AliasEvent:
    """Move the champion alias to `version` if it is still `expected_current`; records the outcome."""
    conn.commit()  # registry.promote must run as its own, committed transaction
    try:
        event = registry.promote(
            conn, model_name, version, actor=actor, reason=reason, expected_current=expected_current
        )
    except ConflictError as exc:
        record(
            conn,
            run_id,
            status="failed",
            decision=f"not promoted: {exc}; re-run to gate against the new champion",
            finished=True,
        )
        raise
    record(
        conn,
        run_id,
        status="promoted",
        decision=f"promoted v{version} (was v{event.previous_version}) by {actor}",
        finished=True,
    )
    return event


@dataclass
class RunOutcome:
    run_id: int
    model_name: str
    status: str
    decision: str
    champion_version: int | None = None
    candidate_version: int | None = None
    promoted: bool = False
    gate: dict[str, Any] = field(default_factory=dict)
    table: str = ""
    snapshot: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary_of(snapshot: dict[str, Any]) -> str:
    fb = snapshot["feedback"]
    return (
        f"{snapshot['rows']} rows ({snapshot['base']['rows']} base + {fb['rows']} from feedback: "
        f"{fb['confirmed']} confirmed, {fb['corrected']} corrected; {fb['dropped_by_cap']} over the cap, "
        f"{fb['dropped_conflict']} conflicting, {fb['dropped_negative_without_label']} negative without label), "
        f"{len(snapshot['class_counts'])} classes, feedback window "
        f"{snapshot['window']['start']} .. {snapshot['window']['end']}"
    )


def execute(conn: psycopg.Connection, model: ModelConfig, params: RunParams, run_id: int) -> RunOutcome:
    """The critical section; call it while holding model_lock(model.name)."""
    data = pull(conn, model, params)
    record(conn, run_id, data_snapshot=data.snapshot)
    champion_version = registry.current_version(conn, model.name)
    described = summary_of(data.snapshot)
    if params.dry_run:
        decision = f"dry run: would train on {described}; nothing registered or promoted"
        record(
            conn,
            run_id,
            status="dry_run",
            decision=decision,
            champion_version=champion_version,
            finished=True,
        )
        return RunOutcome(run_id, model.name, "dry_run", decision, champion_version, snapshot=data.snapshot)
    if data.feedback_rows == 0:
        decision = (
            f"skipped: no feedback-derived labels in the window; nothing new to learn from ({described})"
        )
        record(
            conn,
            run_id,
            status="skipped",
            decision=decision,
            champion_version=champion_version,
            finished=True,
        )
        return RunOutcome(run_id, model.name, "skipped", decision, champion_version, snapshot=data.snapshot)
    promoted_cases = eval_cases.promote_failures(conn, model.name, data.feedback.corrected)
    trained = train_candidate(model, data)
    result = evaluate_and_gate(conn, model, data, trained)
    result.verdict.config["eval_cases_added_by_this_run"] = promoted_cases
    record(conn, run_id, champion_version=result.verdict.champion_version)
    version = register_candidate(conn, model, run_id, trained, data, result, created_by=params.triggered_by)
    verdict = result.verdict
    outcome = RunOutcome(
        run_id,
        model.name,
        "running",
        "",
        verdict.champion_version,
        version.version,
        gate=verdict.to_dict(),
        table=verdict.table(),
        snapshot=data.snapshot,
    )
    if not verdict.passed:
        outcome.status, outcome.decision = (
            "rejected",
            f"rejected v{version.version}: {'; '.join(verdict.reasons)}{_eval_case_hint(model.name, result)}",
        )
        record(conn, run_id, status="rejected", decision=outcome.decision, finished=True)
        log.warning(
            "%s: candidate v%s rejected by the gate: %s", model.name, version.version, verdict.reasons
        )
        return outcome
    if model.gate.require_approval:
        outcome.status = "awaiting_approval"
        outcome.decision = f"v{version.version} passed the gate; waiting for a human to approve promotion"
        record(conn, run_id, status="awaiting_approval", decision=outcome.decision)
        return outcome
    event = promote_candidate(
        conn,
        model.name,
        run_id,
        version.version,
        expected_current=verdict.champion_version,
        actor=params.triggered_by,
        reason=params.reason or f"training run #{run_id} passed the gate",
    )
    outcome.status, outcome.promoted = "promoted", True
    outcome.decision = f"promoted v{version.version} (was v{event.previous_version})"
    return outcome


def run(
    conn: psycopg.Connection,
    model: ModelConfig,
    params: RunParams,
    *,
    url: str | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> RunOutcome:
    """Start, execute under the model lock, finish: the whole retrain as one call (simulate, tests)."""
    run_id = start_run(conn, params)
    try:
        with model_lock(model.name, url=url, timeout_s=lock_timeout_s):
            return execute(conn, model, params, run_id)
    finally:
        finish_run(conn, run_id)


def approve(
    conn: psycopg.Connection, run_id: int, *, actor: str, url: str | None = None
) -> registry.AliasEvent:
    """A human approved a run awaiting approval: promote its candidate if the champion has not moved."""
    run_row = get_run(conn, run_id)
    if run_row["status"] != "awaiting_approval":
        raise InvalidInputError(f"training run #{run_id} is {run_row['status']}, not awaiting approval")
    with model_lock(run_row["model_name"], url=url):
        return promote_candidate(
            conn,
            run_row["model_name"],
            run_id,
            int(run_row["candidate_version"]),
            expected_current=run_row["champion_version"],
            actor=actor,
            reason=f"approved by {actor} (training run #{run_id})",
        )


def reject(
    conn: psycopg.Connection, run_id: int, *, actor: str, why: str = "rejected by the approver"
) -> None:
    """A human turned the candidate down (or nobody answered): it is marked rejected and never serves."""
    run_row = get_run(conn, run_id)
    if run_row["status"] != "awaiting_approval":
        return
    note = f"training run #{run_id}: {why} ({actor})"
    with _write(conn):
        conn.execute(
            queries.sql("retraining/reject_version"),
            {"model_name": run_row["model_name"], "version": run_row["candidate_version"], "note": note},
        )
    record(conn, run_id, status="rejected", decision=f"{why} ({actor})", finished=True)


# --- which models a DAG run retrains ---------------------------------------------------------------------


def plan(
    settings: Settings,
    *,
    run_type: str,
    params: dict[str, Any],
    asset_extras: list[dict[str, Any]] | None = None,
    triggered_by: str,
    airflow_run_id: str | None = None,
    now: datetime | None = None,
) -> list[RunParams]:
    """The runs one trigger asks for.

    * manual (trigger form / REST conf): the model and settings in `params`;
    * asset-triggered (`retraining_needed`): the models named in the events' extra (all if none is named),
      with each model's configured settings and the events' reasons;
    * scheduled: every model with a retraining schedule, with its configured settings.
    """
    if run_type == "manual":
        model = settings.model(params["model_name"])
        return [
            resolve_params(
                model,
                min_rating=params.get("min_rating"),
                include_corrections=params.get("include_corrections", True),
                window_start=params.get("window_start"),
                window_end=params.get("window_end"),
                window_days=params.get("window_days"),
                dry_run=params.get("dry_run", False),
                reason=params.get("reason") or "manual trigger",
                triggered_by=triggered_by,
                airflow_run_id=airflow_run_id,
                now=now,
            )
        ]
    if run_type == "asset_triggered":
        extras = asset_extras or []
        named = [e["model_name"] for e in extras if isinstance(e, dict) and e.get("model_name")]
        known = {m.name for m in settings.models}
        unknown = sorted(set(named) - known)
        if unknown:
            log.warning("retraining_needed names unconfigured model(s) %s; ignoring them", unknown)
        names = [n for n in dict.fromkeys(named) if n in known] or [m.name for m in settings.models]
        reasons: dict[str, list[str]] = {}
        for extra in extras:
            if isinstance(extra, dict) and extra.get("reason"):
                reasons.setdefault(extra.get("model_name", ""), []).append(str(extra["reason"]))
        return [
            resolve_params(
                settings.model(name),
                reason=("retraining_needed: " + "; ".join(reasons.get(name, []) or ["asset event"]))[:500],
                triggered_by=triggered_by,
                airflow_run_id=airflow_run_id,
                now=now,
            )
            for name in names
        ]
    return [
        resolve_params(
            m,
            reason="scheduled retraining",
            triggered_by=triggered_by,
            airflow_run_id=airflow_run_id,
            now=now,
        )
        for m in settings.models
        if m.schedules.retraining
    ]


def runs_of_airflow_run(conn: psycopg.Connection, airflow_run_id: str) -> list[dict[str, Any]]:
    return conn.execute(
        queries.sql("retraining/runs_of_airflow_run"), {"airflow_run_id": airflow_run_id}
    ).fetchall()


def close_airflow_run(
    conn: psycopg.Connection, airflow_run_id: str, *, approver: str | None = None
) -> list[dict]:
    """End of a DAG run: runs still 'running' are marked failed; runs still awaiting approval were not
    approved (rejected or timed out), so their candidates are marked rejected."""
    closed = []
    for row in runs_of_airflow_run(conn, airflow_run_id):
        if row["status"] == "awaiting_approval":
            reject(conn, row["id"], actor=approver or "nobody", why="not approved")
        status = finish_run(conn, row["id"])
        closed.append({"run_id": row["id"], "model_name": row["model_name"], "status": status})
    return closed
