"""A small client for Airflow's public REST API (v2), used by the demo and the end-to-end tests.

Plain HTTP with requests: it drives a running Airflow the way an on-call engineer or a reviewer would
(token from /auth/token, trigger, wait, answer review tasks), so nothing here imports Airflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from feedback_loop.core.console import Heartbeat
from feedback_loop.core.errors import FeedbackLoopError

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApiError(FeedbackLoopError):
    """Airflow answered with an unexpected status."""


@dataclass
class AirflowClient:
    base_url: str
    username: str
    password: str
    timeout: float = 30.0
    _token: str | None = field(default=None, repr=False)

    def token(self) -> str:
        if self._token is None:
            response = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=self.timeout,
            )
            if response.status_code not in (200, 201):
                raise AirflowApiError(f"login as {self.username!r} failed: HTTP {response.status_code}")
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, expected: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.base_url}{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=self.timeout,
            **kwargs,
        )
        if response.status_code not in expected:
            raise AirflowApiError(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    # DAGs and runs -------------------------------------------------------------------------------------
    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self.request("GET", "/api/v2/dags", params={"limit": 100})["dags"]]

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        heartbeat = Heartbeat("Airflow to parse the DAG files")
        while True:
            missing = sorted(set(dag_ids) - set(self.dag_ids()))
            if not missing:
                return
            heartbeat(f"missing {', '.join(missing)}")
            if time.monotonic() > deadline:
                raise AirflowApiError(f"DAGs not parsed after {timeout:.0f}s: {missing}")
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        body = {"conf": conf or {}, "logical_date": None}
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", expected=(200,), json=body)
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300, on_wait=None) -> str:
        """Poll until the run ends; `on_wait()` is called each round (e.g. to answer review tasks)."""
        deadline = time.monotonic() + timeout
        heartbeat = Heartbeat(f"the {dag_id} run")
        while True:
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                return state
            heartbeat(f"it is {state}")
            if on_wait is not None:
                on_wait()
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{dag_id} run {run_id} still {state} after {timeout:.0f}s")
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return self.request("GET", path, params={"limit": 1000})["task_instances"]

    # Human in the loop ---------------------------------------------------------------------------------
    def pending_reviews(
        self, dag_id: str = "~", run_id: str = "~", settled_seconds: float = 0
    ) -> list[dict[str, Any]]:
        """Review tasks waiting for an answer, parked in `awaiting_input` for at least `settled_seconds`.
        (Answering at once is safe: our plugin records an answer Airflow accepts before the 200.)"""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='~')}/hitlDetails"
        query = {"limit": 1000, "response_received": "false", "state": "awaiting_input"}
        details = self.request("GET", path, params=query)["hitl_details"]
        now = time.time()

        def settled(detail: dict[str, Any]) -> bool:
            created = detail.get("created_at")
            if not created or not settled_seconds:
                return True
            from datetime import datetime

            return now - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() >= settled_seconds

        return [d for d in details if not d.get("response_received") and settled(d)]

    def answer_review(
        self, detail: dict[str, Any], chosen_options: list[str], params_input: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        ti = detail["task_instance"]
        path = (
            f"/api/v2/dags/{ti['dag_id']}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
            f"{ti['task_id']}/{ti.get('map_index', -1)}/hitlDetails"
        )
        body = {"chosen_options": chosen_options, "params_input": params_input or {}}
        return self.request("PATCH", path, json=body)
