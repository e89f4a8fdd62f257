"""The closed loop without the scheduler: the same library code the DAGs run, on a real PostgreSQL.

Each cycle: a batch of unlabelled rows arrives and is scored by the champion (inference.score_batch),
K predictions are routed to review by confidence or at random (inference.open_reviews), simulated reviewers
answer with label noise (inference.record_answer), then the model is retrained, gated and promoted
(pipeline.run). Accuracy is always measured on a stratified 30% holdout no model ever trains on.

The run uses its own throwaway database and artifact folder on the resolved PostgreSQL server and drops
them at the end, so a simulation never touches the feedback data of a real deployment.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedback_loop.core import config, db, migrations, queries
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import review
from feedback_loop.inference import scoring as inference
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import baseline, datasets, pipeline, planning

STRATEGIES = {"uncertainty": "lowest_confidence", "random": "random"}
HOLDOUT_SHARE = 0.3


@dataclass(frozen=True)
class SimulationSpec:
    data: str  # a CSV/Parquet path, or "digits"
    label_column: str
    slice_column: str | None = None
    drop_columns: tuple[str, ...] = ()
    initial_labels: int = 100
    cycles: int = 5
    batch_size: int = 200
    review_budget: int = 20
    reviewer_noise: float = 0.1
    strategy: str = "uncertainty"
    seed: int = 0
    max_feedback_share: float = 1.0
    eval_case_pass_rate: float = 0.7
    gate_tolerance: float = 0.02

    def validate(self) -> None:
        checks = [
            (self.initial_labels >= 10, "--initial-labels must be at least 10"),
            (self.cycles >= 0, "--cycles must be >= 0"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.review_budget >= 1, "--review-budget must be >= 1"),
            (0 <= self.reviewer_noise < 1, "--reviewer-noise must be in [0, 1)"),
            (self.strategy in STRATEGIES, f"--strategy must be one of {', '.join(STRATEGIES)}"),
            (0 < self.max_feedback_share <= 1, "--max-feedback-share must be in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInputError(message)


@dataclass
class CycleResult:
    cycle: int
    labels_used: int
    accuracy: float
    champion_version: int
    gate: str
    reviewed: int = 0
    corrected: int = 0
    reasons: list[str] = field(default_factory=list)


def load_frame(spec: SimulationSpec):
    """The data set with validated columns; the label as strings."""
    frame = datasets.digits() if spec.data == "digits" else datasets.read_table(spec.data)
    if spec.label_column not in frame.columns:
        raise InvalidInputError(
            f"--label-column {spec.label_column!r} is not a column of {spec.data} "
            f"(columns: {', '.join(map(str, list(frame.columns)[:12]))})"
        )
    for column in [*spec.drop_columns, *([spec.slice_column] if spec.slice_column else [])]:
        if column not in frame.columns:
            raise InvalidInputError(
                f"column {column!r} (from --drop-columns/--slice-column) is not in {spec.data}"
            )
    frame = frame.drop(columns=list(spec.drop_columns)).dropna(subset=[spec.label_column])
    frame[spec.label_column] = frame[spec.label_column].astype(str)
    classes = frame[spec.label_column].nunique()
    if classes < 2:
        raise InvalidInputError(
            f"--label-column {spec.label_column!r} has {classes} class; at least two are needed"
        )
    return frame.reset_index(drop=True)


def split(frame, spec: SimulationSpec):
    """(holdout, initial labelled rows, stream of unlabelled rows), stratified where the classes allow."""
    from sklearn.model_selection import train_test_split

    label = frame[spec.label_column]
    stratify = label if label.value_counts().min() >= 2 else None
    pool, holdout = train_test_split(
        frame, test_size=HOLDOUT_SHARE, random_state=spec.seed, stratify=stratify
    )
    if spec.initial_labels >= len(pool):
        raise InvalidInputError(
            f"--initial-labels {spec.initial_labels} leaves no unlabelled rows (pool {len(pool)})"
        )
    pool_label = pool[spec.label_column]
    stratify = (
        pool_label
        if pool_label.value_counts().min() >= 2 and spec.initial_labels >= pool_label.nunique()
        else None
    )
    initial, stream = train_test_split(
        pool, train_size=spec.initial_labels, random_state=spec.seed, stratify=stratify
    )
    return holdout.reset_index(drop=True), initial.reset_index(drop=True), stream.reset_index(drop=True)


def model_config(spec: SimulationSpec, base_path: Path, name: str) -> config.ModelConfig:
    return config.ModelConfig(
        name=name,
        label_column=spec.label_column,
        slice_columns=[spec.slice_column] if spec.slice_column else [],
        training_data=config.TrainingData(path=str(base_path)),
        seed=spec.seed,
        confidence_threshold=1.0,
        review_budget=spec.review_budget,
        max_feedback_share=spec.max_feedback_share,
        gate=config.GateConfig(tolerance=spec.gate_tolerance, eval_case_pass_rate=spec.eval_case_pass_rate),
    )


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN: JSON has no NaN, the model imputes None
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _json_ready(value.item())
    return value


def _rows(frame, features: list[str], slice_column: str | None) -> Iterator[tuple[dict, dict]]:
    for record in frame.to_dict(orient="records"):
        values = {c: _json_ready(record[c]) for c in features}
        slices = {slice_column: _json_ready(record[slice_column])} if slice_column else {}
        yield values, slices


def holdout_accuracy(conn, model_name: str, holdout, label: str) -> tuple[int, float]:
    estimator, entry = registry.load(conn, model_name)
    predicted = estimator.predict(holdout[entry.feature_columns]).astype(str)
    return entry.version, float((predicted == holdout[label].to_numpy()).mean())


def simulated_answer(
    task: dict[str, Any], truth: str, classes: list[str], noise: float, rng: random.Random
) -> review.Answer:
    """A reviewer who gives the true label, except with probability `noise` another class at random."""
    label = truth
    if rng.random() < noise:
        label = rng.choice([c for c in classes if c != truth] or [truth])
    if label in task["options"] and label not in review.RESERVED_OPTIONS:
        chosen, params = [label], {}
    else:
        chosen, params = [review.NONE_OF_THESE], {review.CORRECTED_LABEL: label}
    return review.Answer(
        chosen_options=chosen,
        params_input=params,
        responded_at=datetime.now(UTC),
        responded_by={"id": f"sim-reviewer-{rng.randint(1, 3)}"},
    )


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A throwaway database (and artifact folder) on the resolved server, dropped afterwards."""
    server = db.resolve_url()
    name = f"fl_simulate_{uuid.uuid4().hex[:10]}"
    url = db.ensure_database(server, name)
    artifacts = Path(tempfile.mkdtemp(prefix="fl-simulate-"))
    previous = os.environ.get("FEEDBACK_LOOP_ARTIFACT_DIR")
    os.environ["FEEDBACK_LOOP_ARTIFACT_DIR"] = str(artifacts / "models")
    try:
        migrations.upgrade(url)
        yield url
    finally:
        if previous is None:
            os.environ.pop("FEEDBACK_LOOP_ARTIFACT_DIR", None)
        else:
            os.environ["FEEDBACK_LOOP_ARTIFACT_DIR"] = previous
        db.drop_database(server, name)
        shutil.rmtree(artifacts, ignore_errors=True)


