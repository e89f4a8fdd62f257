"""One label per reviewed trace from several people's answers, and how far each reviewer can be trusted.

The model is the one-coin Dawid-Skene model: reviewer r gives the true label with probability a_r and
otherwise one of the other labels at random. Each a_r has a Beta prior (mean 0.85, worth ten answers), so
three answers never make anyone perfect.

Reliability is measured on people only: expectation-maximisation alternates between the posteriors of the
traces that two or more people answered (or gold traces, whose label is known) and the reviewers'
accuracies, with no say for the model, so disagreeing with a wrong model never makes a reviewer look
unreliable, and a trace one person answered tells nothing about them. The first answer of a trace asked
again is not counted for its author: it was asked again because it looked wrong, so counting it would
make everyone look worse than they are; the later answers were not chosen by what they said. Each trace's consensus then combines
its answers, weighed by those accuracies, with the model's own probabilities when it scored the trace as
the prior, mixed with MODEL_DOUBT of a uniform prior: a correction the model thought nearly impossible
stays in doubt until someone agrees, and two reliable reviewers who agree always outweigh the model.
A trace only one person answered reads that person cautiously: at the lower end of their credible
interval (`credible_lower`), so a newcomer, whose estimate is the prior's mode until answers compared with
others' say otherwise, or a weak reviewer who has been lucky on a few compared answers, does not carry a
label alone at full weight. Whether such an answer needs a second opinion is still judged on the point
estimate: asking for one on the cautious reading costs rows the loop needs (docs/benchmarks.md).

Written here rather than taken from crowd-kit: its Dawid-Skene has neither item priors nor a prior on the
reviewers' accuracy (both matter with two or three answers per trace), and it pulls in transformers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

MODEL_DOUBT = 0.1
# Part of what a refresh is made from (labels.store.refresh_if_changed): raise it with any change here or
# in labels.store that alters what a refresh writes, so the first aggregation run after the deploy
# refreshes even without new answers.
RULES_VERSION = 2
PRIOR_ALPHA = 8.5  # Beta(8.5, 1.5): mean 0.85, as much say as ten answers
PRIOR_BETA = 1.5
FLOOR = 1e-6


@dataclass(frozen=True)
class Answer:
    """One reviewer's answer about one trace: a label, or `rejects` = "not this label" (no label given)."""

    item: str
    reviewer: str
    label: str | None = None
    rejects: str | None = None
    sequence: int = 0  # the order answers arrived in (the feedback id)


@dataclass(frozen=True)
class Item:
    """A reviewed trace: the model's probabilities when it was scored, and its true label if it is gold."""

    key: str
    prior: Mapping[str, float] = field(default_factory=dict)
    gold: str | None = None


# How sure we must be that a reviewer is below the accuracy floor before acting on it (their single answers
# stop counting, they get no new questions, an alert): the floor must lie above the upper end of this
# one-sided credible interval. With a dozen compared answers on the hardest traces a reliable reviewer's
# point estimate can fall below the floor by chance (seen in simulations: 0.69 for a reviewer right 90%
# of the time); acting on that dropped good labels.
CREDIBLE = 0.9


@dataclass
class Estimate:
    posteriors: dict[str, dict[str, float]]  # item -> label -> probability
    accuracy: dict[str, float]  # reviewer -> estimated probability of a right answer (MAP)
    iterations: int
    # reviewer -> (answers judged, how many of them right, fractionally): the evidence behind `accuracy`
    evidence: dict[str, tuple[float, float]] = field(default_factory=dict)

    def upper(self, reviewer: str) -> float:
        """The upper end of the reviewer's one-sided CREDIBLE interval (Beta posterior)."""
        count, right = self.evidence.get(reviewer, (0.0, 0.0))
        return credible_upper(right, count)

    def lower(self, reviewer: str) -> float:
        """The lower end of the reviewer's one-sided CREDIBLE interval: how far a lone answer is trusted."""
        count, right = self.evidence.get(reviewer, (0.0, 0.0))
        return credible_lower(right, count)

    def label(self, item: str) -> tuple[str, float] | None:
        posterior = self.posteriors.get(item)
        if not posterior:
            return None
        best = max(sorted(posterior), key=lambda label: posterior[label])
        return best, posterior[best]


def _quantile(q: float, right: float, count: float) -> float:
    """The q-quantile of accuracy under the Beta prior updated with `right` of `count` answers."""
    from scipy.stats import beta

    return float(beta.ppf(q, PRIOR_ALPHA + right, PRIOR_BETA + max(count - right, 0.0)))


def credible_upper(right: float, count: float, level: float = CREDIBLE) -> float:
    """P(accuracy <= this) = level."""
    return _quantile(level, right, count)


def credible_lower(right: float, count: float, level: float = CREDIBLE) -> float:
    """P(accuracy >= this) = level."""
    return _quantile(1.0 - level, right, count)


