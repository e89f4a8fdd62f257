"""Reliability soak: the tests in tests/reliability/ at full size, with the figures they measured.

The same tests `make test` runs in a short form (about 250 fuzz requests, a few hundred posted events),
here with FL_SOAK=1: at least 1,200 schemathesis-generated requests against the API's OpenAPI document,
12 clients x 150 events through 5 PostgreSQL restarts, 200 urgent events against a failing then slow
webhook, 2,000 inference requests retried after a mid-way failure. Every test must pass; the figures
(requests, 2xx/4xx/5xx counts, rows stored, restarts, attempts, latencies) come back as benchmark rows.

Run: `make soak` or `.venv/bin/python -m bench soak`. Results are recorded in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _name(test: str) -> str:
    """A readable metric prefix: the test name without "test_", shortened, its parameter kept."""
    base, _, param = test.removeprefix("test_").partition("[")
    return base[:48] + (f"[{param}" if param else "")


def _unit(metric: str) -> str:
    if metric.endswith("_bytes"):
        return "bytes"
    if metric.endswith("_ms"):
        return "ms"
    if metric.endswith("_s"):
        return "s"
    return "count"


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="fl-soak-") as tmp:
        figures_file = Path(tmp) / "figures.json"
        env = {**os.environ, "FL_SOAK": "1", "FL_RELIABILITY_FIGURES": str(figures_file)}
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reliability"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        summary = [line for line in result.stdout.splitlines() if " passed" in line or " failed" in line]
        if result.returncode != 0:
            raise RuntimeError(
                f"the reliability soak failed (pytest exit {result.returncode}):\n{result.stdout[-6000:]}"
            )
        found: dict[str, dict[str, float]] = json.loads(figures_file.read_text())
    print(f"  soak: {summary[-1] if summary else 'done'} in {elapsed:.0f}s", file=sys.stderr)
    rows = [
        {"metric": f"{_name(test)}.{name}", "value": value, "unit": _unit(name)}
        for test, figures in found.items()
        for name, value in figures.items()
    ]
    rows.append({"metric": "soak_wall_time_s", "value": round(elapsed, 1), "unit": "s"})
    return rows
