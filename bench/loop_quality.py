"""Loop quality: does human feedback become a better model? The product against the bare loop.

On digits and two tabular data sets built in bench/_loop_data.py, with the shipped config's settings
(`feedback-loop simulate`: v1 on 60 clean labels, 6 cycles of 150 new rows and 30 reviewer answers), for
two groups of reviewers: three at 10% noise ("uniform") and 0.05,0.05,0.05,0.4 ("pool"):
- product: the product as shipped (uncertainty routing, gold/audit/second opinions, consensus, gate);
- random: the same with a random sample instead of the least confident predictions;
- bare: the bare loop (least confident rows, one answer each, retrained on everything, no gate), given
  exactly the product's number of answers in every cycle (equal human effort).
Prints per data set and reviewer group the final champion accuracy (mean of the seeds), product minus
bare, and the stall check: in how many of the cycles where the bare loop's accuracy rose the product
promoted. Knobs (environment): BENCH_LOOP_SEEDS (default 5), BENCH_LOOP_DATA (comma-separated subset),
BENCH_LOOP_JOBS (parallel simulations, default 2). Writes bench-output/loop_quality.{json,png}.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "bench-output"
GROUPS = {"uniform": (0.1, 0.1, 0.1), "pool": (0.05, 0.05, 0.05, 0.4)}
DATA = {
    "digits": {"label_column": "label", "slice_column": "writer_group"},
    "loans": {"label_column": "label"},
    "segments": {"label_column": "label"},
}
SETTINGS = {"initial_labels": 60, "cycles": 6, "batch_size": 150, "review_budget": 30}


def _simulate(kwargs: dict) -> dict:
    from feedback_loop.lab import simulate

    return simulate.run(simulate.SimulationSpec(**kwargs))


def _pair(kwargs: dict) -> dict:
    """The product, then the bare loop with the product's answers per cycle, then random routing."""
    product = _simulate({**kwargs, "strategy": "uncertainty"})
    per_cycle = tuple(c["reviewed"] for c in product["cycles"][1:])
    bare = _simulate({**kwargs, "strategy": "bare", "answers_per_cycle": per_cycle})
    random_routing = _simulate({**kwargs, "strategy": "random"})
    return {"product": product, "bare": bare, "random": random_routing, "spec": kwargs}


def _stall(product: dict, bare: dict) -> tuple[int, int]:
    """(cycles where the bare loop's accuracy rose, of those the ones in which the product promoted)."""
    rose = promoted = 0
    for before, after, ours in zip(bare["cycles"], bare["cycles"][1:], product["cycles"][1:], strict=False):
        if after["accuracy"] > before["accuracy"]:
            rose += 1
            promoted += ours["gate"] == "promoted"
    return rose, promoted


def jobs(folder: Path) -> list[dict]:
    """Every simulation to run; the tabular data sets are written into `folder`."""
    seeds = range(int(os.environ.get("BENCH_LOOP_SEEDS", "5")))
    chosen = [d for d in os.environ.get("BENCH_LOOP_DATA", ",".join(DATA)).split(",") if d]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _loop_data import write

    paths = {name: ("digits" if name == "digits" else str(write(name, folder))) for name in chosen}
    return [
        {
            "data": paths[name],
            **DATA[name],
            **SETTINGS,
            "reviewers": GROUPS[group],
            "seed": seed,
            "_name": name,
            "_group": group,
        }
        for name in chosen
        for group in GROUPS
        for seed in seeds
    ]


def run() -> list[dict]:
    workers = int(os.environ.get("BENCH_LOOP_JOBS", "2"))
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="fl-loop-data-") as folder,
        ProcessPoolExecutor(max_workers=workers) as pool,
    ):
        todo = jobs(Path(folder))
        futures = [
            pool.submit(_pair, {k: v for k, v in job.items() if not k.startswith("_")}) for job in todo
        ]
        for job, future in zip(todo, futures, strict=True):
            result = future.result()
            result["name"], result["group"] = job["_name"], job["_group"]
            print(
                f"  {job['_name']}/{job['_group']} seed {job['seed']}: product "
                f"{result['product']['final']['accuracy']:.3f}, bare {result['bare']['final']['accuracy']:.3f}, "
                f"random {result['random']['final']['accuracy']:.3f}",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "loop_quality.json").write_text(json.dumps(results, indent=2, default=str))
    plot(results, OUTPUT / "loop_quality.png")
    return rows(results)


def rows(results: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["name"] for r in results):
        for group in GROUPS:
            runs = [r for r in results if r["name"] == name and r["group"] == group]
            if not runs:
                continue
            final = {
                kind: statistics.mean(r[kind]["final"]["accuracy"] for r in runs)
                for kind in ("product", "bare", "random")
            }
            stalls = [_stall(r["product"], r["bare"]) for r in runs]
            worst = min((p / rose if rose else 1.0) for rose, p in stalls)
            answers = statistics.mean(r["product"]["final"]["answers"] for r in runs)
            label = f"{name}/{group}"
            out += [
                {
                    "metric": f"{label}: product final accuracy",
                    "value": final["product"],
                    "unit": f"mean of {len(runs)} seeds, {answers:.0f} answers",
                },
                {
                    "metric": f"{label}: bare loop final accuracy",
                    "value": final["bare"],
                    "unit": "same answers per cycle",
                },
                {"metric": f"{label}: random routing final accuracy", "value": final["random"], "unit": ""},
                {
                    "metric": f"{label}: product - bare",
                    "value": final["product"] - final["bare"],
                    "unit": "accuracy"
                    + _spread(
                        [r["product"]["final"]["accuracy"] - r["bare"]["final"]["accuracy"] for r in runs]
                    ),
                },
                {
                    "metric": f"{label}: promoted when bare rose (worst run)",
                    "value": worst,
                    "unit": "share of cycles (" + ", ".join(f"{p}/{r}" for r, p in stalls) + ")",
                },
            ]
    return out


def _spread(differences: list[float]) -> str:
    """The standard error of a mean difference over seeds: most gaps measured here are within two of it,
    and a reader judging "product - bare" needs to see that beside the mean."""
    if len(differences) < 2:
        return ""
    error = statistics.stdev(differences) / len(differences) ** 0.5
    return f" (± {error:.4f} standard error over {len(differences)} seeds)"


def plot(results: list[dict], path: Path) -> None:
    from feedback_loop.lab import plots

    names = list(dict.fromkeys(r["name"] for r in results))
    plt = plots._pyplot()
    fig, axes = plt.subplots(len(GROUPS), len(names), figsize=(5 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        for row, group in enumerate(GROUPS):
            runs = [r for r in results if r["name"] == name and r["group"] == group]
            curves = {
                kind: [[(c["answers"], c["accuracy"]) for c in r[kind]["cycles"]] for r in runs]
                for kind in ("product", "bare", "random")
            }
            plots.learning_curves(curves, path, f"{name}, reviewers {group}", ax=axes[row][col])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
