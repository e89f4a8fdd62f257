"""DAG file parse time: each file in dags/ imported in a fresh interpreter (what a dag-processor child
pays), median of BENCH_PARSE_REPEAT runs (default 3), against the cost of importing Airflow's SDK alone."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, runpy, sys, time
start = time.perf_counter()
import airflow.sdk  # noqa: F401
sdk = time.perf_counter() - start
runpy.run_path(sys.argv[1])
print(json.dumps({"sdk": sdk, "total": time.perf_counter() - start}))
"""


def _measure(path: Path) -> tuple[float, float]:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures["sdk"], figures["total"]


def run() -> list[dict]:
    repeat = int(os.environ.get("BENCH_PARSE_REPEAT", "3"))
    rows = []
    for path in sorted((ROOT / "dags").glob("*.py")):
        samples = [_measure(path) for _ in range(repeat)]
        sdk = statistics.median(s for s, _ in samples)
        total = statistics.median(t for _, t in samples)
        rows.append({"metric": f"{path.name}: import incl. airflow.sdk", "value": total, "unit": "s"})
        rows.append(
            {"metric": f"{path.name}: the file itself (minus airflow.sdk)", "value": total - sdk, "unit": "s"}
        )
    return rows
