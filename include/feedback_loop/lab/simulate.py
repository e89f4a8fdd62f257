"""The closed loop without the scheduler: the same library code the DAGs run, on a real PostgreSQL.

Each cycle: a batch of unlabelled rows arrives and is scored by the champion (scoring.score_batch); the
review budget goes to gold, audit, second-opinion and low-confidence questions (reviews.open_reviews, the
least confident first or a random sample); a pool of simulated reviewers, each with their own noise,
answers them (reviews.record_answer, which keeps the consensus labels); then the model is retrained,
gated and promoted (pipeline.run). Accuracy is always measured on a stratified 30% holdout no model ever
trains on. Gate, review and training settings are the shipped config's.

`--strategy bare` runs the loop without the product for comparison: the least confident rows, one answer
each, retrained on every label collected, no gate, no consensus, no database.

The product's run uses its own throwaway database and artifact folder on the resolved PostgreSQL server
and drops them at the end, so a simulation never touches the feedback data of a real deployment.
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
from feedback_loop.inference import review, reviews, scoring
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import baseline, datasets, pipeline, planning

STRATEGIES = {"uncertainty": "lowest_confidence", "random": "random", "bare": "lowest_confidence"}
BARE = "bare"
HOLDOUT_SHARE = 0.3
TEMPLATE_MODEL = "digits"  # the shipped config's model whose settings every simulated model takes


@dataclass(frozen=True)
class SimulationSpec:
    """One simulated loop. Gate, review and training settings are the shipped config's (those of its
    `digits` model), so the simulator meets what users meet; only the experiment's own variables are
    here: the data, the people (their number and noise) and how much of their time each cycle gets."""

    data: str  # a CSV/Parquet path, or "digits"
    label_column: str
    slice_column: str | None = None
    drop_columns: tuple[str, ...] = ()
    initial_labels: int = 100
    cycles: int = 5
    batch_size: int = 200
    review_budget: int = 20
    reviewers: tuple[float, ...] = (0.1, 0.1, 0.1)  # each simulated reviewer's share of wrong answers
    strategy: str = "uncertainty"
    seed: int = 0
    # Per cycle, how many answers the bare loop may use (the product's counts, for equal human effort).
    answers_per_cycle: tuple[int, ...] | None = None
    gold_share: float | None = None  # None: the config's value
    audit_share: float | None = None
    max_reviews_per_item: int | None = None
    max_feedback_share: float | None = None

    def validate(self) -> None:
        checks = [
            (self.initial_labels >= 10, "--initial-labels must be at least 10"),
            (self.cycles >= 0, "--cycles must be >= 0"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.review_budget >= 1, "--review-budget must be >= 1"),
            (len(self.reviewers) >= 1, "--reviewers must list at least one reviewer"),
            (all(0 <= n < 1 for n in self.reviewers), "--reviewers: each noise must be in [0, 1)"),
            (self.strategy in STRATEGIES, f"--strategy must be one of {', '.join(STRATEGIES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidInputError(message)


@dataclass
class CycleResult:
    cycle: int
    answers: int  # reviewer answers used so far (the human effort)
    labelled: int  # labelled rows the model could learn from so far (initial labels + labelled traces)
    accuracy: float
    champion_version: int
    gate: str
    reviewed: int = 0  # answers this cycle
    corrected: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
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


def reviewer_names(spec: SimulationSpec) -> list[str]:
    return [f"sim-reviewer-{i}" for i in range(1, len(spec.reviewers) + 1)]


def model_config(spec: SimulationSpec, base_path: Path, name: str) -> config.ModelConfig:
    """The shipped config's model settings (gate, review, threshold, feedback share, estimator), on the
    simulated data and its reviewers."""
    template = config.load(config.shipped_path()).model(TEMPLATE_MODEL)
    review = template.review.model_copy(
        update={
            key: value
            for key, value in (
                ("gold_share", spec.gold_share),
                ("audit_share", spec.audit_share),
                ("max_reviews_per_item", spec.max_reviews_per_item),
            )
            if value is not None
        }
    )
    return template.model_copy(
        update={
            "name": name,
            "label_column": spec.label_column,
            "feature_columns": "all",
            "categorical_columns": [],
            "slice_columns": [spec.slice_column] if spec.slice_column else [],
            "drop_columns": [],
            "training_data": config.TrainingData(path=str(base_path)),
            "seed": spec.seed,
            "review_budget": spec.review_budget,
            "reviewers": reviewer_names(spec),
            "review": review,
            **(
                {"max_feedback_share": spec.max_feedback_share} if spec.max_feedback_share is not None else {}
            ),
        }
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


class Reviewers:
    """Simulated people: each gives the true label except, with their own noise, another class at random."""

    def __init__(self, spec: SimulationSpec, classes: list[str], rng: random.Random) -> None:
        self.noise = dict(zip(reviewer_names(spec), spec.reviewers, strict=True))
        self.classes, self.rng = classes, rng

    def pick(self, allowed: list[str] | None) -> str:
        return self.rng.choice(allowed or list(self.noise))

    def label(self, reviewer: str, truth: str) -> str:
        if self.rng.random() < self.noise[reviewer]:
            return self.rng.choice([c for c in self.classes if c != truth] or [truth])
        return truth

    def answer(self, task: dict[str, Any], truth: str) -> review.Answer:
        reviewer = self.pick(task.get("reviewers"))
        label = self.label(reviewer, truth)
        if label in task["options"] and label not in review.RESERVED_OPTIONS:
            chosen, params = [label], {}
        else:
            chosen, params = [review.NONE_OF_THESE], {review.CORRECTED_LABEL: label}
        return review.Answer(
            chosen_options=chosen,
            params_input=params,
            responded_at=datetime.now(UTC),
            responded_by={"id": reviewer},
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


class ProductLoop:
    """The product's loop on one data set: the library code the DAGs run, cycle by cycle."""

    def __init__(self, spec: SimulationSpec, conn, url: str, base_path: Path, parts, progress) -> None:
        self.spec, self.conn, self.url, self.progress = spec, conn, url, progress
        self.holdout, self.initial, self.stream, self.classes = parts
        self.model = model_config(spec, base_path, f"sim-{spec.strategy}-s{spec.seed}")
        self.people = Reviewers(spec, self.classes, random.Random(spec.seed))
        self.truth: dict[str, str] = {}  # trace id -> true label, known only to the simulated reviewers
        self.answers = 0
        self.offset = 0

    def first_version(self) -> CycleResult:
        v1 = baseline.train_and_register(
            self.conn,
            self.model,
            created_by="simulate",
            promote=True,
            reason="simulation: v1 on the initial labels",
        )
        self.features = v1.feature_columns
        version, accuracy = holdout_accuracy(self.conn, self.model.name, self.holdout, self.spec.label_column)
        self.progress(
            f"cycle 0: v{v1.version} trained on {self.spec.initial_labels} labels, holdout accuracy {accuracy:.3f}"
        )
        return CycleResult(0, 0, self.spec.initial_labels, accuracy, version, "initial")

    def score_next_batch(self, cycle: int) -> bool:
        batch = self.stream.iloc[self.offset : self.offset + self.spec.batch_size]
        self.offset += len(batch)
        if batch.empty:
            return False
        pending = enqueue_with_truth(
            self.conn, self.model.name, batch, self.features, self.spec.slice_column, self.spec.label_column
        )
        scoring.score_batch(
            self.conn,
            self.model,
            threshold=self.model.confidence_threshold,
            batch_size=len(batch),
            run_id=f"sim-{cycle}",
        )
        self.truth.update(resolve_truth(self.conn, pending))
        return True

    def review(self, cycle: int) -> tuple[int, int, dict[str, int]]:
        tasks = reviews.open_reviews(
            self.conn,
            self.model,
            budget=self.spec.review_budget,
            hitl_ref={"simulation_cycle": cycle},
            strategy=STRATEGIES[self.spec.strategy],
            seed=self.spec.seed * 1000 + cycle,
            scored_run_id=f"sim-{cycle}",
        )
        traces = _traces_of_items(self.conn, [t["review_item_id"] for t in tasks])
        corrected, by_reason = 0, {}
        for task in tasks:
            answer = self.people.answer(task, self.truth[traces[task["review_item_id"]]])
            outcome = reviews.record_answer(self.conn, task["review_item_id"], answer, self.model)
            corrected += outcome.feedback is not None and outcome.feedback.kind == "correction"
            by_reason[task["reason"]] = by_reason.get(task["reason"], 0) + 1
        self.conn.commit()
        self.answers += len(tasks)
        return len(tasks), corrected, by_reason

    def retrain(self, cycle: int) -> planning.RunParams:
        params = planning.resolve_params(
            self.model, reason=f"simulation cycle {cycle}", triggered_by="simulate"
        )
        return pipeline.run(self.conn, self.model, params, url=self.url)

    def cycle(self, cycle: int) -> CycleResult | None:
        if not self.score_next_batch(cycle):
            self.progress(f"cycle {cycle}: no unlabelled rows left; stopping")
            return None
        reviewed, corrected, by_reason = self.review(cycle)
        outcome = self.retrain(cycle)
        version, accuracy = holdout_accuracy(self.conn, self.model.name, self.holdout, self.spec.label_column)
        gate = "promoted" if outcome.promoted else ("skipped" if outcome.status == "skipped" else "rejected")
        labelled = self.spec.initial_labels + int(outcome.snapshot.get("feedback", {}).get("rows", 0))
        self.progress(
            f"cycle {cycle}: {reviewed} answers ({corrected} corrections; {by_reason}), candidate {gate}, "
            f"champion v{version}, holdout accuracy {accuracy:.3f}"
        )
        reasons = list(outcome.gate.get("reasons", [])) if gate == "rejected" else []
        return CycleResult(
            cycle, self.answers, labelled, accuracy, version, gate, reviewed, corrected, by_reason, reasons
        )


