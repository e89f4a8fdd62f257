"""Shared set-up for the feedback API tests: Airflow users and tokens, a test config, a webhook recorder,
and a real `feedback-loop api serve` process. Plain functions and classes; the fixtures live in the tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from ..conftest import ROOT

# Users of Airflow's simple auth manager: who may write feedback (op, admin) and who may only read.
USERS = {"admin": "admin", "writer": "op", "reader": "viewer", "clicker": "user"}
PASSWORDS = {name: f"pw-{name}-{i}" for i, name in enumerate(USERS)}
WEBHOOK_ENV = "FL_TEST_API_WEBHOOK"


def auth_env(tmp_dir: Path) -> dict[str, str]:
    """Environment for Airflow's simple auth manager with real users and known passwords."""
    password_file = tmp_dir / "passwords.json"
    password_file.write_text(json.dumps(PASSWORDS) + "\n")
    return {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
    }


def write_config(tmp_dir: Path, **api: object) -> Path:
    """The example config with API/notify settings changed for tests."""
    settings = yaml.safe_load((ROOT / "config" / "feedback_loop.yaml").read_text())
    settings["api"].update(api)
    settings["notify"] = {"webhook_url_env": WEBHOOK_ENV, "timeout_seconds": 5, "max_attempts": 2}
    path = tmp_dir / "feedback_loop.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def init_airflow_db() -> None:
    """Airflow's metadata DB (revoked tokens live there); initdb is idempotent and keeps existing data."""
    from airflow.utils import db as airflow_db

    airflow_db.initdb()


def airflow_app():
    """The real Airflow API app (core: /api/v2, /auth, plugins) with our plugin mounted at /feedback-api."""
    from airflow.api_fastapi.app import create_app

    return create_app(apps="core")


def token(client, user: str) -> str:
    """A JWT from Airflow's own POST /auth/token, exactly as a client would get it."""
    response = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def bearer(jwt: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt}"}


class WebhookRecorder:
    """A local Slack-compatible webhook: records payloads, can answer slowly or with an error."""

    def __init__(self, delay: float = 0.0, status: int = 200) -> None:
        self.received: list[dict] = []
        self.delay = delay
        self.status = status
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(recorder.delay)
                recorder.received.append(json.loads(body))
                self.send_response(recorder.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def api_server(env: dict[str, str], log_path: Path, workers: int = 1) -> Iterator[str]:
    """`feedback-loop api serve` as a real process on 127.0.0.1; yields its base URL."""
    with api_process(env, log_path, workers) as (base, _process):
        yield base


@contextmanager
def api_process(
    env: dict[str, str], log_path: Path, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`feedback-loop api serve` as a real process on 127.0.0.1; yields its base URL and the process
    (with one worker, uvicorn serves in that process: its memory is the server's)."""
    port = free_port()
    command = [
        sys.executable, "-m", "feedback_loop.cli", "api", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"api serve exited with {process.returncode}:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"api serve did not answer within 60s:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield base, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
