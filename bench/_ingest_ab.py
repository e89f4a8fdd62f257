"""Batch ingest (or single events), this checkout against an earlier commit, paired round by round in one run.

    BENCH_AB_BASE=e169d38 .venv/bin/python -m bench._ingest_ab
    BENCH_AB_KIND=single BENCH_AB_BASE=694bbcc .venv/bin/python -m bench._ingest_ab

Two `airflow api-server`s with our plugin (one worker each), one importing this checkout and one a
throwaway git worktree of BENCH_AB_BASE, against one throwaway database. Each round sends a 10,000-item
batch to both, in alternating order, each followed by a raw COPY of the same rows; it also counts the
server's and PostgreSQL's CPU per batch. With BENCH_AB_KIND=single each round instead sends
BENCH_AB_EVENTS (2,000) single events to each server at the same time, interleaved request by request
from BENCH_AB_CLIENTS (16) clients (BENCH_AB_SINGLE=turns: one server after the other), and counts each
server's CPU per event. BENCH_AB_WORKERS: server processes per api-server (1).

On a shared machine whose speed drifts within seconds, the difference of the two figures in the same round
(with its standard error) shows a change that the medians of separate `bench ingest` runs hide. Check a
setting with this checkout on both sides (BENCH_AB_BASE=HEAD) first: the difference should be zero within
its error; BENCH_AB_SWAP=1 starts the two codes in each other's place. BENCH_AB_KEEP=1 keeps the servers'
logs. Not part of `make bench`: it needs a commit to compare.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


EVENTS = int(os.environ.get("BENCH_AB_EVENTS", "2000"))
WORKERS = int(os.environ.get("BENCH_AB_WORKERS", "1"))  # server processes of each api-server
CLIENTS = int(os.environ.get("BENCH_AB_CLIENTS", "16"))  # concurrent single-event clients
# Single events: "together" (both servers loaded at once, interleaved: the same moments of the machine, but
# four server processes share its cores) or "turns" (one server at a time, as in a deployment).
TURNS = os.environ.get("BENCH_AB_SINGLE", "together") == "turns"
SWAP = bool(os.environ.get("BENCH_AB_SWAP"))


def _batch_round(url, port, prefix, token, pid, traces, tag) -> tuple[float, float, float, float]:
    """(batch seconds, raw COPY seconds, server CPU, PostgreSQL CPU) of one batch and its raw COPY."""
    payload, items = _payload(traces, tag, len(traces))
    server_before, postgres_before = _proc.cpu_seconds(pid), _postgres_cpu()
    batch = ingest._batches(port, prefix, token, [payload], len(traces))
    server_cpu = _proc.cpu_seconds(pid) - server_before
    postgres_cpu = _postgres_cpu() - postgres_before
    copy = ingest._raw_copy(url, [ingest._copy_rows(items, f"copy-{tag}")])
    return batch, copy, server_cpu, postgres_cpu


def _single_round(
    servers, prefix, token, traces, tag, round_number: int = 0
) -> dict[str, tuple[float, float, float, float]]:
    """Per server: (seconds, 0, server CPU, 0) of EVENTS single events each, sent to both servers at once,
    interleaved request by request from CLIENTS clients, so both see the same moments of the machine (with
    TURNS: to one server, then the other, which goes first alternating by `round_number`)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    tags = list(servers)
    # The same events for both servers (the mix repeats every ten), interleaved one by one.
    work = [
        (server, json.dumps(ingest._event(i, traces[i % len(traces)], f"{tag}-{server}")).encode())
        for i in range(EVENTS)
        for server in (tags if i % 2 == 0 else tags[::-1])
    ]
    local = threading.local()

    def send(job: tuple[str, bytes]) -> None:
        server, body = job
        connections = local.__dict__.setdefault("connections", {})
        if server not in connections:
            connections[server] = http.client.HTTPConnection("127.0.0.1", servers[server][0], timeout=60)
        connections[server].request("POST", f"{prefix}/feedback", body=body, headers=headers)
        response = connections[server].getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"{server}: HTTP {response.status}")

    if TURNS:
        order = tags if round_number % 2 == 0 else tags[::-1]
        figures = {}
        for server in order:
            jobs = [job for job in work if job[0] == server]
            before, started = _proc.cpu_seconds(servers[server][1]), time.perf_counter()
            with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
                list(pool.map(send, jobs))
            wall = time.perf_counter() - started
            figures[server] = (wall, 0.0, _proc.cpu_seconds(servers[server][1]) - before, 0.0)
        return figures
    before = {t: _proc.cpu_seconds(servers[t][1]) for t in tags}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(send, work))
    wall = time.perf_counter() - started
    return {t: (wall, 0.0, _proc.cpu_seconds(servers[t][1]) - before[t], 0.0) for t in tags}


