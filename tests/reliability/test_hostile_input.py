"""Hostile input (issue 14): bodies under the size limit that would cost the server far more than their
size. Each is sent to a fresh `feedback-loop api serve` process of its own, so that its peak memory
(VmHWM) belongs to that request alone, while a single POST is sent alongside to show other clients are
not held up. Figures: seconds to the answer, peak memory growth of the server, the single POST's latency.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from ..support.api import api_process
from ..support.helpers import make_predictions, register_toy
from .conftest import size

pytestmark = pytest.mark.reliability

MAX_SECONDS = 1.0
MAX_GROWTH_MB = 100
MAX_PROBLEMS = 20  # service.MAX_REPORTED_PROBLEMS
UNKNOWN_FIELDS = 150_000  # in one item: under the values a batch may hold (18 per item allowed)


def memory_kb(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak since start) of a process, in kB."""
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not found for process {pid}")


def unknown_fields(n: int) -> bytes:
    item = {"trace_id": str(uuid.uuid4()), "kind": "thumbs_up", **{f"f{i}": 0 for i in range(n)}}
    return json.dumps({"items": [item]}, separators=(",", ":")).encode()


# (name, body, field the first problem names). Each body is under the 20 MiB limit.
HOSTILE = {
    "empty_items": lambda n: (b'{"items":[' + b",".join([b"{}"] * n) + b"]}", "items"),
    "zeros": lambda n: (b'{"items":[' + b",".join([b"0"] * n) + b"]}", "items"),
    "unknown_fields_of_one_item": lambda n: (unknown_fields(UNKNOWN_FIELDS), "items[0].f0"),
}


@pytest.mark.parametrize("shape", list(HOSTILE))
def test_a_batch_built_to_exhaust_memory_is_refused_at_once(server, conn, figures, shape):
    register_toy(conn)
    conn.commit()
    (trace,) = make_predictions(conn, "toy", 1, 1)
    conn.commit()
    n = size(200_000, 1_000_000)
    body, field = HOSTILE[shape](n)
    headers = {**server.writer, "Content-Type": "application/json"}
    single = {"trace_id": str(trace), "kind": "thumbs_up"}
    with api_process(server.env, server.tmp / f"hostile-{shape}.log") as (base, process):
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            # Warm up: config, connection pool, auth, both routes.
            assert client.post("/feedback/batch", json={"items": [single]}).status_code == 201
            assert client.post("/feedback", json=single).status_code == 201
            before_kb = memory_kb(process.pid, "VmRSS")
            single_latency: list[float] = []

            def post_single() -> None:
                time.sleep(0.05)  # once the batch is on its way
                started = time.perf_counter()
                assert client.post("/feedback", json=single).status_code == 201
                single_latency.append(time.perf_counter() - started)

            alongside = threading.Thread(target=post_single)
            started = time.perf_counter()
            alongside.start()
            response = client.post("/feedback/batch", content=body)
            elapsed = time.perf_counter() - started
            alongside.join()
            growth_mb = (memory_kb(process.pid, "VmHWM") - before_kb) / 1024
    figures.update(
        {
            "body_bytes": len(body),
            "items_or_fields": n if shape != "unknown_fields_of_one_item" else UNKNOWN_FIELDS,
            "refused_in_s": round(elapsed, 3),
            "server_peak_growth_mb": round(growth_mb, 1),
            "single_post_alongside_ms": round(single_latency[0] * 1000, 1),
        }
    )
    assert response.status_code == 422, response.text[:500]
    detail = response.json()["detail"]
    assert detail[0]["field"] == field, detail[:3]
    assert len(detail) <= MAX_PROBLEMS
    assert elapsed < MAX_SECONDS, f"refused after {elapsed:.2f}s"
    assert growth_mb < MAX_GROWTH_MB, f"server memory grew by {growth_mb:.0f} MB"
    assert single_latency[0] < MAX_SECONDS, f"a single POST alongside waited {single_latency[0]:.2f}s"
    stored = conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"]
    assert stored == 3  # the warm-up batch, the warm-up POST and the one alongside: nothing of the batch


def test_a_single_event_built_to_exhaust_memory_is_refused_at_once(server, conn, figures):
    """The single route has the same bound: one object of a million unknown fields (about 12 MB, under the
    limit) was parsed into a dict and answered with one error object per field."""
    register_toy(conn)
    conn.commit()
    (trace,) = make_predictions(conn, "toy", 1, 1)
    conn.commit()
    n = size(200_000, 1_000_000)
    event = {"trace_id": str(trace), "kind": "thumbs_up", **{f"f{i}": 0 for i in range(n)}}
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {**server.writer, "Content-Type": "application/json"}
    with api_process(server.env, server.tmp / "hostile-single.log") as (base, process):
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            assert (
                client.post("/feedback", json={"trace_id": str(trace), "kind": "thumbs_up"}).status_code
                == 201
            )
            before_kb = memory_kb(process.pid, "VmRSS")
            started = time.perf_counter()
            response = client.post("/feedback", content=body)
            elapsed = time.perf_counter() - started
            growth_mb = (memory_kb(process.pid, "VmHWM") - before_kb) / 1024
    figures.update(
        {
            "body_bytes": len(body),
            "unknown_fields": n,
            "refused_in_s": round(elapsed, 3),
            "server_peak_growth_mb": round(growth_mb, 1),
        }
    )
    assert response.status_code == 422, response.text[:500]
    detail = response.json()["detail"]
    assert detail[0]["field"] in ("body", "f0"), detail[:3]
    assert len(detail) <= MAX_PROBLEMS, len(detail)
    assert elapsed < MAX_SECONDS, f"refused after {elapsed:.2f}s"
    assert growth_mb < MAX_GROWTH_MB, f"server memory grew by {growth_mb:.0f} MB"
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 1
