"""Alert rules over one rollup row: which configured thresholds it crosses, and why.

Pure: a rollup (as stored in feedback_rollups), the version's training metrics and the AlertConfig in,
a list of reasons out. Rates only count once they rest on enough rows (min_signals, min_labelled,
min_drift_rows), so a single thumbs-down in a quiet hour does not page anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from feedback_loop.core.config import AlertConfig
from feedback_loop.labels import consensus


@dataclass(frozen=True)
class Alert:
    kind: str  # negative_rate | accuracy_drop | slice_accuracy_drop | drift | backlog_age | reviewer_accuracy
    model_name: str
    model_version: int
    metric: str
    value: float
    threshold: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _accuracy_drop(
    rollup: Mapping[str, Any], training_metrics: Mapping[str, Any], settings: AlertConfig
) -> list[Alert]:
    model, version = rollup["model_name"], int(rollup["model_version"])
    alerts = []
    baseline = training_metrics.get("accuracy")
    accuracy = rollup.get("accuracy")
    if baseline is not None and accuracy is not None and rollup.get("n_labelled", 0) >= settings.min_labelled:
        drop = float(baseline) - float(accuracy)
        if drop > settings.accuracy_drop:
            alerts.append(
                Alert(
                    "accuracy_drop",
                    model,
                    version,
                    "accuracy",
                    round(float(accuracy), 6),
                    round(float(baseline) - settings.accuracy_drop, 6),
                    f"{model} v{version}: accuracy on {rollup['n_labelled']} labelled feedback items is "
                    f"{accuracy:.3f}, {drop:.3f} below its training accuracy {baseline:.3f} "
                    f"(allowed drop {settings.accuracy_drop})",
                )
            )
    trained_slices = training_metrics.get("slices") or {}
    for column, values in sorted((rollup.get("slices") or {}).items()):
        for value, live in sorted(values.items()):
            trained = (trained_slices.get(column) or {}).get(value) or {}
            if trained.get("accuracy") is None or live.get("accuracy") is None:
                continue
            if live.get("n_labelled", 0) < settings.min_labelled:
                continue
            drop = float(trained["accuracy"]) - float(live["accuracy"])
            if drop > settings.accuracy_drop:
                alerts.append(
                    Alert(
                        "slice_accuracy_drop",
                        model,
                        version,
                        f"slices.{column}.{value}.accuracy",
                        round(float(live["accuracy"]), 6),
                        round(float(trained["accuracy"]) - settings.accuracy_drop, 6),
                        f"{model} v{version}: accuracy for {column}={value} is {live['accuracy']:.3f} on "
                        f"{live['n_labelled']} labelled items, {drop:.3f} below training "
                        f"({trained['accuracy']:.3f})",
                    )
                )
    return alerts


def _drift(rollup: Mapping[str, Any], settings: AlertConfig) -> list[Alert]:
    model, version = rollup["model_name"], int(rollup["model_version"])
    drift = rollup.get("drift") or {}
    entries = dict(sorted((drift.get("features") or {}).items()))
    if drift.get("confidence"):
        entries["confidence"] = drift["confidence"]
    alerts = []
    for name, entry in entries.items():
        score = entry.get("psi")
        if score is None or entry.get("n", 0) < settings.min_drift_rows or score <= settings.psi:
            continue
        alerts.append(
            Alert(
                "drift",
                model,
                version,
                f"drift.{name}.psi",
                float(score),
                settings.psi,
                f"{model} v{version}: input '{name}' drifted from training (PSI {score:.3f} > {settings.psi} "
                f"over {entry['n']} predictions)",
            )
        )
    return alerts


def evaluate(
    rollup: Mapping[str, Any], training_metrics: Mapping[str, Any], settings: AlertConfig
) -> list[Alert]:
    """Every threshold the rollup crosses, in a stable order."""
    model, version = rollup["model_name"], int(rollup["model_version"])
    alerts: list[Alert] = []
    negative_rate = rollup.get("negative_rate")
    if (
        negative_rate is not None
        and rollup.get("n_signals", 0) >= settings.min_signals
        and negative_rate > settings.negative_rate
    ):
        alerts.append(
            Alert(
                "negative_rate",
                model,
                version,
                "negative_rate",
                round(float(negative_rate), 6),
                settings.negative_rate,
                f"{model} v{version}: {negative_rate:.0%} of {rollup['n_signals']} feedback signals are "
                f"negative (threshold {settings.negative_rate:.0%})",
            )
        )
    alerts.extend(_accuracy_drop(rollup, training_metrics, settings))
    alerts.extend(_drift(rollup, settings))
    age = rollup.get("backlog_oldest_age_s")
    if age is not None and age > settings.backlog_age_hours * 3600:
        alerts.append(
            Alert(
                "backlog_age",
                model,
                version,
                "backlog_oldest_age_s",
                round(float(age), 3),
                settings.backlog_age_hours * 3600,
                f"{model} v{version}: the oldest of {rollup.get('backlog_size', 0)} unanswered reviews is "
                f"{age / 3600:.1f} h old (threshold {settings.backlog_age_hours} h)",
            )
        )
    return alerts


# A reviewer's estimate rests on answers compared with other people's (second opinions, gold questions):
# below this many it is mostly the prior, and nobody is paged about it.
MIN_REVIEWER_EVIDENCE = 10


def reviewer_alerts(
    reviewers: list[Mapping[str, Any]], model_name: str, model_version: int, floor: float
) -> list[Alert]:
    """Reviewers active in the interval credibly below `floor` (the upper end of their credible interval is
    below it): their answers count only where another reviewer agrees, and someone should talk to them."""
    alerts = []
    for row in reviewers:
        accuracy = row.get("accuracy")
        evidence = int(row.get("compared") or 0) + int(row.get("gold_answers") or 0)
        if accuracy is None or evidence < MIN_REVIEWER_EVIDENCE or not consensus.credibly_below(row, floor):
            continue
        alerts.append(
            Alert(
                "reviewer_accuracy",
                model_name,
                model_version,
                f"reviewer:{row['reviewer']}",
                round(float(accuracy), 6),
                floor,
                f"{model_name}: reviewer {row['reviewer']} agrees with other reviewers less than expected "
                f"(estimated accuracy {float(accuracy):.0%} over {evidence} compared answers, threshold "
                f"{floor:.0%}); their answers count only where someone agrees",
            )
        )
    return alerts
