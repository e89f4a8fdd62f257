"""Training data for a retrain: the model's base set plus labels derived from human feedback.

Which feedback becomes a label (documented in docs/architecture.md, "Retraining and gate"):

* A prediction is *confirmed* (label = the predicted label) by a thumbs up, a rating >= min_rating, or a
  labelled answer equal to the prediction (e.g. a reviewer choosing the predicted option).
* A prediction is *corrected* by a labelled answer that differs from it (API corrections, review answers).
* A thumbs down or a rating <= 2 says "wrong" without saying what is right.

Conflicting feedback for one trace is resolved by `resolve()`:

1. Reviewer answers (source 'review') outrank end-user feedback: if any usable review answer exists,
   only review answers vote.
2. One vote per person: a user's latest vote counts; anonymous feedback counts per row.
3. Agree (confirmations) against disagree (corrections + thumbs down/low ratings): the majority wins.
   A tie goes to the latest correction, if there is one; otherwise the trace is dropped as a conflict.
4. When disagree wins, the corrected label with the most votes is used; a tie goes to the latest
   correction among the tied labels. No corrected label at all: dropped (wrong, but nobody said what is
   right).

Dropped traces are counted in the snapshot. The pull streams from a server-side cursor (one row per trace,
the prediction's input once), building the frame chunk by chunk; the result set is never held whole.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from feedback_loop.core import queries
from feedback_loop.labels import store as labels
from feedback_loop.retrain import datasets

if TYPE_CHECKING:
    import pandas as pd

    from feedback_loop.core.config import ModelConfig

log = logging.getLogger(__name__)

REJECT = object()  # a vote saying "the prediction is wrong" without a label
HOLDOUT_SHARE = 0.25  # the same share baseline/training.train hold back, so v1's holdout is ours too
CHUNK_ROWS = 1_000
TRACE_COLUMN = "_trace_id"
ORIGIN_COLUMN = "_origin"  # 'base' | 'confirmed' | 'corrected'
WEIGHT_COLUMN = "_weight"  # how much a row counts when the model is fitted (base rows: 1)


@dataclass(frozen=True)
class Vote:
    feedback_id: int
    kind: str
    rating: int | None = None
    label: str | None = None
    source: str = "api"
    user_id: str | None = None


@dataclass(frozen=True)
class Resolution:
    """What a trace's feedback says: a label, or why there is none."""

    label: str | None
    outcome: str  # confirmed | corrected | conflict | negative_without_label | no_signal | unreliable
    feedback_id: int | None = None  # provenance: the latest vote carrying the winning label
    voters: int = 0
    disputed: bool = False  # voters disagreed, and the rule above settled it
    agreeing: int = 0  # distinct people behind the winning label
    weight: float = 1.0  # how much the label counts in training: the consensus probability for reviews


def interpret(vote: Vote, predicted: str, min_rating: int, include_corrections: bool) -> Any:
    """The label a vote stands for: a class, REJECT, or None when it says nothing usable."""
    if vote.label is not None:
        if vote.label == predicted:
            return predicted
        return vote.label if include_corrections else None
    if vote.kind == "thumbs_up":
        return predicted
    if vote.kind == "thumbs_down":
        return REJECT
    if vote.kind == "rating" and vote.rating is not None:
        if vote.rating >= min_rating:
            return predicted
        if vote.rating <= 2:
            return REJECT
    return None


