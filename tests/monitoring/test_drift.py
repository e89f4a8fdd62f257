"""Drift statistics on synthetic data with a known answer: same distribution vs shifted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feedback_loop.monitoring import drift

pytestmark = pytest.mark.unit


def numeric_profile(values: np.ndarray, bins: int = 10) -> dict:
    """Built like training.reference_profile: inner decile edges, shares per bin, a sorted sample."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))[1:-1]
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return {
        "type": "numeric",
        "edges": edges.tolist(),
        "shares": (counts / values.size).tolist(),
        "sample": np.sort(values[:500]).tolist(),
    }


@pytest.fixture
def reference():
    return numeric_profile(np.random.default_rng(0).normal(size=5000))


def test_psi_is_zero_for_equal_shares_and_matches_the_formula():
    assert drift.psi([0.25] * 4, [0.25] * 4) == 0
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected)
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(drift.psi([0.9, 0.1], [0.5, 0.5]))
    with pytest.raises(ValueError, match="equal length"):
        drift.psi([0.5, 0.5], [1.0])


def test_same_distribution_shows_no_drift(reference):
    live = np.random.default_rng(1).normal(size=2000)
    result = drift.numeric_drift(reference, live.tolist())
    assert result["n"] == 2000
    assert result["psi"] < 0.05
    assert result["ks_pvalue"] > 0.01


def test_a_shifted_distribution_drifts_on_psi_and_ks(reference):
    live = np.random.default_rng(1).normal(loc=1.0, size=2000)
    result = drift.numeric_drift(reference, live.tolist())
    assert result["psi"] > 0.2
    assert result["ks"] > 0.3 and result["ks_pvalue"] < 1e-6


def test_non_numeric_and_missing_values_are_not_counted(reference):
    result = drift.numeric_drift(reference, [0.1, None, "x", float("nan"), True, "0.5"])
    assert result["n"] == 2  # 0.1 and "0.5"; bools, text, NaN and None are missing


def test_categorical_drift_with_chi_square_and_unseen_values():
    profile = {"type": "categorical", "shares": {"north": 0.5, "south": 0.5}}
    same = drift.categorical_drift(profile, ["north"] * 500 + ["south"] * 500)
    assert same["psi"] == pytest.approx(0, abs=1e-9) and same["chi2_pvalue"] > 0.5
    skewed = drift.categorical_drift(profile, ["north"] * 800 + ["south"] * 150 + ["east"] * 50)
    assert skewed["unseen"] == 50
    assert skewed["psi"] > 0.2 and skewed["chi2_pvalue"] < 1e-6


def test_report_covers_every_profiled_feature_and_confidence(reference):
    rng = np.random.default_rng(2)
    profile = {
        "features": {"a": reference, "b": reference, "c": {"type": "categorical", "shares": {"x": 1.0}}},
        "confidence": reference,
    }
    inputs = [{"a": float(v), "b": float(v) + 2, "c": "x"} for v in rng.normal(size=1000)]
    report = drift.drift_report(profile, inputs, rng.normal(size=1000).tolist())
    assert set(report["features"]) == {"a", "b", "c"}
    assert report["max_psi"]["feature"] == "b"
    assert report["confidence"]["psi"] < 0.05
    assert report["n"] == 1000


def test_a_version_without_a_profile_has_no_drift_report():
    assert drift.drift_report({}, [{"a": 1}], [0.9]) == {}


def test_a_feature_absent_from_the_inputs_reports_no_score(reference):
    report = drift.drift_report({"features": {"a": reference}}, [{"other": 1.0}], [0.5])
    assert report["features"]["a"] == {"type": "numeric", "n": 0, "psi": None, "ks": None, "ks_pvalue": None}
    assert "max_psi" not in report