class BareLoop:
    """The loop without the product: lowest-confidence routing, one answer per item from a random
    reviewer, retrained on every label collected, promoted whatever it scores. No database."""

    def __init__(self, spec: SimulationSpec, parts, progress) -> None:
        self.spec, self.progress = spec, progress
        self.holdout, self.initial, self.stream, self.classes = parts
        self.model = model_config(spec, Path("unused.csv"), "bare")
        self.people = Reviewers(spec, self.classes, random.Random(spec.seed))
        self.queue: list[tuple[float, int]] = []  # (confidence when scored, stream row)
        self.labels: dict[int, str] = {}
        self.offset = 0

    def fit(self) -> None:
        from feedback_loop.retrain import training
        from feedback_loop.retrain.features import feature_spec

        answered = self.stream.iloc[sorted(self.labels)].assign(
            **{self.spec.label_column: [self.labels[i] for i in sorted(self.labels)]}
        )
        frame = pd_concat([self.initial, answered])
        self.features = feature_spec(self.model, frame)
        self.estimator = training.fit(self.model, frame, self.features)

    def accuracy(self) -> float:
        predicted = self.estimator.predict(self.holdout[self.features.features]).astype(str)
        return float((predicted == self.holdout[self.spec.label_column].to_numpy()).mean())

    def first_version(self) -> CycleResult:
        self.fit()
        accuracy = self.accuracy()
        self.progress(
            f"cycle 0 (bare): trained on {self.spec.initial_labels} labels, holdout accuracy {accuracy:.3f}"
        )
        return CycleResult(0, 0, self.spec.initial_labels, accuracy, 1, "initial")

    def cycle(self, cycle: int) -> CycleResult | None:
        batch = self.stream.iloc[self.offset : self.offset + self.spec.batch_size]
        if batch.empty:
            return None
        confidence = self.estimator.predict_proba(batch[self.features.features]).max(axis=1)
        self.queue += [(float(c), self.offset + i) for i, c in enumerate(confidence)]
        self.offset += len(batch)
        budget = self.spec.review_budget
        if self.spec.answers_per_cycle is not None:
            budget = (
                self.spec.answers_per_cycle[cycle - 1] if cycle <= len(self.spec.answers_per_cycle) else 0
            )
        self.queue.sort()
        chosen, self.queue = self.queue[:budget], self.queue[budget:]
        truth = self.stream[self.spec.label_column]
        for _, row in chosen:
            self.labels[row] = self.people.label(self.people.pick(None), truth.iloc[row])
        self.fit()
        accuracy = self.accuracy()
        answers = len(self.labels)
        self.progress(f"cycle {cycle} (bare): {len(chosen)} answers, holdout accuracy {accuracy:.3f}")
        return CycleResult(
            cycle, answers, self.spec.initial_labels + answers, accuracy, cycle + 1, "promoted", len(chosen)
        )


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def run(spec: SimulationSpec, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the simulation; returns {"spec": ..., "cycles": [...], "final": {...}}."""
    spec.validate()
    frame = load_frame(spec)
    holdout, initial, stream = split(frame, spec)
    parts = (holdout, initial, stream, sorted(frame[spec.label_column].unique()))
    if spec.strategy == BARE:
        loop = BareLoop(spec, parts, progress)
        results = _cycles(loop, spec)
    else:
        with (
            scratch_database() as url,
            tempfile.TemporaryDirectory(prefix="fl-simulate-base-") as tmp,
            scoring.seeded_trace_ids(spec.seed),
        ):
            base_path = Path(tmp) / "initial_labels.csv"
            initial.to_csv(base_path, index=False)
            with db.connect(url) as conn:
                results = _cycles(ProductLoop(spec, conn, url, base_path, parts, progress), spec)
    return report(spec, results, holdout_rows=len(holdout))


def _cycles(loop, spec: SimulationSpec) -> list[CycleResult]:
    results = [loop.first_version()]
    for cycle in range(1, spec.cycles + 1):
        result = loop.cycle(cycle)
        if result is None:
            break
        results.append(result)
    return results


def report(spec: SimulationSpec, results: list[CycleResult], *, holdout_rows: int) -> dict[str, Any]:
    first, last = results[0], results[-1]
    best = max(results, key=lambda r: r.accuracy)
    return {
        "spec": {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.__dict__.items()},
        "holdout_rows": int(holdout_rows),
        "cycles": [
            {
                "cycle": r.cycle,
                "answers": r.answers,
                "labelled": r.labelled,
                "accuracy": round(r.accuracy, 6),
                "champion_version": r.champion_version,
                "gate": r.gate,
                "reviewed": r.reviewed,
                "corrected": r.corrected,
                **({"by_reason": r.by_reason} if r.by_reason else {}),
                **({"reasons": r.reasons} if r.reasons else {}),
            }
            for r in results
        ],
        "final": {
            "champion_version": last.champion_version,
            "accuracy": round(last.accuracy, 6),
            "initial_accuracy": round(first.accuracy, 6),
            "improvement": round(last.accuracy - first.accuracy, 6),
            "answers": last.answers,
            "labelled": last.labelled,
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
    scoring.enqueue_requests(conn, model_name, _rows(batch, features, slice_column))
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


def answers_to_reach(cycles: list[dict[str, Any]], target: float) -> int | None:
    """Reviewer answers used when the champion first reached `target` holdout accuracy (None: never)."""
    for cycle in cycles:
        if cycle["accuracy"] >= target:
            return int(cycle["answers"])
    return None
