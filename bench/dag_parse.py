"""DAG file parse time, two ways, both beyond `airflow.sdk`, median of BENCH_PARSE_REPEAT runs (default 3)
taken round-robin over the files so that load from other work on the machine spreads over all of them:

- **in the dag-processor** (the budget of issue 18 is checked on this one): what a parse costs where Airflow
  parses. The dag-processor's manager has imported its own machinery (`airflow.dag_processing.manager`),
  and before each parse it pre-imports the `airflow.*` modules the file names (`[dag_processor]
  parsing_pre_import_modules`, on by default), then forks a child that runs the file. This benchmark does
  the same: one parent with that state, a forked child per parse, the child's time to run the file.
- **fresh interpreter**: the file imported in a new interpreter after `import airflow.sdk`, the upper
  bound a parse could cost (nothing of Airflow's lazily imported parts is loaded yet). Beside it the same
  time for a minimal TaskFlow DAG (one @dag, one Param, one @task), which pays what Airflow's decorators
  import lazily (the standard provider's PythonOperator, timetables, assets).

Per file: ms beyond `airflow.sdk`, the ratio to the 50 ms budget with PASS/OVER. The config digest the DAG
files read is cached under the state dir (core.dag_config): the per-file figures are the steady state;
"config digest cache cold" is one file's parse right after the config (or the code validating it)
changed, when the file is validated with pydantic again. Python loads bytecode where it exists:
`make install` compiles it (as installing a wheel does), so source compilation is not counted.
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


PROCESSOR_PROBE = """
import importlib, json, os, runpy, statistics, sys
import time
import airflow.sdk  # noqa: F401
import airflow.dag_processing.manager  # noqa: F401 - what the dag-processor's manager has loaded
from airflow.utils.file import iter_airflow_imports

def parse_in_child(path):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        start = time.perf_counter()
        runpy.run_path(path)
        os.write(write, repr(time.perf_counter() - start).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        seconds = float(answer.read())
    os.waitpid(pid, 0)
    return seconds

paths, repeat = sys.argv[2:], int(sys.argv[1])
for path in paths:  # as the manager does before it forks the parse of a file
    for module in iter_airflow_imports(path):
        importlib.import_module(module)
samples = {path: [] for path in paths}
for _ in range(repeat):
    for path in paths:
        samples[path].append(parse_in_child(path))
print(json.dumps({path: statistics.median(values) for path, values in samples.items()}))
"""


def _in_processor(paths: list[Path], state_dir: str, repeat: int) -> dict[Path, float]:
    """Seconds per file parsed in a forked child of a dag-processor-like parent (module docstring)."""
    figures = _probe(PROCESSOR_PROBE, [str(repeat), *map(str, paths)], state_dir, timeout=600)
    return {path: figures[str(path)] for path in paths}


def _measure(path: Path, state_dir: str) -> tuple[float, float]:
    """(seconds for airflow.sdk, seconds for the file beyond it) in a fresh interpreter."""
    figures = _probe(PROBE, [str(path)], state_dir, timeout=180)
    return figures["sdk"], figures["total"] - figures["sdk"]


def _probe(script: str, args: list[str], state_dir: str, timeout: float) -> dict:
    """The JSON a probe script prints last, run in a fresh interpreter with the config digest under state_dir."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "FEEDBACK_LOOP_STATE_DIR": state_dir}
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


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

        in_processor = _in_processor(files, warm_state, repeat)

    rows = []
    for path in files:
        parse_ms = 1000 * in_processor[path]
        verdict = "PASS" if parse_ms <= BUDGET_MS else "OVER"
        rows.append({"metric": f"{path.name}: in the dag-processor", "value": parse_ms, "unit": "ms"})
        rows.append(
            {
                "metric": f"{path.name}: in the dag-processor, ratio to the {BUDGET_MS:.0f} ms budget",
                "value": parse_ms / BUDGET_MS,
                "unit": f"x {verdict}",
            }
        )
    floor_ms = 1000 * statistics.median(beyond for _, beyond in samples[minimal])
    rows += [
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
        rows.append(
            {
                "metric": f"{path.name}: fresh interpreter, beyond airflow.sdk",
                "value": beyond_ms,
                "unit": "ms",
            }
        )
        rows.append(
            {
                "metric": f"{path.name}: fresh interpreter, ratio to the {BUDGET_MS:.0f} ms budget",
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
