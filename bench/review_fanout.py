"""Review fan-out: how many waiting review tasks one Airflow holds (issue 16, item 4).

A real local Airflow (`feedback_loop.lab.stack`: api-server, scheduler with the LocalExecutor,
dag-processor, triggerer) on a throwaway state folder, feedback database and metadata database. For each
size N (BENCH_FANOUT_SIZES, default 100,500,2000), in turn on the same stack:

- enqueue N requests (digits rows, plus a few spare) and trigger `feedback_inference` ceil(N / 500) times at
  once (500 is the run's review budget maximum; `max_active_runs=4` lets 4 runs, 2,000 tasks, wait together)
  with confidence threshold 1.0 so that every prediction is a review candidate;
- **fan-out**: seconds from the first trigger until all N mapped review tasks wait in `awaiting_input`
  (counted in Airflow's metadata database, so polling does not load the api-server being measured);
- **listing**: Airflow's endpoint behind Browse -> Required Actions,
  `GET /api/v2/dags/~/dagRuns/~/hitlDetails` with the page's filters (`response_received=false`,
  `state=deferred,awaiting_input`, the ordering of its pending-actions query), one page of 50 (median and worst of
  BENCH_FANOUT_LIST_REPEAT), and every page of 100 (the server's maximum page size) until all N are read;
- **idle**: CPU the scheduler and api-server use while the N tasks only wait (BENCH_FANOUT_IDLE_SECONDS);
- **answers**: every task answered through Airflow's `PATCH .../hitlDetails` (our plugin's middleware
  records each as feedback on the way) by BENCH_FANOUT_CLIENTS concurrent reviewers; answers/s, p50/p99,
  api-server CPU per answer;
- **drain**: seconds until the runs have finished (each answered task resumes and records its answer).
Beside each phase: CPU seconds and cores used by the scheduler (its tree holds the LocalExecutor's task
processes; the scheduler process alone is reported too) and the api-server tree (it also serves the
task processes' execution API), their peak memory (PSS of the tree), and the 1-minute load average.

Knobs (environment): BENCH_FANOUT_SIZES (100,500,2000), BENCH_FANOUT_CLIENTS (8),
BENCH_FANOUT_LIST_REPEAT (5), BENCH_FANOUT_IDLE_SECONDS (15), BENCH_FANOUT_TIMEOUT (per phase, 2400 s),
BENCH_FANOUT_DRAIN (1; 0 skips waiting for the last size's runs to finish, the stack is stopped anyway).
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

import requests

from bench import _proc

DAG_ID = "feedback_inference"
RUN_BUDGET_MAX = 500  # the `review_budget` Param's maximum in dags/feedback_inference.py
UI_PAGE = 50  # the Required Actions table's page size (Airflow's fallback_page_limit too)
SERVER_PAGE = 100  # Airflow's [api] maximum_page_limit: a larger limit is cut to this
# The Required Actions page's filters, read from the bundled UI (docs/architecture.md).
PENDING = {"response_received": "false", "state": ["deferred", "awaiting_input"]}
UI_ORDER = ["dag_id", "run_after", "created_at", "task_display_name"]


def _setting(name: str, default: str) -> str:
    return os.environ.get(f"BENCH_FANOUT_{name}", default)


def _log(message: str) -> None:
    print(f"  review_fanout: {message}", file=sys.stderr, flush=True)


def _load() -> float:
    return os.getloadavg()[0]


@dataclass
class Usage:
    """CPU and peak memory of the scheduler and api-server trees over one phase, sampled once a second
    (peaks between samples are missed; CPU is exact, it is read from cumulative counters)."""

    pids: dict[str, int]
    started: float = field(default_factory=time.monotonic)
    cpu_start: dict[str, float] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # the phase's wall time, set on exit like cpu and load
    cpu: dict[str, float] = field(default_factory=dict)
    load: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _cpu(self) -> dict[str, float]:
        return {
            "scheduler": _proc.cpu_seconds(self.pids["scheduler"]),
            "scheduler_alone": _proc.cpu_seconds(self.pids["scheduler"], descendants=False),
            "api_server": _proc.cpu_seconds(self.pids["api-server"]),
        }

    def _sample(self) -> None:
        for name, key in (("scheduler", "scheduler"), ("api_server", "api-server")):
            self.peak[name] = max(self.peak.get(name, 0), _proc.pss_bytes(self.pids[key]))

    def __enter__(self) -> Usage:
        self.cpu_start = self._cpu()
        self.started = time.monotonic()
        self._sample()

        def loop() -> None:
            while not self._stop.wait(1.0):
                self._sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.seconds = time.monotonic() - self.started
        end = self._cpu()
        self.cpu = {name: end[name] - self.cpu_start[name] for name in end}
        self.load = _load()

    def rows(self, phase: str, size: int) -> list[dict[str, Any]]:
        rows = []
        for name in ("scheduler", "scheduler_alone", "api_server"):
            rows.append(
                {
                    "metric": f"n{size}_{phase}_{name}_cores",
                    "value": self.cpu[name] / self.seconds,
                    "unit": f"cores ({self.cpu[name]:,.1f} CPU s in {self.seconds:,.1f} s)",
                }
            )
        for name in ("scheduler", "api_server"):
            rows.append(
                {
                    "metric": f"n{size}_{phase}_{name}_peak_pss",
                    "value": self.peak[name] / 2**20,
                    "unit": "MiB",
                }
            )
        rows.append({"metric": f"n{size}_{phase}_load_average_1m", "value": self.load, "unit": "(2 cores)"})
        return rows


@contextmanager
def _stack() -> Iterator[Any]:
    """A throwaway state folder (so its own metadata database), feedback database and Airflow stack."""
    from feedback_loop.core import db, migrations
    from feedback_loop.lab import stack

    server_url = db.resolve_url()
    tmp = Path(tempfile.mkdtemp(prefix="fl-bench-fanout-"))
    name = f"fl_bench_{uuid.uuid4().hex[:8]}"
    url = db.ensure_database(server_url, name)
    migrations.upgrade(url)
    env = {
        "FEEDBACK_LOOP_STATE_DIR": str(tmp),
        "FEEDBACK_LOOP_ARTIFACT_DIR": str(tmp / "models"),
        "FEEDBACK_LOOP_DB_URL": url,
        "FEEDBACK_LOOP_WEBHOOK_URL": "",  # no reviewer notifications leave the machine
    }
    environ = mock.patch.dict(os.environ, env)
    environ.start()
    db.reset_resolution()
    metadata = stack.metadata_database_name()
    try:
        state = stack.up(wait_seconds=300)
        try:
            yield state
        finally:
            stack.down(quiet=True, stop_database=False)
    finally:
        environ.stop()
        db.reset_resolution()
        db.drop_database(server_url, metadata)
        db.drop_database(server_url, name)
        shutil.rmtree(tmp, ignore_errors=True)


def _metadata_url(state: Any) -> str:
    from feedback_loop.lab import stack

    return stack.metadata_database_url(state.feedback_db_url)


def _review_states(metadata_url: str, run_ids: list[str]) -> dict[str, int]:
    """Review task instances of these runs by state (mapped ones only: map_index >= 0)."""
    from feedback_loop.core import db

    with db.connect(metadata_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT coalesce(state, 'none') AS state, count(*) AS n FROM task_instance "
            "WHERE dag_id = %s AND task_id = %s AND run_id = ANY(%s) AND map_index >= 0 GROUP BY 1",
            (DAG_ID, "review", run_ids),
        ).fetchall()
    return {row["state"]: row["n"] for row in rows}


def _run_states(metadata_url: str, run_ids: list[str]) -> dict[str, str]:
    from feedback_loop.core import db

    with db.connect(metadata_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_id = ANY(%s)", (DAG_ID, run_ids)
        ).fetchall()
    return {row["run_id"]: row["state"] for row in rows}


def _enqueue(size: int) -> None:
    from feedback_loop.core import db
    from feedback_loop.inference import scoring
    from feedback_loop.retrain import datasets

    # A few spare rows per run: a prediction at confidence exactly 1.0 is not below the threshold.
    rows = datasets.digits().sample(
        n=size + 20 * math.ceil(size / RUN_BUDGET_MAX), replace=True, random_state=size
    )
    features = [c for c in rows.columns if c.startswith("pixel_")]
    with db.connect() as conn:
        scoring.enqueue_requests(
            conn, "digits", [({c: float(r[c]) for c in features}, {}) for r in rows.to_dict(orient="records")]
        )
        conn.commit()


def _budgets(size: int) -> list[int]:
    runs = math.ceil(size / RUN_BUDGET_MAX)
    return [size // runs + (1 if i < size % runs else 0) for i in range(runs)]


def _wait(what: str, done: Any, timeout: float, check: Any = None) -> float:
    """Seconds until `done()` is true, polling every half second; `check()` may raise on a dead end."""
    started = time.monotonic()
    last = 0.0
    while not done():
        if check is not None:
            check()
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{what}: not done after {timeout:.0f}s")
        if time.monotonic() - last > 30:
            _log(f"waiting for {what} ({time.monotonic() - started:,.0f}s)")
            last = time.monotonic()
        time.sleep(0.5)
    return time.monotonic() - started


def _list_page(session: requests.Session, api_url: str, limit: int, offset: int) -> tuple[float, dict]:
    params: dict[str, Any] = {**PENDING, "limit": limit, "offset": offset, "order_by": UI_ORDER}
    started = time.perf_counter()
    response = session.get(f"{api_url}/api/v2/dags/~/dagRuns/~/hitlDetails", params=params, timeout=120)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def _answer_all(
    api_url: str, token: str, details: list[dict[str, Any]], clients: int
) -> tuple[float, list[float], dict[int, int]]:
    """(wall seconds, latencies, statuses) for one PATCH per task, from `clients` keep-alive sessions."""
    local = threading.local()
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def answer(detail: dict[str, Any]) -> float:
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.headers["Authorization"] = f"Bearer {token}"
        ti = detail["task_instance"]
        path = (
            f"/api/v2/dags/{ti['dag_id']}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
        )
        body = {"chosen_options": [detail["options"][0]], "params_input": {}}
        started = time.perf_counter()
        response = local.session.patch(f"{api_url}{path}", json=body, timeout=120)
        elapsed = time.perf_counter() - started
        with lock:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        return elapsed

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(answer, details))
    return time.perf_counter() - started, latencies, statuses


def _round(state: Any, size: int, *, drain_runs: bool) -> list[dict[str, Any]]:
    from feedback_loop.lab.airflow_rest import AirflowClient

    timeout = float(_setting("TIMEOUT", "2400"))
    clients = int(_setting("CLIENTS", "8"))
    repeat = int(_setting("LIST_REPEAT", "5"))
    idle_seconds = float(_setting("IDLE_SECONDS", "15"))
    metadata_url = _metadata_url(state)
    admin = AirflowClient(state.api_url, "admin", state.passwords["admin"])
    reviewer = AirflowClient(state.api_url, "reviewer", state.passwords["reviewer"])
    rows: list[dict[str, Any]] = []

    _enqueue(size)
    budgets = _budgets(size)
    _log(f"N={size}: {len(budgets)} run(s) with review budgets {budgets}; load average {_load():.2f}")
    with Usage(state.pids) as fanout:
        run_ids = [
            admin.trigger(
                DAG_ID,
                {
                    "model_name": "digits",
                    "confidence_threshold": 1.0,
                    "review_budget": budget,
                    "batch_size": budget + 20,
                },
            )
            for budget in budgets
        ]
        first: list[float] = []

        def all_waiting() -> bool:
            waiting = _review_states(metadata_url, run_ids).get("awaiting_input", 0)
            if waiting and not first:
                first.append(time.monotonic() - fanout.started)
            return waiting >= size

        def no_dead_end() -> None:
            ended = {
                r: s for r, s in _run_states(metadata_url, run_ids).items() if s in ("success", "failed")
            }
            if ended:
                raise RuntimeError(f"run(s) ended before all {size} reviews waited: {ended}")

        _wait(f"{size} review tasks to wait", all_waiting, timeout, no_dead_end)
    _log(f"N={size}: all waiting after {fanout.seconds:,.1f}s (first after {first[0]:,.1f}s)")
    rows += [
        {"metric": f"n{size}_runs", "value": len(budgets), "unit": "feedback_inference runs"},
        {"metric": f"n{size}_trigger_to_first_waiting", "value": first[0], "unit": "s"},
        {"metric": f"n{size}_trigger_to_all_waiting", "value": fanout.seconds, "unit": "s"},
        {"metric": f"n{size}_tasks_parked_per_s", "value": size / fanout.seconds, "unit": "tasks/s"},
        {
            "metric": f"n{size}_fanout_cpu_per_task",
            "value": (fanout.cpu["scheduler"] + fanout.cpu["api_server"]) / size * 1000,
            "unit": "ms (scheduler tree + api-server tree)",
        },
    ]
    rows += fanout.rows("fanout", size)

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {reviewer.token()}"
    _list_page(session, state.api_url, UI_PAGE, 0)  # first request: connection and token cache
    # api-server CPU per request beside the wall time: where wall time is much larger, the request
    # waited on PostgreSQL or for a core (the load average says which is likely).
    with Usage(state.pids) as first_pages:
        pages = [_list_page(session, state.api_url, UI_PAGE, 0) for _ in range(repeat)]
    total = pages[0][1]["total_entries"]
    details: list[dict[str, Any]] = []
    with Usage(state.pids) as listing:
        while len(details) < total:
            _, page = _list_page(session, state.api_url, SERVER_PAGE, len(details))
            if not page["hitl_details"]:
                break
            details += page["hitl_details"]
    every_page = listing.seconds
    if total != size or len(details) != size:
        raise RuntimeError(f"Required Actions lists {total} (read {len(details)}), expected {size}")
    page_times = sorted(seconds for seconds, _ in pages)
    _log(
        f"N={size}: first page of {UI_PAGE} in {statistics.median(page_times) * 1000:,.0f} ms (median), "
        f"all {size} in {every_page:,.2f}s"
    )
    rows += [
        {
            "metric": f"n{size}_required_actions_page_median",
            "value": statistics.median(page_times) * 1000,
            "unit": "ms",
        },
        {"metric": f"n{size}_required_actions_page_worst", "value": page_times[-1] * 1000, "unit": "ms"},
        {
            "metric": f"n{size}_required_actions_all_pages",
            "value": every_page,
            "unit": f"s ({math.ceil(size / SERVER_PAGE)} pages of {SERVER_PAGE})",
        },
        {
            "metric": f"n{size}_required_actions_page_api_server_cpu",
            "value": first_pages.cpu["api_server"] / repeat * 1000,
            "unit": f"ms per {UI_PAGE}-row page",
        },
        {
            "metric": f"n{size}_required_actions_all_pages_api_server_cpu",
            "value": listing.cpu["api_server"],
            "unit": "s",
        },
        {"metric": f"n{size}_list_load_average_1m", "value": listing.load, "unit": "(2 cores)"},
    ]

    with Usage(state.pids) as idle:
        time.sleep(idle_seconds)
    rows += [row for row in idle.rows("idle", size) if "peak" in row["metric"] or "cores" in row["metric"]]

    _log(f"N={size}: answering {size} tasks with {clients} concurrent reviewers")
    with Usage(state.pids) as answering:
        wall, latencies, statuses = _answer_all(state.api_url, reviewer.token(), details, clients)
    if statuses != {200: size}:
        raise RuntimeError(f"answers: HTTP statuses {statuses}, expected {size} x 200")
    quantiles = statistics.quantiles(latencies, n=100)
    _log(f"N={size}: {size / wall:,.1f} answers/s, p50 {quantiles[49] * 1000:,.0f} ms")
    rows += [
        {"metric": f"n{size}_answers_per_s", "value": size / wall, "unit": f"answers/s ({clients} clients)"},
        {"metric": f"n{size}_answer_p50", "value": quantiles[49] * 1000, "unit": "ms"},
        {"metric": f"n{size}_answer_p99", "value": quantiles[98] * 1000, "unit": "ms"},
        {
            "metric": f"n{size}_answer_api_server_cpu",
            "value": answering.cpu["api_server"] / size * 1000,
            "unit": "ms per answer",
        },
    ]
    rows += answering.rows("answer", size)

    if not drain_runs:
        _log(f"N={size}: not waiting for the runs to finish (BENCH_FANOUT_DRAIN=0)")
        return rows
    with Usage(state.pids) as drain:
        _wait(
            f"the {len(run_ids)} run(s) to finish",
            lambda: all(s in ("success", "failed") for s in _run_states(metadata_url, run_ids).values()),
            timeout,
        )
    ended = _run_states(metadata_url, run_ids)
    if any(s != "success" for s in ended.values()):
        raise RuntimeError(f"runs did not all succeed: {ended}")
    _log(f"N={size}: runs finished {drain.seconds:,.1f}s after the last answer")
    rows += [
        {"metric": f"n{size}_answered_to_runs_done", "value": drain.seconds, "unit": "s"},
        {"metric": f"n{size}_tasks_resumed_per_s", "value": size / drain.seconds, "unit": "tasks/s"},
    ]
    rows += drain.rows("drain", size)
    return rows


def run() -> list[dict[str, Any]]:
    from feedback_loop.core import config, db
    from feedback_loop.lab.airflow_rest import AirflowClient
    from feedback_loop.retrain import baseline

    sizes = [int(s) for s in _setting("SIZES", "100,500,2000").split(",") if s.strip()]
    if any(s > 4 * RUN_BUDGET_MAX or s < 1 for s in sizes):
        # feedback_inference runs at most 4 at a time (max_active_runs), each with at most 500 reviews.
        raise SystemExit(f"BENCH_FANOUT_SIZES: each size between 1 and {4 * RUN_BUDGET_MAX}, not {sizes}")
    rows: list[dict[str, Any]] = []
    with _stack() as state:
        _log(f"Airflow at {state.api_url}; training and promoting digits v1")
        with db.connect() as conn:
            baseline.train_and_register(
                conn, config.load().model("digits"), created_by="bench", promote=True, reason="fan-out bench"
            )
            conn.commit()
        admin = AirflowClient(state.api_url, "admin", state.passwords["admin"])
        admin.wait_for_dags([DAG_ID], timeout=300)
        admin.unpause(DAG_ID)
        drain_last = _setting("DRAIN", "1") != "0"
        for i, size in enumerate(sizes):
            # Only the last size may skip the drain: resuming tasks would load the next size's figures.
            rows += _round(state, size, drain_runs=drain_last or i < len(sizes) - 1)
    return rows
