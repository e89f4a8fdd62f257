"""Shared set-up for the reliability and security tests: the size knob, the figures each test reports,
and a real `feedback-loop api serve` process with Airflow tokens (built from tests/e2e/api_support.py).

`make test` runs the short form. FL_SOAK=1 (set by bench/soak.py, `make soak`) runs the full form, and
FL_RELIABILITY_FIGURES=<file> writes every test's figures there as JSON for the benchmark table.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from ..support.api import (
    WEBHOOK_ENV,
    WebhookRecorder,
    airflow_app,
    api_server,
    auth_env,
    bearer,
    init_airflow_db,
    token,
    write_config,
)

SOAK = os.environ.get("FL_SOAK", "") == "1"
FIGURES_ENV = "FL_RELIABILITY_FIGURES"
_FIGURES: dict[str, dict[str, float]] = {}


def size(short: int, full: int) -> int:
    """The short size in `make test`, the full one in the soak run."""
    return full if SOAK else short


@pytest.fixture
def figures(request) -> dict[str, float]:
    """Figures a test measured (requests, status counts, rows, restarts); reported after the run."""
    found: dict[str, float] = {}
    _FIGURES[request.node.name] = found
    return found


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section(f"reliability figures ({'full soak' if SOAK else 'short form'})")
    for test, found in _FIGURES.items():
        if found:
            shown = ", ".join(f"{k}={v}" for k, v in found.items())
            terminalreporter.write_line(f"{test}: {shown}")
    target = os.environ.get(FIGURES_ENV)
    if target:
        Path(target).write_text(json.dumps(_FIGURES, indent=2, sort_keys=True) + "\n")


def issue_tokens() -> dict[str, dict[str, str]]:
    """Bearer headers from Airflow's own POST /auth/token for each test user."""
    airflow = TestClient(airflow_app())
    return {user: bearer(token(airflow, user)) for user in ("admin", "writer", "reader", "clicker")}


@pytest.fixture(scope="package")
def webhook():
    with WebhookRecorder() as hook:
        yield hook


@pytest.fixture(scope="package")
def server(db_url, tmp_path_factory, webhook):
    """A real API server process on the session database, a webhook recorder, tokens per role."""
    tmp = tmp_path_factory.mktemp("reliability-api")
    env = {
        **auth_env(tmp),
        "FEEDBACK_LOOP_CONFIG": str(write_config(tmp)),
        WEBHOOK_ENV: webhook.url,
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        init_airflow_db()
        log = tmp / "server.log"
        with ThreadPoolExecutor(max_workers=1) as background:
            tokens = background.submit(issue_tokens)
            with api_server(env, log) as base:
                yield SimpleNamespace(base=base, log=log, env=env, tmp=tmp, **tokens.result())
