"""Which models one feedback_inference run serves, and with which threshold, review budget and batch size.

A run a person triggers serves the model in its form, with the form's values where given and the model's
configured ones otherwise. A scheduled run serves every model whose `schedules.inference` fires at the
run's time, each with its configured threshold and budget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg

from feedback_loop.core import schedules
from feedback_loop.core.config import ModelConfig, Settings
from feedback_loop.core.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from feedback_loop.inference import reviews, scoring

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
SCHEDULED = ("scheduled", "backfill")


@dataclass(frozen=True)
class Round:
    model_name: str
    threshold: float
    review_budget: int
    batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(settings: Settings, *, run_type: str, params: Mapping[str, Any], at: datetime) -> list[Round]:
    """The rounds of one run (empty when a scheduled run finds no model due)."""
    batch_size = params.get("batch_size")
    batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size: must be a positive integer, got {batch_size!r}")
    if run_type in SCHEDULED:
        models = schedules.due(settings.models, "inference", at)
        return [Round(m.name, m.confidence_threshold, m.review_budget, batch_size) for m in models]
    model = settings.model(params["model_name"])
    threshold = params.get("confidence_threshold")
    budget = params.get("review_budget")
    return [
        Round(
            model.name,
            model.confidence_threshold if threshold is None else float(threshold),
            model.review_budget if budget is None else int(budget),
            batch_size,
        )
    ]


@dataclass
class Scored:
    """What scoring did for the run's rounds: one summary per model scored, and the models that failed."""

    rounds: list[dict[str, Any]]
    failures: dict[str, str]

    def wants_review(self) -> bool:
        """Is there anything to ask: queued questions, or scored predictions to audit."""
        return any(
            r["review_budget"] > 0 and (r["queued_total"] > 0 or (r["scored"] > 0 and r.get("audits", 0) > 0))
            for r in self.rounds
        )

    def failure_text(self) -> str:
        return "; ".join(f"{name}: {reason}" for name, reason in self.failures.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Problems no retry can fix: a tampered artifact, a missing champion, a bad parameter or config.
PERMANENT = (IntegrityError, InvalidInputError, NotFoundError, ConfigError)


def score(conn: psycopg.Connection, settings: Settings, rounds: list[Round], *, run_id: str) -> Scored:
    """Score each round's model in turn; a model that cannot be scored is reported, the others still are.
    Transient errors (a lost connection) propagate so the caller can retry."""
    summaries: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for planned in rounds:
        try:
            result = scoring.score_batch(
                conn,
                settings.model(planned.model_name),
                threshold=planned.threshold,
                batch_size=planned.batch_size,
                run_id=run_id,
            )
        except PERMANENT as exc:
            conn.rollback()
            failures[planned.model_name] = str(exc)
            log.error("%s could not be scored: %s", planned.model_name, exc)
            continue
        summary = result.to_dict()
        del summary["trace_ids"]  # can be thousands; they are in `predictions` under the run id
        audits = reviews.Quotas.of(planned.review_budget, settings.model(planned.model_name)).audit
        summaries.append({**summary, "review_budget": planned.review_budget, "audits": audits})
    return Scored(summaries, failures)


def open_reviews(
    conn: psycopg.Connection, settings: Settings, scored: Scored, hitl_ref: Mapping[str, Any]
) -> list[tuple[ModelConfig, list[dict[str, Any]]]]:
    """Open each scored model's reviews within its budget. The map index of a review task counts across
    the models, in round order, so every item's hitl_ref names its own task."""
    opened: list[tuple[ModelConfig, list[dict[str, Any]]]] = []
    offset = 0
    for summary in scored.rounds:
        if summary["review_budget"] <= 0:
            continue
        model = settings.model(summary["model_name"])
        tasks = reviews.open_reviews(
            conn,
            model,
            budget=summary["review_budget"],
            hitl_ref=hitl_ref,
            threshold=summary["threshold"],
            first_map_index=offset,
            scored_run_id=hitl_ref.get("run_id"),
        )
        offset += len(tasks)
        opened.append((model, tasks))
    return opened