def resolve(
    votes: Sequence[Vote], predicted: str, *, min_rating: int = 4, include_corrections: bool = True
) -> Resolution:
    """Apply the documented rule to one trace's votes (oldest first)."""
    interpreted = [(v, interpret(v, predicted, min_rating, include_corrections)) for v in votes]
    usable = [(v, lab) for v, lab in interpreted if lab is not None]
    if not usable:
        return Resolution(None, "no_signal")
    reviewed = [(v, lab) for v, lab in usable if v.source == "review"]
    tier = reviewed or usable
    latest: dict[str, tuple[Vote, Any]] = {}
    for vote, lab in tier:  # oldest first, so a person's latest vote overwrites earlier ones
        latest[vote.user_id if vote.user_id else f"#{vote.feedback_id}"] = (vote, lab)
    ballots = sorted(latest.values(), key=lambda item: item[0].feedback_id)
    corrections = [(v, lab) for v, lab in ballots if lab is not REJECT and lab != predicted]
    agree = sum(1 for _, lab in ballots if lab == predicted)
    disagree = len(ballots) - agree
    disputed = (agree > 0 and disagree > 0) or len({lab for _, lab in corrections}) > 1

    def provenance(label: str) -> int:
        return max(v.feedback_id for v, lab in ballots if lab == label)

    def behind(label: str) -> int:
        return sum(1 for _, lab in ballots if lab == label)

    if agree > disagree:
        return Resolution(predicted, "confirmed", provenance(predicted), len(ballots), disputed, agree)
    if agree == disagree:
        if not corrections:
            return Resolution(None, "conflict", None, len(ballots), True)
        winner = corrections[-1][1]
        return Resolution(winner, "corrected", provenance(winner), len(ballots), True, behind(winner))
    if not corrections:
        return Resolution(None, "negative_without_label", None, len(ballots), disputed)
    counts = Counter(lab for _, lab in corrections)
    top = max(counts.values())
    tied = {lab for lab, n in counts.items() if n == top}
    winner = next(lab for _, lab in reversed(corrections) if lab in tied)
    return Resolution(winner, "corrected", provenance(winner), len(ballots), disputed, behind(winner))


def from_consensus(
    row: dict[str, Any], votes: Sequence[Vote], unreliable: Collection[str] = ()
) -> Resolution:
    """A reviewed trace's label: its consensus (labels.store), weighted by the consensus probability. One
    answer from `unreliable` reviewers (credibly below the accuracy floor) stops counting until someone
    agrees."""
    label, predicted = row["consensus_label"], row["output_label"]
    reviewers = list(row["consensus_reviewers"] or [])
    corroborated = row["consensus_status"] == "corroborated"
    if not corroborated and reviewers and all(r in unreliable for r in reviewers):
        return Resolution(None, "unreliable", None, len(reviewers))
    said = [interpret(v, predicted, 1, True) for v in votes if v.source == "review"]
    disputed = any(x is not None and x != label for x in said)
    carrying = [
        v.feedback_id
        for v in votes
        if v.source == "review"
        and (v.label == label or (v.label is None and v.kind == "thumbs_up" and label == predicted))
    ]
    return Resolution(
        label,
        "confirmed" if label == predicted else "corrected",
        max(carrying) if carrying else max(v.feedback_id for v in votes),
        len(reviewers),
        disputed,
        2 if corroborated else 1,
        float(row["consensus_probability"]),
    )


@dataclass
class FeedbackPull:
    """Feedback-derived rows (columns = the base columns + TRACE_COLUMN + ORIGIN_COLUMN) and the counts."""

    frame: pd.DataFrame
    counts: dict[str, int]
    corrected: list[dict[str, Any]] = field(default_factory=list)  # for eval cases: trace, labels, provenance


def _votes(row: dict[str, Any]) -> list[Vote]:
    return [
        Vote(feedback_id=i, kind=k, rating=r, label=lab, source=s, user_id=u)
        for i, k, r, lab, s, u in zip(
            row["ids"],
            row["kinds"],
            row["ratings"],
            row["labels"],
            row["sources"],
            row["user_ids"],
            strict=True,
        )
    ]


def stream_feedback(
    conn: psycopg.Connection, model_name: str, start: datetime, end: datetime, itersize: int = 1_000
) -> Iterator[dict[str, Any]]:
    """One row per trace with feedback in [start, end), via a server-side cursor (inside a transaction)."""
    params = {"model_name": model_name, "start": start, "end": end}
    with conn.transaction(), conn.cursor(name=f"feedback_votes_{model_name}"[:60]) as cursor:
        cursor.itersize = itersize
        cursor.execute(queries.sql("retraining/feedback_votes"), params)
        yield from cursor


