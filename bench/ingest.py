"""Feedback ingest: the real API server against raw COPY, in one run.

- single events: N concurrent clients (keep-alive connections of one lean asyncio client,
  bench/_http_load.py) POST /feedback (each with its own client_event_id) to a real server on 127.0.0.1;
  requests/s, p50/p99 latency, and the CPU per event of the server, of PostgreSQL and of the client;
- batch: POST /feedback/batch with B items per request (one transaction, COPY straight into `feedback`);
  rows/s;
- ceiling: raw COPY of the same rows straight into the feedback table; rows/s;
- open loop: single events sent at fixed rates (BENCH_INGEST_RATES, 100 to 1,000/s, BENCH_INGEST_OPEN_SECONDS
  each), latency counted from each request's due time (bench/_http_load.py), and the rate where p99 passes
  20 ms; beside it PostgreSQL's own rate of single-row autocommit INSERTs on one connection, same run;
- Airflow's ceiling (plugin mode): the same single events, closed and open loop, against a no-op plugin
  route on the same api-server (the same token check, the body parsed, 201, no database), so what Airflow's
  own request handling allows on this machine is measured beside what the feedback API reaches.
Batch and raw COPY rounds alternate (the machine is shared, load moves), and each is reported as the median
over the rounds, with the worst and best per-round ratio.

Everything runs on a throwaway database on the resolved PostgreSQL server and a throwaway Airflow home
(tokens are Airflow JWTs signed by the simple auth manager, verified by the server with Airflow's code).
Knobs (environment): BENCH_INGEST_CLIENTS (32), BENCH_INGEST_REQUESTS (3000), BENCH_INGEST_BATCH (10000),
BENCH_INGEST_ROUNDS (7), BENCH_INGEST_WORKERS (server workers; default as shipped: one per core, at most 4), BENCH_INGEST_RATES (100,200,300,500,700,1000),
BENCH_INGEST_OPEN_SECONDS (4), BENCH_INGEST_SERVER: `standalone` (`feedback-loop api serve`), `plugin` (the API
as mounted by our plugin on `airflow api-server`, under /feedback-api; its metric names start with
`plugin_`) or both, comma-separated (the default: `standalone,plugin`).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from bench import _http_load, _proc


def _setting(name: str, default: int) -> int:
    return int(os.environ.get(f"BENCH_INGEST_{name}", default))


def _log(message: str) -> None:
    print(f"  ingest: {message}", file=sys.stderr, flush=True)


# A production-like mix: 20% negative (below the 30% review trigger), some comments with personal data.
MIX = (
    {"kind": "rating", "rating": 5},
    {"kind": "thumbs_up"},
    {"kind": "rating", "rating": 4, "comment": "fine, but mail me at someone@example.org"},
    {"kind": "implicit", "signal": "accepted"},
    {"kind": "thumbs_down", "comment": "it read my 7 as a 1, please check"},
    {"kind": "thumbs_up"},
    {"kind": "rating", "rating": 3, "comment": "took a while; call +1 555 123 4567 if needed"},
    {"kind": "correction", "label": "7"},
    {"kind": "comment", "comment": "would like to see the top alternatives"},
    {"kind": "thumbs_up"},
)


def _event(i: int, trace: uuid.UUID, prefix: str) -> dict[str, Any]:
    return {
        "trace_id": str(trace),
        "user_id": f"user-{i % 997}",
        "client_event_id": f"{prefix}-{i}",
        **MIX[i % len(MIX)],
    }


@contextmanager
def _environment(tmp: Path) -> Iterator[dict[str, str]]:
    """A throwaway Airflow home and feedback database; yields the environment for the server process."""
    from feedback_loop.core import db, migrations

    server_url = db.resolve_url()
    name = f"fl_bench_{uuid.uuid4().hex[:8]}"
    url = db.ensure_database(server_url, name)
    migrations.upgrade(url)
    env = {
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp / 'airflow' / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "bench:op",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp / "passwords.json"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "FEEDBACK_LOOP_DB_URL": url,
        "FEEDBACK_LOOP_ARTIFACT_DIR": str(tmp / "models"),
        "FEEDBACK_LOOP_WEBHOOK_URL": "",
    }
    (tmp / "airflow").mkdir()
    (tmp / "passwords.json").write_text(json.dumps({"bench": secrets.token_urlsafe(16)}))
    try:
        with mock.patch.dict(os.environ, env):
            yield env
    finally:
        db.drop_database(server_url, name)


# Benchmark only: written into the throwaway plugins folder beside our plugins in plugin mode. It answers
# like POST /feedback would (same token dependency, JSON body parsed, 201) and stores nothing: the fastest
# any plugin route can be inside this api-server, our request handling and PostgreSQL taken away.
NOOP_PLUGIN = """
import json

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from feedback_loop.adapters.airflow_tokens import user_dependency

