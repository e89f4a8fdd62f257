"""Retraining as plain steps: pull data, train, gate, register, promote; `run()` composes them.

The model_retraining DAG calls `run()` per model; `feedback-loop simulate` and tests call it directly.
Each step records what it learned in the run's `training_runs` row (retrain.runs). The critical section
runs under registry.locks.model_lock; promotion also passes `expected_current`, so a champion moved by
someone else (a rollback, a manual promote, an approval that waited for hours outside the lock) is
detected, not overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from feedback_loop.core import queries
from feedback_loop.core.config import ModelConfig
from feedback_loop.core.errors import ConflictError, FeedbackLoopError, InvalidInputError
from feedback_loop.registry import versions as registry
from feedback_loop.registry.locks import DEFAULT_LOCK_TIMEOUT_S, model_lock
from feedback_loop.retrain import eval_cases, gate, training_data
from feedback_loop.retrain.planning import RunParams
from feedback_loop.retrain.run_records import (
    committed,
    finish_run,
    get_run,
    record,
    runs_of_airflow_run,
    start_run,
)

if TYPE_CHECKING:
    from feedback_loop.retrain.training import TrainedModel

log = logging.getLogger(__name__)


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
    """Fit the configured pipeline on base + feedback rows and measure it on the fixed base holdout; the
    served estimator is refitted with the holdout rows added (training.train)."""
    from feedback_loop.retrain import training

    return training.train(model, data.train, holdout=data.holdout, sample_weight=data.weights or None)


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

    from feedback_loop.retrain import training
    from feedback_loop.retrain.features import FeatureSpec

    cases = eval_cases.load(conn, model.name)
    candidate = gate.score(
        trained.estimator,
        trained.spec,
        data.holdout,
        cases,
        version=None,
        holdout_predicted=trained.holdout_predictions.get("predicted"),
    )
    holdout_sha256 = training.rows_sha256(data.holdout)
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
        # Like for like: the champion's recipe fitted without the holdout, when the version stored its
        # predictions for this very holdout; else (older versions, a given artifact, changed base data)
        # the served artifact, which may have learnt from some of these rows.
        stored = entry.holdout_predictions or {}
        champion_scores = gate.score(
            estimator,
            spec,
            data.holdout,
            cases,
            version=champion_version,
            numeric=numeric,
            holdout_predicted=stored.get("predicted")
            if stored.get("rows_sha256") == holdout_sha256
            else None,
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
        holdout_predictions=trained.holdout_predictions,
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
    except FeedbackLoopError as exc:  # the candidate failed registry.check_servable (e.g. tampered with)
        record(conn, run_id, status="failed", decision=str(exc), finished=True)
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


def _unchanged_since(
    conn: psycopg.Connection, model_name: str, champion_version: int | None, data: training_data.TrainingSet
) -> str | None:
    """Why this run would learn nothing the champion has not (None when it would): the same base rows and
    the same feedback labels and weights as the champion's training set. Two alerts of one interval, or a
    manual run right after a scheduled one, would otherwise register twin versions."""
    if champion_version is None:
        return None
    champion = registry.get_version(conn, model_name, champion_version)
    if not training_data.same_training_data(data.snapshot, champion.data_snapshot):
        return None
    rows = data.snapshot["feedback"]["rows"]
    return (
        f"skipped: no new training data since the champion v{champion_version} (the same base rows and the "
        f"same {rows} feedback label(s)); nothing registered"
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
    unchanged = _unchanged_since(conn, model.name, champion_version, data)
    if unchanged is not None:
        record(
            conn,
            run_id,
            status="skipped",
            decision=unchanged,
            champion_version=champion_version,
            finished=True,
        )
        log.info("%s: %s", model.name, unchanged)
        return RunOutcome(run_id, model.name, "skipped", unchanged, champion_version, snapshot=data.snapshot)
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
    with committed(conn):
        conn.execute(
            queries.sql("retraining/reject_version"),
            {"model_name": run_row["model_name"], "version": run_row["candidate_version"], "note": note},
        )
    record(conn, run_id, status="rejected", decision=f"{why} ({actor})", finished=True)


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
