"""Alert rules: each threshold fires when crossed, and only on enough rows."""

from __future__ import annotations

import pytest

from feedback_loop.core.config import AlertConfig
from feedback_loop.monitoring import alerts

pytestmark = pytest.mark.unit

SETTINGS = AlertConfig(negative_rate=0.4, accuracy_drop=0.1, psi=0.2, backlog_age_hours=48)
TRAINING = {"accuracy": 0.9, "slices": {"region": {"north": {"accuracy": 0.92}, "south": {"accuracy": 0.88}}}}


def rollup(**overrides) -> dict:
    healthy = {
        "model_name": "m",
        "model_version": 3,
        "n_signals": 100,
        "negative_rate": 0.1,
        "accuracy": 0.88,
        "n_labelled": 50,
        "backlog_size": 2,
        "backlog_oldest_age_s": 3600.0,
        "drift": {"features": {"f0": {"psi": 0.05, "n": 500}}, "confidence": {"psi": 0.01, "n": 500}},
        "slices": {
            "region": {
                "north": {"accuracy": 0.9, "n_labelled": 30},
                "south": {"accuracy": 0.86, "n_labelled": 25},
            }
        },
    }
    return {**healthy, **overrides}


def kinds(found):
    return [a.kind for a in found]


def test_a_healthy_rollup_raises_nothing():
    assert alerts.evaluate(rollup(), TRAINING, SETTINGS) == []


def test_negative_rate_needs_enough_signals():
    assert kinds(alerts.evaluate(rollup(negative_rate=0.6), TRAINING, SETTINGS)) == ["negative_rate"]
    assert alerts.evaluate(rollup(negative_rate=0.6, n_signals=5), TRAINING, SETTINGS) == []


def test_accuracy_drop_against_training_metrics():
    (found,) = alerts.evaluate(rollup(accuracy=0.7), TRAINING, SETTINGS)
    assert (found.kind, found.value, found.threshold) == ("accuracy_drop", 0.7, 0.8)
    assert "0.200 below" in found.message
    assert alerts.evaluate(rollup(accuracy=0.7, n_labelled=3), TRAINING, SETTINGS) == []
    assert alerts.evaluate(rollup(accuracy=0.7), {}, SETTINGS) == []  # nothing to compare against


def test_a_slice_served_worse_than_in_training_alerts():
    slices = {
        "region": {
            "north": {"accuracy": 0.91, "n_labelled": 40},
            "south": {"accuracy": 0.6, "n_labelled": 40},
        }
    }
    (found,) = alerts.evaluate(rollup(slices=slices), TRAINING, SETTINGS)
    assert found.kind == "slice_accuracy_drop"
    assert found.metric == "slices.region.south.accuracy"


def test_psi_over_the_threshold_names_the_feature_when_rows_suffice():
    drifted = {"features": {"f0": {"psi": 0.05, "n": 500}, "f1": {"psi": 0.9, "n": 500}}}
    (found,) = alerts.evaluate(rollup(drift=drifted), TRAINING, SETTINGS)
    assert (found.kind, found.metric) == ("drift", "drift.f1.psi")
    assert "'f1'" in found.message
    thin = {"features": {"f1": {"psi": 0.9, "n": 20}}}
    assert alerts.evaluate(rollup(drift=thin), TRAINING, SETTINGS) == []


def test_old_backlog_alerts():
    (found,) = alerts.evaluate(rollup(backlog_oldest_age_s=49 * 3600.0), TRAINING, SETTINGS)
    assert found.kind == "backlog_age"
    assert "49.0 h" in found.message


def test_several_reasons_come_in_a_stable_order():
    found = alerts.evaluate(
        rollup(negative_rate=0.9, accuracy=0.5, backlog_oldest_age_s=1e6), TRAINING, SETTINGS
    )
    assert kinds(found) == ["negative_rate", "accuracy_drop", "backlog_age"]
    assert found[0].as_dict()["model_version"] == 3


def test_a_reviewer_below_the_threshold_raises_an_alert_once_the_estimate_rests_on_enough_answers():
    from feedback_loop.monitoring import alerts

    active = [
        {"reviewer": "ann", "accuracy": 0.93, "compared": 40, "gold_answers": 0},
        {"reviewer": "cy", "accuracy": 0.55, "compared": 30, "gold_answers": 2},
        {"reviewer": "new", "accuracy": 0.4, "compared": 3, "gold_answers": 0},
        {"reviewer": "unmeasured", "accuracy": None, "compared": None, "gold_answers": None},
    ]
    (alert,) = alerts.reviewer_alerts(active, "m", 3, floor=0.7)
    assert (alert.kind, alert.metric, alert.value, alert.threshold) == (
        "reviewer_accuracy",
        "reviewer:cy",
        0.55,
        0.7,
    )
    assert "reviewer cy" in alert.message and "32 compared answers" in alert.message


def test_estimated_accuracy_weighs_each_confidence_bin_by_the_versions_calibration():
    from feedback_loop.monitoring.aggregation import estimated_accuracy

    calibration = {"bins": 10, "accuracy": [0.1 * b for b in range(10)]}
    assert estimated_accuracy({10: 3, 1: 1}, calibration) == pytest.approx((3 * 0.9 + 1 * 0.0) / 4)
    # Without a calibration the bins' middle confidences stand in (right only for a calibrated model).
    assert estimated_accuracy({10: 1}, None) == pytest.approx(0.95)
    assert estimated_accuracy({}, calibration) is None
