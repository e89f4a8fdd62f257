"""How far people agree, and how sure a share measured on few answers is.

Krippendorff's alpha for nominal labels is written here: the `krippendorff` package is GPL-3.0, and
statsmodels' Fleiss' kappa needs the same number of answers for every trace, which second opinions do not
give. Wilson intervals come from scipy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a share (None without trials)."""
    if trials <= 0:
        return None
    from scipy.stats import binomtest

    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def krippendorff_alpha(units: Iterable[Sequence[str]]) -> float | None:
    """Nominal Krippendorff's alpha over units (the labels people gave one trace). Units with fewer than
    two answers carry no agreement and are left out; None when nothing is left or all labels are one.

    alpha = 1 - D_o / D_e, with the observed disagreement D_o from the coincidence of labels within units
    and the expected disagreement D_e from the labels' overall frequencies."""
    pairable = [list(unit) for unit in units if len(unit) >= 2]
    n = sum(len(unit) for unit in pairable)
    if n < 2:
        return None
    totals: Counter[str] = Counter()
    observed = 0.0
    for unit in pairable:
        counts = Counter(unit)
        totals.update(counts)
        m = len(unit)
        # Pairs of different labels within the unit, each pair weighted 1 / (m - 1).
        same = sum(c * (c - 1) for c in counts.values())
        observed += (m * (m - 1) - same) / (m - 1)
    expected = (n * (n - 1) - sum(c * (c - 1) for c in totals.values())) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def agreement_units(answers: Iterable[Mapping[str, str]]) -> list[list[str]]:
    """Group (item, label) answers into one unit of labels per item."""
    units: dict[str, list[str]] = {}
    for answer in answers:
        units.setdefault(answer["item"], []).append(answer["label"])
    return list(units.values())
