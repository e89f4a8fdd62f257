"""DAG file parse time: each file in dags/ imported in a fresh interpreter (what a dag-processor child
pays), median of BENCH_PARSE_REPEAT runs (default 3) taken round-robin over the files, so that load from
other work on the machine spreads over all of them.

Per file: the time to import it after `import airflow.sdk` (the SDK itself is not counted), its ratio to
the 50 ms budget of issue 18 with PASS/OVER, and the same time minus a minimal TaskFlow DAG's (one @dag,
one Param, one @task): that reference pays what Airflow's own decorators import lazily (the standard
provider's PythonOperator, timetables, assets), which no DAG file of ours can avoid. The config digest
the DAG files read is cached under the state dir (core.dag_config): the per-file figures are the steady
state; "config digest cache cold" is one file's parse right after the config (or the code validating it)
changed, when the file is validated with pydantic again.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = 50.0

PROBE = """
import json, runpy, sys, time
start = time.perf_counter()
import airflow.sdk  # noqa: F401
sdk = time.perf_counter() - start
runpy.run_path(sys.argv[1])
print(json.dumps({"sdk": sdk, "total": time.perf_counter() - start}))
"""

MINIMAL_DAG = """
from airflow.sdk import Param, dag, task


@dag(schedule=None, params={"x": Param(1, type="integer", title="X", description="x")})
def minimal_taskflow():
    @task
    def one() -> int:
        return 1

    one()


minimal_taskflow()
"""


def _measure(path: Path, state_dir: str) -> tuple[float, float]:
    """(seconds for airflow.sdk, seconds for the file beyond it) in a fresh interpreter."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "FEEDBACK_LOOP_STATE_DIR": state_dir}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures["sdk"], figures["total"] - figures["sdk"]


def run() -> list[dict]:
    repeat = int(os.environ.get("BENCH_PARSE_REPEAT", "3"))
    files = sorted((ROOT / "dags").glob("*.py"))
    with tempfile.TemporaryDirectory(prefix="bench-dag-parse-") as scratch:
        minimal = Path(scratch) / "minimal_taskflow.py"
        minimal.write_text(MINIMAL_DAG, encoding="utf-8")
        warm_state = str(Path(scratch) / "state")
        for path in files:  # untimed: fills the config digest cache, as the first parse after a change does
            _measure(path, warm_state)
        samples: dict[Path, list[tuple[float, float]]] = {p: [] for p in [minimal, *files]}
        cold: list[float] = []
        for index in range(repeat):
            for path in samples:
                samples[path].append(_measure(path, warm_state))
            cold.append(_measure(files[0], str(Path(scratch) / f"cold-{index}"))[1])

    floor_ms = 1000 * statistics.median(beyond for _, beyond in samples[minimal])
    rows = [
        {
            "metric": "airflow.sdk import alone",
            "value": statistics.median(s for s, _ in samples[minimal]),
            "unit": "s",
        }
    ]
    rows.append(
        {
            "metric": "minimal TaskFlow DAG: beyond airflow.sdk (Airflow's floor)",
            "value": floor_ms,
            "unit": "ms",
        }
    )
    for path in files:
        beyond_ms = 1000 * statistics.median(beyond for _, beyond in samples[path])
        verdict = "PASS" if beyond_ms <= BUDGET_MS else "OVER"
        rows.append({"metric": f"{path.name}: beyond airflow.sdk", "value": beyond_ms, "unit": "ms"})
        rows.append(
            {
                "metric": f"{path.name}: ratio to the {BUDGET_MS:.0f} ms budget",
                "value": beyond_ms / BUDGET_MS,
                "unit": f"x {verdict}",
            }
        )
        rows.append(
            {
                "metric": f"{path.name}: beyond the minimal TaskFlow DAG",
                "value": beyond_ms - floor_ms,
                "unit": "ms",
            }
        )
    rows.append(
        {
            "metric": f"{files[0].name}: beyond airflow.sdk, config digest cache cold",
            "value": 1000 * statistics.median(cold),
            "unit": "ms",
        }
    )
    return rows