app = FastAPI()
user = user_dependency()


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/feedback")
async def feedback(request: Request, caller=Depends(user)):
    body = json.loads(await request.body())
    return JSONResponse({"id": 1, "trace_id": body["trace_id"], "created": True}, status_code=201)


class BenchNoopPlugin(AirflowPlugin):
    name = "bench_noop"
    fastapi_apps = [{"app": app, "url_prefix": "/noop-api", "name": "bench no-op"}]
"""
NOOP_PREFIX = "/noop-api"


def _plugins_folder(tmp: Path) -> Path:
    """Our plugins plus the no-op one, in a throwaway folder."""
    from feedback_loop.core import paths

    root = paths.project_root() or Path.cwd()
    folder = tmp / "plugins"
    folder.mkdir()
    for plugin in (root / "plugins").glob("*.py"):
        shutil.copy(plugin, folder / plugin.name)
    (folder / "bench_noop_plugin.py").write_text(NOOP_PLUGIN)
    return folder


def _airflow_token() -> str:
    """Initialise Airflow's metadata DB and sign a token for an op user with Airflow's own signer."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.utils import db as airflow_db

    airflow_db.initdb()
    return init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bench", role="op"))


def _seed(url: str, n: int) -> list[uuid.UUID]:
    from sklearn.dummy import DummyClassifier

    from feedback_loop.core import db, store
    from feedback_loop.registry import versions as registry

    traces = [uuid.uuid4() for _ in range(n)]
    with db.connect(url) as conn:
        estimator = DummyClassifier().fit([[0], [1]], ["0", "1"])
        registry.register(conn, "bench", estimator, created_by="bench")
        store.log_predictions(
            conn,
            (
                store.Prediction(t, "bench", 1, {"x": i}, str(i % 10), 0.9, {"0": 0.9}, {"region": "r"})
                for i, t in enumerate(traces)
            ),
        )
    return traces


