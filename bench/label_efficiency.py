"""Label efficiency: reviewer answers needed to reach 95% of the all-labels accuracy, uncertainty vs random
routing.

`feedback-loop simulate` on the bundled digits data with three reviewers at noise 0.1, several seeds per
strategy.
Knobs (environment): BENCH_SEEDS (default 3), BENCH_CYCLES (default 8). Writes a plot and the raw runs to
bench-output/.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from feedback_loop.lab import plots, simulate

OUTPUT = Path(__file__).resolve().parents[1] / "bench-output"


def run() -> list[dict]:
    seeds = range(int(os.environ.get("BENCH_SEEDS", "3")))
    cycles = int(os.environ.get("BENCH_CYCLES", "8"))
    base = dict(
        data="digits",
        label_column="label",
        slice_column="writer_group",
        initial_labels=50,
        cycles=cycles,
        batch_size=150,
        review_budget=int(os.environ.get("BENCH_BUDGET", "40")),
        reviewers=(0.1, 0.1, 0.1),
    )
    ceilings = [simulate.all_labels_accuracy(simulate.SimulationSpec(**base, seed=s)) for s in seeds]
    ceiling = statistics.mean(ceilings)
    targets = {"95%": 0.95 * ceiling, "90%": 0.90 * ceiling}
    curves: dict[str, list] = {}
    finals: dict[str, list[float]] = {}
    raw = []
    for strategy in ("uncertainty", "random"):
        for seed in seeds:
            print(f"  simulate --strategy {strategy} --seed {seed} ...", file=sys.stderr, flush=True)
            report = simulate.run(simulate.SimulationSpec(**base, strategy=strategy, seed=seed))
            raw.append(report)
            curves.setdefault(strategy, []).append([(c["answers"], c["accuracy"]) for c in report["cycles"]])
            finals.setdefault(strategy, []).append(report["final"]["accuracy"])
    OUTPUT.mkdir(exist_ok=True)
    plots.learning_curves(
        curves,
        OUTPUT / "label_efficiency.png",
        "digits, reviewer noise 0.1: champion accuracy vs reviewer answers",
        target=targets["95%"],
    )
    (OUTPUT / "label_efficiency.json").write_text(
        json.dumps({"targets": targets, "ceilings": ceilings, "runs": raw}, indent=2, default=str)
    )

    max_labels = cycles * base["review_budget"]
    never = max_labels + base["review_budget"]  # a run that never got there needed more than it had
    rows = [{"metric": "all-labels accuracy (mean of seeds)", "value": ceiling, "unit": ""}]
    for name, target in targets.items():
        rows.append({"metric": f"target {name} of it", "value": target, "unit": ""})
        means = {}
        for strategy, runs in curves.items():
            needed = [
                simulate.answers_to_reach([{"answers": n, "accuracy": a} for n, a in points], target)
                for points in runs
            ]
            filled = [v if v is not None else never for v in needed]
            means[strategy] = statistics.mean(filled)
            reached = sum(v is not None for v in needed)
            rows.append(
                {
                    "metric": f"{name}: {strategy} answers to target, mean (min..max)",
                    "value": means[strategy],
                    "unit": f"answers ({min(filled)}..{max(filled)}; {reached}/{len(needed)} runs reached it)",
                }
            )
        rows.append(
            {
                "metric": f"{name}: random / uncertainty answers ratio",
                "value": means["random"] / means["uncertainty"],
                "unit": "x",
            }
        )
    for strategy, values in finals.items():
        rows.append(
            {
                "metric": f"{strategy}: final accuracy, mean",
                "value": statistics.mean(values),
                "unit": f"after {max_labels} answers",
            }
        )
    return rows
