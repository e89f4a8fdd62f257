"""Fuzzing the feedback API from its own OpenAPI document (schemathesis, positive and negative cases)
against a real server process with a valid Airflow token: no 5xx, every rejection a 4xx whose body
names the problem, and exactly as many stored rows (feedback, inference requests) as the 2xx answers say
were created.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from ..support.helpers import make_predictions, register_toy
from .conftest import size

pytestmark = pytest.mark.reliability

TOTAL = size(240, 1200)
# field -> (the only kind it belongs to, a value when that kind needs it)
KIND_FIELDS = {"rating": ("rating", 4), "label": ("correction", "7"), "signal": ("implicit", "accepted")}


def _problem_named(status: int, body: Any) -> bool:
    """A 4xx body names the problem: Airflow's auth errors as text, ours as [{field, reason}]."""
    if not isinstance(body, dict) or not body.get("detail"):
        return False
    detail = body["detail"]
    if isinstance(detail, str):
        return status in (401, 403)
    return all(
        isinstance(p, dict) and str(p.get("field", "")).strip() and str(p.get("reason", "")).strip()
        for p in detail
    )


def _created(method: str, path: str, status: int, body: Any) -> int:
    """Feedback rows a 2xx answer says it stored (inference requests are counted apart)."""
    if method != "POST" or not 200 <= status < 300 or not path.startswith("/feedback"):
        return 0
    if path == "/feedback/batch":
        return int(body["created"])
    return 1 if status == 201 else 0  # 200 is an idempotent replay: nothing new stored