@cache
def newcomer_lower() -> float:
    """How far a lone answer of a reviewer with no compared answers is trusted (about 0.70); cached, and
    computed on first use so that importing this module never loads scipy."""
    return credible_lower(0.0, 0.0)


def credibly_below(stored: Mapping[str, Any], floor: float) -> bool:
    """A reviewer's stored reliability (`accuracy_upper`, or, before its first refresh after migration 0011,
    `accuracy`) is below `floor`: the only test that acts on a reviewer."""
    upper = stored.get("accuracy_upper")
    value = upper if upper is not None else stored.get("accuracy")
    return value is not None and float(value) < floor


def prior_accuracy() -> float:
    return PRIOR_ALPHA / (PRIOR_ALPHA + PRIOR_BETA)


def _likelihood(answer: Answer, truth: str, accuracy: float, n_labels: int) -> float:
    wrong = (1.0 - accuracy) / max(n_labels - 1, 1)
    if answer.label is not None:
        return accuracy if answer.label == truth else wrong
    # "Not this label": wrong when it is the truth, right for every other label.
    return 1.0 - accuracy if answer.rejects == truth else accuracy


def labels_of(items: Iterable[Item], answers: Iterable[Answer], known: Iterable[str] = ()) -> list[str]:
    found = set(known)
    for item in items:
        found.update(item.prior)
        if item.gold is not None:
            found.add(item.gold)
    for answer in answers:
        found.update(x for x in (answer.label, answer.rejects) if x is not None)
    return sorted(found)


def posterior(
    item: Item, answers: Sequence[Answer], accuracy: Mapping[str, float], labels: Sequence[str]
) -> dict[str, float]:
    """The probability of each label for one trace, given its answers and the reviewers' accuracies."""
    if item.gold is not None:
        return {label: float(label == item.gold) for label in labels}
    default = prior_accuracy()
    uniform = 1.0 / len(labels)
    log_p = {}
    for label in labels:
        model = item.prior.get(label, uniform) if item.prior else uniform
        value = math.log(max((1 - MODEL_DOUBT) * model + MODEL_DOUBT * uniform, FLOOR))
        for answer in answers:
            value += math.log(
                max(_likelihood(answer, label, accuracy.get(answer.reviewer, default), len(labels)), FLOOR)
            )
        log_p[label] = value
    top = max(log_p.values())
    weights = {label: math.exp(v - top) for label, v in log_p.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}


def _answer_right(answer: Answer, post: Mapping[str, float]) -> float:
    if answer.label is not None:
        return post.get(answer.label, 0.0)
    return 1.0 - post.get(answer.rejects, 0.0)


def estimate(
    items: Sequence[Item],
    answers: Sequence[Answer],
    *,
    known_labels: Iterable[str] = (),
    max_iterations: int = 50,
    tolerance: float = 1e-5,
) -> Estimate:
    """Every reviewer's accuracy (EM on overlapping and gold traces, MAP under the Beta prior), then every
    item's posterior with the model's prior."""
    labels = labels_of(items, answers, known_labels)
    by_item: dict[str, list[Answer]] = {}
    for answer in answers:
        by_item.setdefault(answer.item, []).append(answer)
    by_key = {item.key: item for item in items}
    reviewers = sorted({a.reviewer for a in answers})
    accuracy = {r: prior_accuracy() for r in reviewers}
    # What tells about people: traces answered twice or more, and gold traces; judged without the model.
    informative = {
        key: Item(key, {}, gold=by_key[key].gold if key in by_key else None)
        for key, item_answers in by_item.items()
        if len({a.reviewer for a in item_answers}) >= 2 or (key in by_key and by_key[key].gold is not None)
    }
    iterations = 0
    right: dict[str, float] = {}
    count: dict[str, int] = {}
    while informative and iterations < max_iterations:
        iterations += 1
        posteriors = {
            key: posterior(item, by_item[key], accuracy, labels) for key, item in informative.items()
        }
        right = dict.fromkeys(reviewers, 0.0)
        count = dict.fromkeys(reviewers, 0)
        for key, item in informative.items():
            ordered = sorted(by_item[key], key=lambda a: a.sequence)
            for answer in ordered if item.gold is not None else ordered[1:]:
                right[answer.reviewer] += _answer_right(answer, posteriors[key])
                count[answer.reviewer] += 1
        updated = {
            r: (PRIOR_ALPHA - 1 + right[r]) / (PRIOR_ALPHA + PRIOR_BETA - 2 + count[r]) for r in reviewers
        }
        moved = max((abs(updated[r] - accuracy[r]) for r in reviewers), default=0.0)
        accuracy = updated
        if moved < tolerance:
            break
    posteriors = {
        key: posterior(by_key.get(key, Item(key)), item_answers, accuracy, labels)
        for key, item_answers in by_item.items()
    }
    evidence = {r: (float(count.get(r, 0)), float(right.get(r, 0.0))) for r in reviewers}
    return Estimate(posteriors=posteriors, accuracy=accuracy, iterations=iterations, evidence=evidence)