def _empty_frame(columns: list[str], label: str) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=[*columns, label, TRACE_COLUMN, ORIGIN_COLUMN, WEIGHT_COLUMN])


def pull_feedback(
    conn: psycopg.Connection,
    model: ModelConfig,
    columns: list[str],
    *,
    start: datetime,
    end: datetime,
    min_rating: int,
    include_corrections: bool,
    numeric_columns: Sequence[str] = (),
    chunk_rows: int = CHUNK_ROWS,
    unreliable: Collection[str] = (),
) -> FeedbackPull:
    """Stream feedback, resolve one label per trace and build rows with the base data's `columns`.

    Reviewed traces take their consensus label, weighted by its probability; traces with end-user
    feedback only follow `resolve`. Features come from the prediction's logged input, slice attributes
    from its slice; columns the input lacks become missing values (the pipeline imputes them), keys the
    model does not know are ignored. `unreliable`: reviewers credibly below the accuracy floor.
    """
    import pandas as pd

    label = model.label_column
    counts: Counter[str] = Counter()
    chunks: list[pd.DataFrame] = []
    buffer: list[tuple] = []
    corrected: list[dict[str, Any]] = []
    out_columns = [*columns, label, TRACE_COLUMN, ORIGIN_COLUMN, WEIGHT_COLUMN]

    def flush() -> None:
        if buffer:
            chunk = pd.DataFrame.from_records(buffer, columns=out_columns)
            for column in numeric_columns:
                chunk[column] = pd.to_numeric(chunk[column], errors="coerce")
            chunks.append(chunk)
            buffer.clear()

    for row in stream_feedback(conn, model.name, start, end):
        counts["traces"] += 1
        votes = _votes(row)
        if row.get("consensus_label") is not None:
            resolution = from_consensus(row, votes, unreliable)
            if resolution.outcome == "corrected" and not include_corrections:
                resolution = Resolution(None, "no_signal", voters=resolution.voters)
            counts["consensus_" + str(row["consensus_status"])] += 1
        else:
            resolution = resolve(
                votes, row["output_label"], min_rating=min_rating, include_corrections=include_corrections
            )
        counts[resolution.outcome] += 1
        if resolution.disputed and resolution.label is not None:
            counts["disputes_resolved"] += 1
        if resolution.label is None:
            continue
        values = {**(row["input"] or {}), **(row["slice"] or {})}
        buffer.append(
            (
                *(values.get(c) for c in columns),
                resolution.label,
                row["trace_id"],
                resolution.outcome,
                resolution.weight,
            )
        )
        if resolution.outcome == "corrected":
            corrected.append(
                {
                    "trace_id": row["trace_id"],
                    "expected_label": resolution.label,
                    "wrong_label": row["output_label"],
                    "feedback_id": resolution.feedback_id,
                    # Only what two people agree on becomes must-pass: one reviewer's slip would block
                    # every later candidate that gets the input right.
                    "corroborated": resolution.agreeing >= 2,
                }
            )
        if len(buffer) >= chunk_rows:
            flush()
    flush()
    frame = pd.concat(chunks, ignore_index=True) if chunks else _empty_frame(columns, label)
    return FeedbackPull(frame=frame, counts=dict(counts), corrected=corrected)


def feedback_cap(base_rows: int, max_share: float) -> int | None:
    """Most feedback rows allowed so they are at most `max_share` of the training set (None: no cap)."""
    if max_share >= 1:
        return None
    return math.floor(max_share * base_rows / (1 - max_share) + 1e-9)


