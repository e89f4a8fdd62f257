"""Which access checks run on the event loop: only those that do no I/O."""

from __future__ import annotations

import inspect

import pytest

from feedback_loop.adapters import airflow_users
from feedback_loop.adapters.airflow_auth import feedback_access

pytestmark = pytest.mark.unit

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


@pytest.mark.parametrize(
    ("auth_manager", "on_the_loop"),
    [(airflow_users.SIMPLE_AUTH_MANAGER, True), (FAB, False), ("some.other.AuthManager", False)],
)
def test_the_permission_check_runs_on_the_event_loop_only_under_the_simple_auth_manager(
    monkeypatch, auth_manager, on_the_loop
):
    """FastAPI hands a plain dependency to a worker thread and awaits a coroutine on the event loop: FAB
    may read a user's permissions from the metadata DB, and other auth managers may ask a remote service,
    which must not block the loop; the simple auth manager answers from the token alone."""
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", auth_manager)
    for method in ("GET", "POST"):
        assert inspect.iscoroutinefunction(feedback_access(method)) is on_the_loop
    assert inspect.iscoroutinefunction(
        airflow_users.known_user_dependency()
    )  # it only reads the token's user