class Fuzzer:
    """Draws schemathesis cases per operation and sends them; real traces are swapped in now and then
    so that valid requests reach the database instead of all ending as 404 unknown trace."""

    def __init__(self, base: str, headers: dict[str, str], traces: list[str], seed: int) -> None:
        self.base, self.headers, self.traces = base, headers, traces
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.statuses: Counter[int] = Counter()
        self.sent = 0
        self.unsendable = 0  # cases the HTTP client itself refuses to send (e.g. a header with a newline)
        self.created = 0
        self.requests_created = 0  # inference requests POST /requests answered as stored
        self.bad: list[str] = []

    def _reachable(self, item: dict) -> None:
        """A real trace id, and half the time the kind's rule from the field descriptions applied (the
        schema cannot say "rating only with kind rating"), so that creations reach the database."""
        if self.rng.random() < 0.6:
            item["trace_id"] = self.rng.choice(self.traces)
        if self.rng.random() < 0.5:
            kind = item.get("kind")
            for field, (owner, default) in KIND_FIELDS.items():
                if kind != owner:
                    item.pop(field, None)
                elif item.get(field) is None or (isinstance(item[field], str) and not item[field].strip()):
                    item[field] = default
            if kind == "comment" and not str(item.get("comment") or "").strip():
                item["comment"] = "generated comment"
            if isinstance(item.get("rating"), float) and item["rating"].is_integer():
                item["rating"] = int(item["rating"])  # JSON Schema integers include 4.0; the API wants 4
            if isinstance(item.get("client_event_id"), str):  # the API also wants it printable and trimmed
                key = "".join(ch for ch in item["client_event_id"] if ch.isprintable()).strip()
                item["client_event_id"] = key or None

    def _enqueueable(self, body: dict) -> None:
        """The configured model (it has no champion in this database, so any scalar input is accepted),
        and request ids made valid half the time, so that enqueues reach the database."""
        if self.rng.random() < 0.6:
            body["model_name"] = "digits"
        items = body.get("items")
        if self.rng.random() < 0.5 and isinstance(items, list):
            for i, item in enumerate(items):
                if isinstance(item, dict) and isinstance(item.get("request_id"), str):
                    key = "".join(ch for ch in item["request_id"] if ch.isprintable()).strip()[:200]
                    item["request_id"] = key or f"fuzz-{i}"

    def _real_traces(self, case) -> None:
        body = case.body
        if case.path == "/requests" and isinstance(body, dict):
            self._enqueueable(body)
            return
        if case.path.startswith("/requests/") and self.rng.random() < 0.5:
            case.path_parameters = {**(case.path_parameters or {}), "model_name": "digits"}
            return
        if case.path == "/feedback" and isinstance(body, dict):
            self._reachable(body)
        elif (
            case.path == "/feedback/batch" and isinstance(body, dict) and isinstance(body.get("items"), list)
        ):
            for item in body["items"]:
                if isinstance(item, dict):
                    self._reachable(item)
        elif case.path == "/predictions/{trace_id}" and self.rng.random() < 0.5:
            case.path_parameters = {**(case.path_parameters or {}), "trace_id": self.rng.choice(self.traces)}
        elif case.path == "/models/{name}/versions" and self.rng.random() < 0.3:
            case.path_parameters = {**(case.path_parameters or {}), "name": "toy"}

    def send(self, case, mode: GenerationMode) -> None:
        if mode.is_positive:
            self._real_traces(case)
        try:
            response = case.call(base_url=self.base, session=self.session, headers=self.headers, timeout=30)
        except (requests.exceptions.InvalidHeader, ValueError, UnicodeError):
            self.unsendable += 1
            return
        self.sent += 1
        status = response.status_code
        self.statuses[status] += 1
        try:
            body = response.json()
        except ValueError:
            body = None
        label = f"{case.method} {case.formatted_path} ({mode.value})"
        if status >= 500 and not (case.path == "/healthz" and status == 503):
            self.bad.append(f"{label}: {status} {response.text[:300]}")
        elif 400 <= status < 500 and not _problem_named(status, body):
            self.bad.append(f"{label}: {status} without a named problem: {response.text[:300]}")
        elif not 200 <= status < 500:
            self.bad.append(f"{label}: unexpected {status}")
        else:
            self.created += _created(case.method.upper(), case.path, status, body)
            if case.method.upper() == "POST" and case.path == "/requests" and 200 <= status < 300:
                self.requests_created += int(body["created"])

    def run(self, schema, total: int) -> None:
        operations = [result.ok() for result in schema.get_all_operations()]
        pairs = [
            (op, mode) for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        rounds = 0
        while self.sent + self.unsendable < total and rounds < 20 and pairs:
            rounds += 1
            remaining = total - self.sent - self.unsendable
            # valid writes get three shares: they are what can store rows
            weights = [3 if op.method.upper() == "POST" and mode.is_positive else 1 for op, mode in pairs]
            for pair, weight in zip(list(pairs), weights, strict=True):
                try:
                    self._drive(*pair, max(5, remaining * weight // sum(weights) + 1))
                except Unsatisfiable:
                    # e.g. /healthz takes no input at all, so no invalid request exists for it
                    pairs.remove(pair)

    def _drive(self, operation, mode: GenerationMode, examples: int) -> None:
        @settings(
            max_examples=examples,
            phases=[Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=False,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def one(case) -> None:
            self.send(case, mode)

        one()


def test_fuzz_the_openapi_document_with_a_valid_token(server, conn, figures):
    register_toy(conn)
    conn.commit()
    traces = [str(t) for t in make_predictions(conn, "toy", 1, 50)]
    conn.commit()
    document = httpx.get(f"{server.base}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)

    fuzzer = Fuzzer(server.base, server.writer, traces, seed=8)
    fuzzer.run(schema, TOTAL)

    conn.rollback()
    stored = conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"]
    requests_stored = conn.execute("SELECT count(*) AS n FROM inference_requests").fetchone()["n"]
    figures.update(
        requests=fuzzer.sent,
        unsendable_by_client=fuzzer.unsendable,
        status_2xx=sum(n for s, n in fuzzer.statuses.items() if 200 <= s < 300),
        status_4xx=sum(n for s, n in fuzzer.statuses.items() if 400 <= s < 500),
        status_5xx=sum(n for s, n in fuzzer.statuses.items() if s >= 500),
        created_by_2xx=fuzzer.created,
        rows_stored=stored,
        requests_created_by_2xx=fuzzer.requests_created,
        requests_stored=requests_stored,
    )
    figures.update({f"http_{s}": n for s, n in sorted(fuzzer.statuses.items())})
    assert fuzzer.sent >= size(200, 1000), figures
    assert not fuzzer.bad, "\n".join(fuzzer.bad[:20])
    assert figures["status_5xx"] == 0
    assert figures["status_2xx"] > 0 and figures["status_4xx"] > 0, "both sides must be exercised"
    assert stored == fuzzer.created, f"{stored} rows stored but 2xx answers created {fuzzer.created}"
    assert requests_stored == fuzzer.requests_created, (
        f"{requests_stored} inference requests stored but 2xx answers created {fuzzer.requests_created}"
    )


# ---- regressions the fuzzer found (both were 5xx or unnamed 4xx before the fix in api/app.py) ----------


def test_invalid_json_in_a_batch_is_422_naming_the_body_not_500(server):
    response = httpx.post(
        f"{server.base}/feedback/batch",
        content=b"",
        headers={**server.writer, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["field"] == "body" and "is not valid JSON" in problem["reason"]


def test_a_body_that_is_not_utf8_is_400_naming_the_body(server, conn):
    response = httpx.post(
        f"{server.base}/feedback",
        content=b'{"kind": "\xff\xfe"}',
        headers={**server.writer, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": [
            {
                "field": "body",
                "reason": "could not be decoded: send UTF-8 encoded JSON with Content-Type: application/json",
            }
        ]
    }
    assert httpx.post(f"{server.base}/feedback", json={}).json() == {"detail": "Not authenticated"}
