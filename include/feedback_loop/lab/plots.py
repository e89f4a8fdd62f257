"""Charts people would rather see than read: accuracy per version, negative rate over time, label efficiency.

matplotlib with the Agg backend (no display needed); every function writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_per_version(versions: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """Bar per model version (holdout accuracy), champion highlighted, rejected ones hatched."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"v{v['version']}" for v in versions]
    values = [v.get("accuracy") or 0.0 for v in versions]
    colours = ["#2e7d32" if v.get("champion") else "#90a4ae" for v in versions]
    bars = ax.bar(labels, values, color=colours)
    for bar, version in zip(bars, versions, strict=True):
        if version.get("status") == "rejected":
            bar.set_hatch("//")
        ax.annotate(
            f"{bar.get_height():.3f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    low = min(values) if values else 0
    ax.set_ylim(max(0.0, low - 0.1), 1.0)
    ax.set_ylabel("holdout accuracy")
    ax.set_title(title)
    ax.set_xlabel("green = champion, hatched = rejected by the gate", fontsize=8, color="#555")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rate_over_time(
    series: Mapping[str, Sequence[tuple[Any, float]]],
    path: Path,
    title: str,
    ylabel: str = "negative feedback rate",
) -> Path:
    """One line per series name (e.g. per model version), x = time or interval index."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in series.items():
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if series:
        ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(
    curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]],
    path: Path,
    title: str,
    target: float | None = None,
    xlabel: str = "reviewer answers",
    ax=None,
) -> Path:
    """Accuracy against human effort, one band (mean and min-max over seeds) per strategy; draws on `ax`
    (a panel of a larger figure) when given, else writes its own figure to `path`."""
    import numpy as np

    plt = _pyplot()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in curves.items():
        length = min(len(r) for r in runs)
        labels = np.array([[p[0] for p in r[:length]] for r in runs]).mean(axis=0)
        accuracy = np.array([[p[1] for p in r[:length]] for r in runs])
        ax.plot(labels, accuracy.mean(axis=0), marker=".", label=f"{name} (mean of {len(runs)} seeds)")
        ax.fill_between(labels, accuracy.min(axis=0), accuracy.max(axis=0), alpha=0.2)
    if target is not None:
        ax.axhline(target, color="#c62828", linestyle="--", linewidth=1, label=f"target {target:.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("holdout accuracy of the champion")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    if own:
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path
