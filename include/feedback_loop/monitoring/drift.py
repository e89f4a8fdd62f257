"""Drift of live inputs against the reference distributions a model version stored at training time.

Pure functions over plain lists and the profile dict written by `training.reference_profile`:
- numeric features and confidence: PSI over the reference bins ('edges' are the inner decile edges,
  'shares' the share of training rows per bin) and a two-sample KS test against the reference 'sample';
- categorical features: PSI over the categories and a chi-square goodness-of-fit test against the
  reference shares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Empty bins would make PSI infinite; this floor is the usual convention and keeps one unseen category
# from dominating the score.
SHARE_FLOOR = 1e-4
UNSEEN = "__unseen__"


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index between two share vectors over the same bins."""
    if len(expected) != len(actual):
        raise ValueError(f"psi needs bins of equal length, got {len(expected)} and {len(actual)}")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(float(e), SHARE_FLOOR), max(float(a), SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def _numeric(values: Iterable[Any]) -> list[float]:
    out = []
    for value in values:
        if isinstance(value, bool) or value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append(number)
    return out


def numeric_drift(profile: Mapping[str, Any], values: Iterable[Any]) -> dict[str, Any]:
    """PSI and KS of live numeric `values` against a numeric reference profile."""
    import numpy as np
    from scipy import stats

    live = np.asarray(_numeric(values), dtype=float)
    edges = np.asarray(profile.get("edges", []), dtype=float)
    shares = [float(s) for s in profile.get("shares", [])]
    result: dict[str, Any] = {"type": "numeric", "n": int(live.size)}
    if live.size == 0 or not shares:
        return {**result, "psi": None, "ks": None, "ks_pvalue": None}
    # Same binning as the profile: bin i holds values with edges[i-1] <= v < edges[i].
    counts = np.bincount(np.searchsorted(edges, live, side="right"), minlength=len(shares))
    result["psi"] = round(psi(shares, (counts / live.size).tolist()), 6)
    result["mean"] = round(float(live.mean()), 6)
    sample = np.asarray(profile.get("sample", []), dtype=float)
    if sample.size:
        ks = stats.ks_2samp(sample, live)
        result["ks"] = round(float(ks.statistic), 6)
        result["ks_pvalue"] = float(f"{float(ks.pvalue):.6g}")
    else:
        result["ks"] = result["ks_pvalue"] = None
    return result


def categorical_drift(profile: Mapping[str, Any], values: Iterable[Any]) -> dict[str, Any]:
    """PSI and a chi-square goodness-of-fit test of live categories against the reference shares."""
    from scipy import stats

    reference = {str(k): float(v) for k, v in profile.get("shares", {}).items()}
    counts: dict[str, int] = {}
    for value in values:
        if value is None:
            continue
        key = str(value)
        key = key if key in reference else UNSEEN
        counts[key] = counts.get(key, 0) + 1
    n = sum(counts.values())
    result: dict[str, Any] = {"type": "categorical", "n": n, "unseen": counts.get(UNSEEN, 0)}
    if n == 0 or not reference:
        return {**result, "psi": None, "chi2": None, "chi2_pvalue": None}
    categories = sorted(reference) + ([UNSEEN] if UNSEEN in counts else [])
    expected_shares = [reference.get(c, 0.0) for c in categories]
    actual_shares = [counts.get(c, 0) / n for c in categories]
    result["psi"] = round(psi(expected_shares, actual_shares), 6)
    floored = [max(s, SHARE_FLOOR) for s in expected_shares]
    scale = n / sum(floored)
    chi = stats.chisquare([counts.get(c, 0) for c in categories], [s * scale for s in floored])
    result["chi2"] = round(float(chi.statistic), 6)
    result["chi2_pvalue"] = float(f"{float(chi.pvalue):.6g}")
    return result


def feature_drift(profile: Mapping[str, Any], values: Iterable[Any]) -> dict[str, Any]:
    if profile.get("type") == "categorical":
        return categorical_drift(profile, values)
    return numeric_drift(profile, values)


def drift_report(
    reference_profile: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    confidences: Sequence[float],
) -> dict[str, Any]:
    """Drift per feature in the reference profile and for confidence; {} when the version has no profile.

    `inputs` are the predictions' input dicts; a feature missing from an input counts as missing, not 0.
    """
    features = reference_profile.get("features") or {}
    report: dict[str, Any] = {}
    if not features and not reference_profile.get("confidence"):
        return report
    report["features"] = {
        name: feature_drift(profile, (row.get(name) for row in inputs))
        for name, profile in sorted(features.items())
    }
    if reference_profile.get("confidence"):
        report["confidence"] = numeric_drift(reference_profile["confidence"], confidences)
    scores = [
        (name, entry["psi"]) for name, entry in report["features"].items() if entry.get("psi") is not None
    ]
    if report.get("confidence", {}).get("psi") is not None:
        scores.append(("confidence", report["confidence"]["psi"]))
    if scores:
        name, value = max(scores, key=lambda item: (item[1], item[0]))
        report["max_psi"] = {"feature": name, "psi": value}
    report["n"] = len(inputs)
    return report
