"""`feedback-loop roles sync` against a real Airflow metadata DB with FAB's tables: idempotent, exact, one
line on bad input. (The roles' effect through a real api-server: tests/e2e/test_roles_through_airflow.py.)"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from feedback_loop.adapters import airflow_fab

pytestmark = pytest.mark.integration

AUTH_MANAGER = "feedback_loop.adapters.airflow_fab_manager.FeedbackLoopFabAuthManager"


def fab_env(home: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    return {
        **inherited,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__AUTH_MANAGER": AUTH_MANAGER,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "feedback_loop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("fab-home")
    env = fab_env(home)
    airflow = Path(sys.executable).with_name("airflow")
    migrated = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    return env


def test_sync_is_idempotent_exact_and_keeps_passwords(env, tmp_path):
    passwords = tmp_path / "passwords.json"
    first = run(
        env, "roles", "sync", "--user", "ann:feedback_reviewer", "--passwords-file", str(passwords), "--json"
    )
    assert first.returncode == 0, first.stderr[-2000:]
    report = json.loads(first.stdout)
    assert report["users"] == {"ann": {"role": "feedback_reviewer", "action": "created"}}
    assert {name: r["total"] for name, r in report["roles"].items()} == {
        name: len(set(perms)) for name, perms in airflow_fab.ROLE_PERMISSIONS.items()
    }
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    generated = json.loads(passwords.read_text())["ann"]
    assert len(generated) >= 20

    again = run(
        env, "roles", "sync", "--user", "ann:feedback_oncall", "--passwords-file", str(passwords), "--json"
    )
    assert again.returncode == 0, again.stderr[-2000:]
    report = json.loads(again.stdout)
    assert all((r["added"], r["removed"]) == (0, 0) for r in report["roles"].values()), report
    assert report["users"] == {"ann": {"role": "feedback_oncall", "action": "role added"}}
    assert json.loads(passwords.read_text()) == {"ann": generated}  # an existing account keeps its password


def test_bad_arguments_are_one_line_errors(env, tmp_path):
    for args, reason in (
        (["--user", "ann"], "--user must be NAME:ROLE, got 'ann'"),
        (["--user", "ann:Op", "--passwords-file", str(tmp_path / "p.json")], "role must be one of"),
        (["--user", "ann:feedback_app"], "--user needs --passwords-file"),
    ):
        done = run(env, "roles", "sync", *args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and reason in done.stderr, done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    done = run(env, "roles", "sync", "--user", "ann:feedback_app", "--passwords-file", str(broken))
    assert done.returncode == 2 and "not readable JSON" in done.stderr, done.stderr


def test_an_unreachable_metadata_db_is_one_line(tmp_path):
    env = {
        **fab_env(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    }
    done = run(env, "roles", "sync")
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("feedback-loop: error: could not sync roles in Airflow's metadata database: "), (
        last
    )