def run(spec: SimulationSpec, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the simulation; returns {"spec": ..., "cycles": [...], "final": {...}}."""
    spec.validate()
    frame = load_frame(spec)
    holdout, initial, stream = split(frame, spec)
    classes = sorted(frame[spec.label_column].unique())
    rng = random.Random(spec.seed)
    strategy = STRATEGIES[spec.strategy]
    with scratch_database() as url, tempfile.TemporaryDirectory(prefix="fl-simulate-base-") as tmp:
        base_path = Path(tmp) / "initial_labels.csv"
        initial.to_csv(base_path, index=False)
        model = model_config(spec, base_path, f"sim-{spec.strategy}-s{spec.seed}")
        results: list[CycleResult] = []
        with db.connect(url) as conn:
            v1 = baseline.train_and_register(
                conn,
                model,
                created_by="simulate",
                promote=True,
                reason="simulation: v1 on the initial clean labels",
            )
            version, accuracy = holdout_accuracy(conn, model.name, holdout, spec.label_column)
            results.append(CycleResult(0, spec.initial_labels, accuracy, version, "initial"))
            progress(
                f"cycle 0: v{v1.version} trained on {spec.initial_labels} labels, holdout accuracy {accuracy:.3f}"
            )
            features = v1.feature_columns
            labels_used = spec.initial_labels
            offset = 0
            truth: dict[str, str] = {}  # trace id -> true label, known only to the simulated reviewers
            for cycle in range(1, spec.cycles + 1):
                batch = stream.iloc[offset : offset + spec.batch_size]
                offset += len(batch)
                if batch.empty:
                    progress(f"cycle {cycle}: no unlabelled rows left; stopping")
                    break
                pending = enqueue_with_truth(
                    conn, model.name, batch, features, spec.slice_column, spec.label_column
                )
                inference.score_batch(
                    conn, model, threshold=1.0, batch_size=len(batch), run_id=f"sim-{cycle}"
                )
                truth.update(resolve_truth(conn, pending))
                tasks = inference.open_reviews(
                    conn,
                    model,
                    budget=spec.review_budget,
                    hitl_ref={"simulation_cycle": cycle},
                    strategy=strategy,
                    seed=spec.seed * 1000 + cycle,
                )
                traces = _traces_of_items(conn, [t["review_item_id"] for t in tasks])
                corrected = 0
                for task in tasks:
                    true_label = truth[traces[task["review_item_id"]]]
                    answer = simulated_answer(task, true_label, classes, spec.reviewer_noise, rng)
                    outcome = inference.record_answer(conn, task["review_item_id"], answer)
                    corrected += outcome.feedback is not None and outcome.feedback.kind == "correction"
                conn.commit()
                labels_used += len(tasks)
                params = planning.resolve_params(
                    model, reason=f"simulation cycle {cycle}", triggered_by="simulate"
                )
                outcome = pipeline.run(conn, model, params, url=url)
                version, accuracy = holdout_accuracy(conn, model.name, holdout, spec.label_column)
                gate = "promoted" if outcome.promoted else "rejected"
                reasons = list(outcome.gate.get("reasons", [])) if not outcome.promoted else []
                results.append(
                    CycleResult(cycle, labels_used, accuracy, version, gate, len(tasks), corrected, reasons)
                )
                progress(
                    f"cycle {cycle}: {len(tasks)} reviewed ({corrected} corrections), candidate {gate}, "
                    f"champion v{version}, holdout accuracy {accuracy:.3f}"
                )
    first, last = results[0], results[-1]
    best = max(results, key=lambda r: r.accuracy)
    return {
        "spec": {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.__dict__.items()},
        "holdout_rows": int(len(holdout)),
        "cycles": [
            {
                "cycle": r.cycle,
                "labels_used": r.labels_used,
                "accuracy": round(r.accuracy, 6),
                "champion_version": r.champion_version,
                "gate": r.gate,
                "reviewed": r.reviewed,
                "corrected": r.corrected,
                **({"reasons": r.reasons} if r.reasons else {}),
            }
            for r in results
        ],
        "final": {
            "champion_version": last.champion_version,
            "accuracy": round(last.accuracy, 6),
            "initial_accuracy": round(first.accuracy, 6),
            "improvement": round(last.accuracy - first.accuracy, 6),
            "labels_used": last.labels_used,
            "promotions": sum(r.gate == "promoted" for r in results),
            "rejections": sum(r.gate == "rejected" for r in results),
            "best_accuracy": round(best.accuracy, 6),
        },
    }


@dataclass(frozen=True)
class PendingTruth:
    """Requests just enqueued for one model, and their true labels in enqueue order."""

    model_name: str
    after_id: int
    labels: list[str]


def enqueue_with_truth(
    conn, model_name: str, batch, features: list[str], slice_column: str | None, label_column: str
) -> PendingTruth:
    """Enqueue `batch` as inference requests (without its labels) and commit; the labels stay with the
    caller, so reviewers are the only way a label reaches the model, as in production."""
    after_id = conn.execute(queries.sql("simulate/last_request_id")).fetchone()["id"]
    inference.enqueue_requests(conn, model_name, _rows(batch, features, slice_column))
    conn.commit()
    return PendingTruth(model_name, int(after_id), batch[label_column].tolist())


def resolve_truth(conn, pending: PendingTruth, *, require_all: bool = True) -> dict[str, str]:
    """trace id -> true label for the requests of `pending` scored so far (request ids follow the enqueue
    order). `require_all=False` tolerates requests not scored yet (polling a running DAG)."""
    rows = conn.execute(
        queries.sql("simulate/requests_after"),
        {"after_id": pending.after_id, "model_name": pending.model_name},
    ).fetchall()
    if require_all and len(rows) != len(pending.labels):
        raise InvalidInputError(f"expected {len(pending.labels)} new inference requests, found {len(rows)}")
    return {
        str(row["trace_id"]): label
        for row, label in zip(rows, pending.labels, strict=False)
        if row["trace_id"]
    }


def _traces_of_items(conn, item_ids: list[int]) -> dict[int, str]:
    rows = conn.execute(queries.sql("simulate/traces_of_items"), {"ids": item_ids}).fetchall()
    return {int(row["id"]): str(row["trace_id"]) for row in rows}


def all_labels_accuracy(spec: SimulationSpec) -> float:
    """Holdout accuracy of the configured pipeline trained on every non-holdout row with clean labels:
    the ceiling the loop's label efficiency is measured against."""
    from feedback_loop.retrain import training
    from feedback_loop.retrain.features import feature_spec

    frame = load_frame(spec)
    holdout, initial, stream = split(frame, spec)
    import pandas as pd

    pool = pd.concat([initial, stream], ignore_index=True)
    model = model_config(spec, Path("unused.csv"), "ceiling")
    features = feature_spec(model, pool)
    estimator = training.fit(model, pool, features)
    predicted = estimator.predict(holdout[features.features]).astype(str)
    return float((predicted == holdout[spec.label_column].to_numpy()).mean())


def labels_to_reach(cycles: list[dict[str, Any]], target: float) -> int | None:
    """Labels used when the champion first reached `target` holdout accuracy (None: never)."""
    for cycle in cycles:
        if cycle["accuracy"] >= target:
            return int(cycle["labels_used"])
    return None
