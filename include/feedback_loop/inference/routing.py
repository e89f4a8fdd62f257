"""Which predictions go to human review: pure functions over plain data, no database, no Airflow.

The inference DAG asks humans about the predictions the model is least sure of, within a budget per run;
the `simulate` command reuses the same strategies to compare them (lowest confidence vs random sampling).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from feedback_loop.core.errors import InvalidInputError

LOWEST_CONFIDENCE = "lowest_confidence"
RANDOM = "random"
STRATEGIES = (LOWEST_CONFIDENCE, RANDOM)


@dataclass(frozen=True)
class Candidate:
    """A prediction waiting for review (a queued review item, or a prediction in a simulation)."""

    item_id: int
    confidence: float
    created_at: datetime | None = None


def below_threshold(confidences: Iterable[float], threshold: float) -> list[int]:
    """Positions of the confidences strictly below `threshold` (a confidence equal to it is trusted)."""
    if not 0 < threshold <= 1:
        raise InvalidInputError(f"confidence_threshold must be in (0, 1], got {threshold}")
    return [i for i, c in enumerate(confidences) if c < threshold]


def review_priority(confidence: float) -> float:
    """Priority stored on a review item: the less confident, the more urgent (1 - confidence)."""
    return round(1.0 - float(confidence), 12)


def choose(
    candidates: Sequence[Candidate],
    budget: int,
    strategy: str = LOWEST_CONFIDENCE,
    *,
    seed: int | None = None,
) -> list[Candidate]:
    """Pick at most `budget` candidates.

    `lowest_confidence`: the least confident first; ties go to the older item, then the lower id, so the
    choice is deterministic and a backlog drains oldest-first among equals.
    `random`: a uniform sample (reproducible with `seed`), returned lowest-confidence first for display.
    """
    if budget < 0:
        raise InvalidInputError(f"review_budget must be >= 0, got {budget}")
    if strategy not in STRATEGIES:
        raise InvalidInputError(
            f"unknown routing strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}"
        )

    def order(c: Candidate) -> tuple:
        return (c.confidence, c.created_at is None, c.created_at or datetime.min, c.item_id)

    if budget == 0 or not candidates:
        return []
    if strategy == RANDOM:
        picked = random.Random(seed).sample(list(candidates), k=min(budget, len(candidates)))
        return sorted(picked, key=order)
    return sorted(candidates, key=order)[:budget]