@contextmanager
def _server(env: dict[str, str], workers: int, log_path: Path, mode: str) -> Iterator[tuple[int, str, int]]:
    """(port, URL prefix of the feedback API, pid) of a running server of the given mode."""
    import socket

    from feedback_loop.lab import stack

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if mode == "plugin":
        prefix = "/feedback-api"
        command = [stack._airflow_bin(), "api-server", "--apps", "core", "-H", "127.0.0.1", "-p", str(port)]
        command += ["-w", str(workers)]
        env = {**env, "AIRFLOW__CORE__PLUGINS_FOLDER": str(_plugins_folder(log_path.parent))}
    else:
        prefix = ""
        command = [sys.executable, "-m", "feedback_loop.cli", "api", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the {mode} server exited:\n{log_path.read_text()[-2000:]}")
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    connection.request("GET", f"{prefix}/healthz")
                    if connection.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {mode} server did not become healthy within 90s")
                time.sleep(0.2)
            yield port, prefix, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _single_events(
    port: int, prefix: str, token: str, bodies: list[bytes], clients: int
) -> tuple[float, list[float]]:
    """(wall seconds, per-request latencies) for all bodies sent by `clients` keep-alive connections."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"{prefix}/feedback"
    requests = [_http_load.request_bytes("127.0.0.1", port, path, headers, body) for body in bodies]
    result = _http_load.closed("127.0.0.1", port, requests, clients)
    if result.failures:
        raise RuntimeError(f"{result.failures} single-event requests failed, e.g. {result.first_failure}")
    return result.wall, result.latencies


def _batches(port: int, prefix: str, token: str, payloads: list[bytes], expected: int) -> float:
    """Seconds to POST the payloads one after another (each must store `expected` new rows)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    total = 0.0
    for payload in payloads:
        started = time.perf_counter()
        connection.request("POST", f"{prefix}/feedback/batch", body=payload, headers=headers)
        response = connection.getresponse()
        body = response.read()
        total += time.perf_counter() - started
        if response.status != 201 or json.loads(body)["created"] != expected:
            raise RuntimeError(f"batch failed: HTTP {response.status} {body[:300]!r}")
    return total


def _raw_copy(url: str, rounds: list[list[tuple[Any, ...]]]) -> float:
    """COPY the same rows straight into feedback (the ceiling: no HTTP, no validation, no staging)."""
    from feedback_loop.core import db

    columns = (
        "trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source, "
        "priority, failure_mode, idempotency_key, request_hash"
    )
    total = 0.0
    with db.connect(url) as conn:
        for rows in rounds:
            started = time.perf_counter()
            with conn.cursor() as cur:
                with cur.copy(f"COPY feedback ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            conn.commit()
            total += time.perf_counter() - started
    return total


def _copy_rows(events: list[dict[str, Any]], prefix: str) -> list[tuple[Any, ...]]:
    """The rows the API would store for these events (masked, triaged, hashed), with fresh keys."""
    from feedback_loop.api.schemas import FeedbackBody
    from feedback_loop.api.service import FeedbackService

    rows = []
    for i, event in enumerate(events):
        item = FeedbackService._prepared(FeedbackBody.model_validate(event))
        rows.append(
            (
                str(item.trace_id), "bench", 1, item.kind, item.rating, item.label, item.signal, item.comment,
                item.user_id, item.source, item.priority, item.failure_mode, f"{prefix}-{i}", item.request_hash(),
            )
        )  # fmt: skip
    return rows


def _single_row_inserts(
    url: str, rows: list[tuple[Any, ...]], postmaster: int | None
) -> tuple[float, float | None]:
    """PostgreSQL's own single-row rate: one autocommit INSERT per row on one connection, rows per second
    (the figure issue 18 compares single events with; no HTTP, no checks, no look-up of the prediction),
    and PostgreSQL's CPU seconds per row. The CPU is read while the connection is open: its backend exits
    with it, and until the postmaster has reaped it its CPU is counted nowhere (a run read 0)."""
    from feedback_loop.core import db

    statement = (
        "INSERT INTO feedback (trace_id, model_name, model_version, kind, rating, label, signal, comment, "
        "user_id, source, priority, failure_mode, idempotency_key, request_hash) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    with db.connect(url) as conn:
        conn.autocommit = True
        pg_before = _postgres_cpu(postmaster)
        started = time.perf_counter()
        for row in rows:
            conn.execute(statement, row, prepare=True)
        rate = len(rows) / (time.perf_counter() - started)
        return rate, _per_event(pg_before, _postgres_cpu(postmaster), len(rows))


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process when it runs on this machine and /proc shows it (the parent of
    this connection's backend); None otherwise."""
    from feedback_loop.core import db

    with db.connect(url) as conn:
        backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        try:  # while the connection is open: its backend exits with it
            fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{fields[1]}/cmdline").read_bytes()
        except OSError:  # another host, or a container's own process ids
            return None
    # In a container the same number on this host may be some other process.
    return int(fields[1]) if b"postgres" in command else None


def _postgres_cpu(postmaster: int | None) -> float | None:
    return None if postmaster is None else _proc.cpu_seconds(postmaster)


def _per_event(before: float | None, after: float | None, n: int) -> float | None:
    """PostgreSQL's CPU seconds per event: its whole process tree, background writers included (the WAL
    an event writes is part of its cost)."""
    return None if before is None or after is None else (after - before) / n


def _measured_ms(metric: str, seconds: float | None, unit: str) -> list[dict[str, Any]]:
    """A row for a figure in milliseconds, none when it could not be measured here."""
    return [] if seconds is None else [{"metric": metric, "value": seconds * 1000, "unit": unit}]


def _open_loop(
    port: int, prefix: str, token: str, traces: list[uuid.UUID], rates: list[int], seconds: float, tag: str
) -> list[_http_load.Result]:
    """Single events at each offered rate in turn (`seconds` each); stops raising the rate once the server
    is saturated (it answers at less than 80 % of the offered rate, or p99 passes 2 s)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    results = []
    for rate in rates:
        count = max(50, int(rate * seconds))
        requests = [
            _http_load.request_bytes(
                "127.0.0.1", port, f"{prefix}/feedback", headers,
                json.dumps(_event(i, traces[i % len(traces)], f"{tag}-open{rate}")).encode(),
            )
            for i in range(count)
        ]  # fmt: skip
        result = _http_load.run("127.0.0.1", port, requests, rate)
        if result.failures:
            raise RuntimeError(f"{result.failures} open-loop requests failed, e.g. {result.first_failure}")
        _log(
            f"open loop {rate}/s: answered {result.achieved:,.0f}/s, p50 {result.p50_ms:,.1f} ms, "
            f"p99 {result.p99_ms:,.1f} ms"
        )
        results.append(result)
        if result.achieved < 0.8 * rate or result.p99_ms > 2000:
            skipped = [r for r in rates if r > rate]
            if skipped:
                _log(f"saturated at {rate}/s; higher rates {skipped} not sent")
            break
    return results


def _noop_ceiling(
    port: int,
    token: str,
    traces: list[uuid.UUID],
    bodies: list[bytes],
    clients: int,
    rates: list[int],
    seconds: float,
    pid: int,
) -> dict[str, Any] | None:
    """Plugin mode only: the same closed- and open-loop load on the no-op route (NOOP_PLUGIN)."""
    if not _probe(port, f"{NOOP_PREFIX}/healthz"):
        return None
    _log(f"Airflow's ceiling: {len(bodies)} single events to the no-op plugin route, {clients} clients")
    _single_events(port, NOOP_PREFIX, token, bodies[:200], clients)
    cpu_before = _proc.cpu_seconds(pid)
    wall, _ = _single_events(port, NOOP_PREFIX, token, bodies, clients)
    cpu = (_proc.cpu_seconds(pid) - cpu_before) / len(bodies)
    _log(f"no-op route: {len(bodies) / wall:,.0f} req/s, {cpu * 1000:.2f} ms of server CPU each")
    open_loop = _open_loop(port, NOOP_PREFIX, token, traces, rates, seconds, "noop")
    return {"rps": len(bodies) / wall, "cpu": cpu, "open_loop": open_loop}


def _probe(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False


def _open_loop_rows(results: list[_http_load.Result], tag: str = "") -> list[dict[str, Any]]:
    rows = []
    for result in results:
        rate = int(result.rate)
        rows.append(
            {"metric": f"{tag}open_loop_{rate}_per_s_answered", "value": result.achieved, "unit": "req/s"}
        )
        rows.append({"metric": f"{tag}open_loop_{rate}_per_s_p50", "value": result.p50_ms, "unit": "ms"})
        rows.append({"metric": f"{tag}open_loop_{rate}_per_s_p99", "value": result.p99_ms, "unit": "ms"})
    crossing = _http_load.crossing(results, 20.0)
    if crossing is None:
        unit = f"req/s (p99 stayed under 20 ms up to {int(results[-1].rate)}/s)"
    elif results[0].p99_ms > 20.0:
        unit = "req/s (p99 was over 20 ms already at the lowest rate sent)"
    else:
        unit = "req/s"
    value = float("nan") if crossing is None else crossing
    rows.append({"metric": f"{tag}open_loop_rate_where_p99_passes_20ms", "value": value, "unit": unit})
    return rows


def _modes() -> list[str]:
    modes = [
        m.strip() for m in os.environ.get("BENCH_INGEST_SERVER", "standalone,plugin").split(",") if m.strip()
    ]
    unknown = [m for m in modes if m not in ("standalone", "plugin")]
    if unknown or not modes:
        raise SystemExit(f"BENCH_INGEST_SERVER lists standalone and/or plugin, not {unknown or modes!r}")
    return modes


def run() -> list[dict[str, Any]]:
    modes = _modes()
    if len(modes) == 1:
        return _run_mode(modes[0])
    # One process per mode: Airflow binds its metadata database (a throwaway SQLite file per run) when
    # the process first uses it, so a second run in the same process would find the first one's, deleted.
    rows: list[dict[str, Any]] = []
    root = Path(__file__).resolve().parents[1]
    for mode in modes:
        probe = f"import json, sys; sys.path.insert(0, {str(root)!r}); from bench import ingest; "
        probe += f"print(json.dumps(ingest._run_mode({mode!r})))"
        result = subprocess.run(
            [sys.executable, "-c", probe], stdout=subprocess.PIPE, text=True, check=True, timeout=1800
        )
        rows += json.loads(result.stdout.strip().splitlines()[-1])
    return rows


def _run_mode(mode: str) -> list[dict[str, Any]]:
    from feedback_loop.api.workers import default_workers

    clients = _setting("CLIENTS", 32)
    n_single = _setting("REQUESTS", 3000)
    batch_size = _setting("BATCH", 10_000)
    rounds = _setting("ROUNDS", 7)
    workers = _setting("WORKERS", default_workers())
    rates = [int(r) for r in os.environ.get("BENCH_INGEST_RATES", "100,200,300,500,700,1000").split(",")]
    seconds = float(os.environ.get("BENCH_INGEST_OPEN_SECONDS", "4"))
    tmp = Path(tempfile.mkdtemp(prefix="fl-bench-ingest-"))
    try:
        with _environment(tmp) as env:
            url = env["FEEDBACK_LOOP_DB_URL"]
            token = _airflow_token()
            traces = _seed(url, batch_size)
            _log(f"seeded {len(traces)} predictions; starting the {mode} server ({workers} worker(s))")
            with _server(env, workers, tmp / "server.log", mode) as (port, prefix, pid):
                warmup = [json.dumps(_event(i, traces[i], "warm")).encode() for i in range(200)]
                _single_events(port, prefix, token, warmup, clients)
                single = [
                    json.dumps(_event(i, traces[i % len(traces)], "single")).encode() for i in range(n_single)
                ]
                _log(f"{n_single} single events with {clients} concurrent clients")
                postmaster = _postmaster_pid(url)
                cpu_before, pg_before = _proc.cpu_seconds(pid), _postgres_cpu(postmaster)
                client_before = _own_cpu()
                wall, latencies = _single_events(port, prefix, token, single, clients)
                cpu_per_event = (_proc.cpu_seconds(pid) - cpu_before) / n_single
                client_per_event = (_own_cpu() - client_before) / n_single
                pg_per_event = _per_event(pg_before, _postgres_cpu(postmaster), n_single)
                if pg_per_event is not None:
                    _log(f"PostgreSQL's own CPU per single event: {pg_per_event * 1000:.2f} ms")
                open_loop = _open_loop(port, prefix, token, traces, rates, seconds, mode)
                insert_rows = _copy_rows([_event(i, traces[i], "x") for i in range(n_single)], "insert")
                insert_rps, pg_per_insert = _single_row_inserts(url, insert_rows, postmaster)
                _log(f"PostgreSQL alone: {insert_rps:,.0f} single-row autocommit INSERTs/s")
                warm_batch = [_event(i, traces[i], "warmbatch") for i in range(min(1000, batch_size))]
                _batches(port, prefix, token, [json.dumps({"items": warm_batch}).encode()], len(warm_batch))
                # Rounds alternate: a batch through the API, then raw COPY of the same rows, so both see
                # the same machine load (it is shared); the figures are medians over the rounds.
                _log(f"{rounds} rounds: a batch of {batch_size} items, then raw COPY of the same rows")
                batch_rates, copy_rates = [], []
                for r in range(rounds):
                    items = [_event(i, traces[i], f"batch{r}") for i in range(batch_size)]
                    payload = json.dumps({"items": items}).encode()
                    batch_rates.append(batch_size / _batches(port, prefix, token, [payload], batch_size))
                    copy_rows = _copy_rows(items, f"copy{r}")
                    copy_rates.append(batch_size / _raw_copy(url, [copy_rows]))
                ceiling = _noop_ceiling(port, token, traces, single, clients, rates, seconds, pid)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    quantiles = statistics.quantiles(latencies, n=100)
    single_rps = n_single / wall
    batch_rps = statistics.median(batch_rates)
    copy_rps = statistics.median(copy_rates)
    pair_ratios = sorted(b / c for b, c in zip(batch_rates, copy_rates, strict=True))
    tag = "plugin_" if mode == "plugin" else ""
    rows = [
        {"metric": f"single_event_requests_per_s_{clients}_clients", "value": single_rps, "unit": "req/s"},
        {"metric": "single_event_latency_p50", "value": quantiles[49] * 1000, "unit": "ms"},
        {"metric": "single_event_server_cpu", "value": cpu_per_event * 1000, "unit": "ms per event"},
        {
            "metric": "single_event_client_cpu",
            "value": client_per_event * 1000,
            "unit": "ms per event (the load generator's own, on the same cores)",
        },
        *_measured_ms(
            "single_event_postgres_cpu",
            pg_per_event,
            "ms per event (every process of the server: others' work on it counts too)",
        ),
        {"metric": "single_event_latency_p99", "value": quantiles[98] * 1000, "unit": "ms"},
        {
            "metric": f"batch_ingest_rows_per_s_{batch_size}_per_request_median",
            "value": batch_rps,
            "unit": "rows/s",
        },
        {"metric": "raw_copy_rows_per_s_median", "value": copy_rps, "unit": "rows/s"},
        {
            "metric": "ratio_batch_to_raw_copy",
            "value": batch_rps / copy_rps,
            "unit": "x (issue 12 wants >= 0.6)",
        },
        {"metric": "ratio_batch_to_raw_copy_worst_round", "value": pair_ratios[0], "unit": "x"},
        {"metric": "ratio_batch_to_raw_copy_best_round", "value": pair_ratios[-1], "unit": "x"},
        {"metric": "ratio_batch_to_single_event", "value": batch_rps / single_rps, "unit": "x"},
        {"metric": "postgres_single_row_inserts_per_s", "value": insert_rps, "unit": "rows/s"},
        *_measured_ms("postgres_cpu_per_single_row_insert", pg_per_insert, "ms"),
        {
            "metric": "ratio_single_events_to_postgres_inserts",
            "value": single_rps / insert_rps,
            "unit": "x (issue 18 wants >= 0.5)",
        },
    ]
    rows += _open_loop_rows(open_loop)
    if ceiling is not None:
        rows += [
            {
                "metric": "noop_route_requests_per_s",
                "value": ceiling["rps"],
                "unit": "req/s (Airflow's ceiling)",
            },
            {"metric": "noop_route_server_cpu", "value": ceiling["cpu"] * 1000, "unit": "ms per request"},
            {
                "metric": "ratio_single_events_to_noop_route",
                "value": single_rps / ceiling["rps"],
                "unit": "x",
            },
            {
                "metric": "ratio_noop_route_to_postgres_inserts",
                "value": ceiling["rps"] / insert_rps,
                "unit": "x (no plugin route can pass this)",
            },
        ]
        rows += _open_loop_rows(ceiling["open_loop"], "noop_")
    return [{**row, "metric": tag + row["metric"]} for row in rows]