def main() -> int:
    base = os.environ.get("BENCH_AB_BASE", "").strip()
    if not base:
        print("bench._ingest_ab: set BENCH_AB_BASE to the commit to compare with", file=sys.stderr)
        return 2
    rounds = int(os.environ.get("BENCH_AB_ROUNDS", "13"))
    single = os.environ.get("BENCH_AB_KIND", "batch") == "single"
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
            # Both servers import their code through PYTHONPATH (before the editable install), so that
            # the code is the only difference between them.
            this_env = {**env, "PYTHONPATH": str(ROOT / "include")}
            base_env = {**env, "PYTHONPATH": str(worktree / "include")}
            if SWAP:  # to check that the order the servers start in does not matter
                this_env, base_env = base_env, this_env
            with (
                ingest._server(this_env, WORKERS, tmp / "this" / "server.log", "plugin") as (
                    this_port,
                    prefix,
                    this_pid,
                ),
                ingest._server(base_env, WORKERS, tmp / "other" / "server.log", "plugin") as (
                    base_port,
                    _,
                    base_pid,
                ),
            ):
                servers = {"this": (this_port, this_pid), "base": (base_port, base_pid)}
                if SWAP:
                    servers = {"this": servers["base"], "base": servers["this"]}
                for tag, (port, _pid) in servers.items():
                    warm, _ = _payload(traces, f"warm-{tag}", min(1000, n))
                    ingest._batches(port, prefix, token, [warm], min(1000, n))
                if single:
                    _single_round(servers, prefix, token, traces, "warm-single")
                for r in range(rounds):
                    if single:
                        for tag, figures in _single_round(servers, prefix, token, traces, f"s{r}", r).items():
                            times[tag].append(figures)
                        print(
                            f"  round {r + 1}/{rounds}: server CPU per event this "
                            f"{times['this'][-1][2] / EVENTS * 1000:.3f} ms, base {times['base'][-1][2] / EVENTS * 1000:.3f} ms",
                            file=sys.stderr,
                            flush=True,
                        )
                        continue
                    order = ("this", "base") if r % 2 == 0 else ("base", "this")
                    for tag in order:
                        port, pid = servers[tag]
                        times[tag].append(_batch_round(url, port, prefix, token, pid, traces, f"{tag}{r}"))
                    print(
                        f"  round {r + 1}/{rounds}: this {times['this'][-1][0] * 1000:.0f} ms, "
                        f"base {times['base'][-1][0] * 1000:.0f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
        if os.environ.get("BENCH_AB_KEEP"):  # the servers' logs, for a look afterwards
            print(f"kept {tmp}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    for tag, rows in times.items():
        first, second, server_cpu, postgres_cpu = (
            statistics.median(column) * 1000 for column in zip(*rows, strict=True)
        )
        if single:
            rate = statistics.median(EVENTS / row[0] for row in rows)
            print(
                f"{tag:>5}: server CPU per event {server_cpu / EVENTS:.3f} ms, {rate:.0f} events/s "
                "(medians of the rounds)"
            )
            continue
        ratio = statistics.median(c / b for b, c, _, _ in rows)
        print(
            f"{tag:>5}: batch {first:.0f} ms, raw COPY {second:.0f} ms, batch / raw COPY {ratio:.2f} (medians); "
            f"CPU per batch: server {server_cpu:.0f} ms, PostgreSQL {postgres_cpu:.0f} ms"
        )
    if single:
        cpu = [(b[2] - t[2]) * 1000 / EVENTS for t, b in zip(times["this"], times["base"], strict=True)]
        cpu_error = statistics.stdev(cpu) / len(cpu) ** 0.5 if len(cpu) > 1 else float("nan")
        print(
            f"base - this, server CPU per event: mean {statistics.mean(cpu):.3f} ± {cpu_error:.3f} ms "
            "(standard error; > 0: this costs less)"
        )
        return 0
    differences = [(b[0] - t[0]) * 1000 for t, b in zip(times["this"], times["base"], strict=True)]
    error = statistics.stdev(differences) / len(differences) ** 0.5 if len(differences) > 1 else float("nan")
    print(
        f"base - this, per round: median {statistics.median(differences):.0f} ms, "
        f"mean {statistics.mean(differences):.0f} ± {error:.0f} ms (standard error; > 0: this is faster)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
