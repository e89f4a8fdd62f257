"""Batch ingest, this checkout against an earlier commit, paired round by round in one run.

    BENCH_AB_BASE=e169d38 .venv/bin/python -m bench._ingest_ab

Two `airflow api-server`s with our plugin (one worker each), one importing this checkout and one a
throwaway git worktree of BENCH_AB_BASE, against one throwaway database. Each round sends a 10,000-item
batch to both, in alternating order, each followed by a raw COPY of the same rows; it also counts the
server's and PostgreSQL's CPU per batch. On a shared machine whose speed drifts within seconds, the
difference of the two batch times in the same round (with its standard error) shows a change that the
medians of separate `bench ingest` runs hide. Not part of `make bench`: it needs a commit to compare.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import _proc, ingest

ROOT = Path(__file__).resolve().parent.parent


def _postgres_cpu() -> float:
    """CPU seconds of every running postgres process (backends of the pool persist across rounds)."""
    found = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True, check=False).stdout
    total = 0.0
    for pid in (int(p) for p in found.split()):
        try:
            total += _proc.cpu_seconds(pid, descendants=False)
        except OSError:  # ended in between
            pass
    return total


def _payload(traces: list, tag: str, n: int) -> tuple[bytes, list]:
    items = [ingest._event(i, traces[i], tag) for i in range(n)]
    return json.dumps({"items": items}).encode(), items


def main() -> int:
    base = os.environ.get("BENCH_AB_BASE", "").strip()
    if not base:
        print("bench._ingest_ab: set BENCH_AB_BASE to the commit to compare with", file=sys.stderr)
        return 2
    rounds = int(os.environ.get("BENCH_AB_ROUNDS", "13"))
    n = int(os.environ.get("BENCH_INGEST_BATCH", "10000"))
    tmp = Path(tempfile.mkdtemp(prefix="fl-bench-ab-"))
    worktree = tmp / "base"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(worktree), base], check=True
    )
    times: dict[str, list[tuple[float, float, float, float]]] = {"this": [], "base": []}
    try:
        with ingest._environment(tmp) as env:
            url = env["FEEDBACK_LOOP_DB_URL"]
            token = ingest._airflow_token()
            traces = ingest._seed(url, n)
            (tmp / "this").mkdir()
            (tmp / "other").mkdir()
            base_env = {**env, "PYTHONPATH": str(worktree / "include")}  # before the editable install
            with (
                ingest._server(env, 1, tmp / "this" / "server.log", "plugin") as (
                    this_port,
                    prefix,
                    this_pid,
                ),
                ingest._server(base_env, 1, tmp / "other" / "server.log", "plugin") as (
                    base_port,
                    _,
                    base_pid,
                ),
            ):
                servers = {"this": (this_port, this_pid), "base": (base_port, base_pid)}
                for tag, (port, _pid) in servers.items():
                    warm, _ = _payload(traces, f"warm-{tag}", min(1000, n))
                    ingest._batches(port, prefix, token, [warm], min(1000, n))
                for r in range(rounds):
                    order = ("this", "base") if r % 2 == 0 else ("base", "this")
                    for tag in order:
                        port, pid = servers[tag]
                        payload, items = _payload(traces, f"{tag}{r}", n)
                        server_before, postgres_before = _proc.cpu_seconds(pid), _postgres_cpu()
                        batch = ingest._batches(port, prefix, token, [payload], n)
                        server_cpu = _proc.cpu_seconds(pid) - server_before
                        postgres_cpu = _postgres_cpu() - postgres_before
                        copy = ingest._raw_copy(url, [ingest._copy_rows(items, f"copy-{tag}{r}")])
                        times[tag].append((batch, copy, server_cpu, postgres_cpu))
                    print(
                        f"  round {r + 1}/{rounds}: this {times['this'][-1][0] * 1000:.0f} ms, "
                        f"base {times['base'][-1][0] * 1000:.0f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    for tag, rows in times.items():
        batch, copy, server_cpu, postgres_cpu = (
            statistics.median(column) * 1000 for column in zip(*rows, strict=True)
        )
        ratio = statistics.median(c / b for b, c, _, _ in rows)
        print(
            f"{tag:>5}: batch {batch:.0f} ms, raw COPY {copy:.0f} ms, batch / raw COPY {ratio:.2f} (medians); "
            f"CPU per batch: server {server_cpu:.0f} ms, PostgreSQL {postgres_cpu:.0f} ms"
        )
    differences = [(b[0] - t[0]) * 1000 for t, b in zip(times["this"], times["base"], strict=True)]
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
    print(
        f"base - this, per round: median {statistics.median(differences):.0f} ms, "
        f"mean {statistics.mean(differences):.0f} ± {error:.0f} ms (standard error; > 0: this is faster)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
