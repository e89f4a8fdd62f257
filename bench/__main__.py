"""Run every benchmark module and print one table of figures and ratios."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(selected: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent))
    names = [m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_")]
    if selected:
        unknown = sorted(set(selected) - set(names))
        if unknown:
            print(f"bench: unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
            return 2
        names = selected
    if not names:
        print("bench: no benchmarks are defined yet", file=sys.stderr)
        return 1
    rows: list[dict] = []
    for name in names:
        print(f"running bench/{name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        for row in module.run():
            rows.append({"benchmark": name, **row})
        print(f"  bench/{name} took {time.monotonic() - started:.1f}s", file=sys.stderr)
    width = max(len(r["metric"]) for r in rows)
    for row in rows:
        value = float(row["value"])
        shown = f"{value:>14,.4f}" if abs(value) < 10 else f"{value:>14,.1f}"
        print(f"{row['benchmark']:<16} {row['metric']:<{width}}  {shown} {row.get('unit', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