def apply_cap(frame: pd.DataFrame, limit: int | None, seed: int) -> tuple[pd.DataFrame, int]:
    """Keep at most `limit` rows: corrections first (they carry what the model got wrong), then
    confirmations, each in a seed-determined order of trace ids. Returns (kept, dropped)."""
    if limit is None or len(frame) <= limit:
        return frame, 0
    order = frame.assign(
        _priority=(frame[ORIGIN_COLUMN] != "corrected").astype(int),
        _key=[hashlib.sha256(f"{seed}:{t}".encode()).hexdigest() for t in frame[TRACE_COLUMN]],
    ).sort_values(["_priority", "_key"])
    kept = order.head(limit).drop(columns=["_priority", "_key"])
    return kept.sort_values(TRACE_COLUMN).reset_index(drop=True), len(frame) - limit


def split_base(base: pd.DataFrame, model: ModelConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of the base data: the split training.train makes for the same seed, so the
    holdout of every retrain is the one v1 was evaluated on and never trained on."""
    from sklearn.model_selection import train_test_split

    counts = base[model.label_column].value_counts()
    stratify = base[model.label_column] if counts.min() >= 2 else None
    train, holdout = train_test_split(
        base, test_size=HOLDOUT_SHARE, random_state=model.seed, stratify=stratify
    )
    return train, holdout


def load_base(conn: psycopg.Connection, model: ModelConfig) -> pd.DataFrame:
    """The configured base set; a SQL source is streamed through a server-side cursor in chunks."""
    if not model.training_data.query:
        return datasets.load_training_data(model, conn)
    import pandas as pd

    from feedback_loop.core.errors import ConfigError

    chunks: list[pd.DataFrame] = []
    with datasets.configured_query(
        conn, model, cursor_name=f"base_{model.name}"[:60], itersize=CHUNK_ROWS
    ) as cursor:
        while rows := cursor.fetchmany(CHUNK_ROWS):
            chunks.append(pd.DataFrame.from_records(rows))
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    if model.label_column not in frame.columns:
        raise ConfigError(
            f"model {model.name!r}: label_column {model.label_column!r} is not in the query result"
        )
    frame = frame.dropna(subset=[model.label_column])
    frame[model.label_column] = frame[model.label_column].astype(str)
    if model.training_data.limit:
        frame = datasets.stratified_head(frame, model.label_column, model.training_data.limit, model.seed)
    return frame.reset_index(drop=True)


def same_training_data(snapshot: dict[str, Any], earlier: dict[str, Any]) -> bool:
    """Do two training-set snapshots hold the same base rows and the same feedback labels and weights?
    (Snapshots written before labels were hashed never compare equal.)"""
    ours, theirs = snapshot.get("feedback") or {}, earlier.get("feedback") or {}
    return (
        bool(ours.get("labels_sha256"))
        and ours.get("labels_sha256") == theirs.get("labels_sha256")
        and (snapshot.get("base") or {}).get("rows_sha256") == (earlier.get("base") or {}).get("rows_sha256")
    )


@dataclass
class TrainingSet:
    train: pd.DataFrame  # base train rows + capped feedback rows, model columns only
    holdout: pd.DataFrame  # base rows never trained on (by this run or by v1)
    feedback: FeedbackPull
    snapshot: dict[str, Any]
    weights: list[float] = field(default_factory=list)  # per train row: 1 for base rows, the label's weight

    @property
    def feedback_rows(self) -> int:
        return int(self.snapshot["feedback"]["rows"])


def _ids_sha256(ids: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for trace_id in sorted(ids):
        digest.update(trace_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def build(
    conn: psycopg.Connection,
    model: ModelConfig,
    *,
    start: datetime,
    end: datetime,
    min_rating: int,
    include_corrections: bool,
) -> TrainingSet:
    """Base data + feedback labels, capped, with the snapshot recorded in training_runs and the version."""
    import pandas as pd

    from feedback_loop.retrain.baseline import data_snapshot

    label = model.label_column
    base = load_base(conn, model)
    base_train, holdout = split_base(base, model)
    columns = [str(c) for c in base.columns if c != label]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(base[c])]
    reviewers = labels.refresh(conn, model).reviewers  # consensus and reliability from every answer so far
    floor = model.review.min_reviewer_accuracy
    pulled = pull_feedback(
        conn,
        model,
        columns,
        start=start,
        end=end,
        min_rating=min_rating,
        include_corrections=include_corrections,
        numeric_columns=numeric,
        unreliable={r.reviewer for r in reviewers if r.accuracy_upper < floor},
    )
    limit = feedback_cap(len(base_train), model.max_feedback_share)
    kept, dropped = apply_cap(pulled.frame, limit, model.seed)
    kept_ids = set(kept[TRACE_COLUMN])
    pulled.corrected = [c for c in pulled.corrected if c["trace_id"] in kept_ids]
    feedback_part = kept.drop(columns=[TRACE_COLUMN, ORIGIN_COLUMN, WEIGHT_COLUMN])
    for column in columns:  # align dtypes so concat keeps numeric columns numeric
        if column in numeric:
            feedback_part[column] = feedback_part[column].astype(float)
    train = pd.concat([base_train, feedback_part], ignore_index=True) if len(kept) else base_train
    train = train.reset_index(drop=True)
    source = model.training_data.bundled or model.training_data.path or "query"
    origins = kept[ORIGIN_COLUMN].value_counts()
    snapshot = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "min_rating": min_rating,
        "include_corrections": include_corrections,
        "rows": int(len(train)),
        "class_counts": {str(k): int(v) for k, v in train[label].value_counts().sort_index().items()},
        "base": data_snapshot(base_train, model, f"base:{source}") | {"holdout_rows": int(len(holdout))},
        "holdout_sha256": data_snapshot(holdout, model, "holdout")["rows_sha256"],
        "feedback": {
            "rows": int(len(kept)),
            "confirmed": int(origins.get("confirmed", 0)),
            "corrected": int(origins.get("corrected", 0)),
            "traces_with_feedback": int(pulled.counts.get("traces", 0)),
            "labelled_before_cap": int(len(pulled.frame)),
            "dropped_by_cap": int(dropped),
            "cap_rows": limit,
            "max_feedback_share": model.max_feedback_share,
            "dropped_conflict": int(pulled.counts.get("conflict", 0)),
            "dropped_negative_without_label": int(pulled.counts.get("negative_without_label", 0)),
            "no_signal": int(pulled.counts.get("no_signal", 0)),
            "disputes_resolved": int(pulled.counts.get("disputes_resolved", 0)),
            "dropped_unreliable": int(pulled.counts.get("unreliable", 0)),
            "consensus": {
                status: int(pulled.counts.get(f"consensus_{status}", 0))
                for status in ("single", "corroborated", "contested", "settled")
            },
            "mean_weight": round(float(kept[WEIGHT_COLUMN].mean()), 6) if len(kept) else None,
            "trace_ids_sha256": _ids_sha256(list(kept_ids)),
            # What the model learns from the feedback: each trace's label and weight. Equal to the
            # champion's (and the same base rows) means a retrain would learn nothing new.
            "labels_sha256": _ids_sha256(
                [
                    f"{t}\t{lab}\t{w:.6f}"
                    for t, lab, w in zip(kept[TRACE_COLUMN], kept[label], kept[WEIGHT_COLUMN], strict=True)
                ]
            ),
        },
    }
    snapshot["feedback_share"] = round(len(kept) / len(train), 6) if len(train) else 0.0
    log.info(
        "%s: training set of %d rows (%d base, %d from feedback, %d dropped by the %.0f%% cap), holdout %d",
        model.name,
        len(train),
        len(base_train),
        len(kept),
        dropped,
        100 * model.max_feedback_share,
        len(holdout),
    )
    weights = [1.0] * len(base_train) + [float(w) for w in kept[WEIGHT_COLUMN]]
    return TrainingSet(
        train=train,
        holdout=holdout.reset_index(drop=True),
        feedback=pulled,
        snapshot=snapshot,
        weights=weights,
    )
