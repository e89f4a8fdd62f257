"""Airflow adapter: the auth manager `make up`, `make demo` and the compose deployment run, FAB's with one
change (review assignments by user name); the package's roles are in adapters.airflow_fab.

Set `AIRFLOW__CORE__AUTH_MANAGER=feedback_loop.adapters.airflow_fab_manager.FeedbackLoopFabAuthManager`.
Every Airflow component imports this module, so it imports nothing but FAB's auth manager.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager


class FeedbackLoopFabAuthManager(FabAuthManager):
    """FAB's auth manager, with review assignments matched on the user name as well as the id.

    Airflow matches HITL `assigned_users` on `user.get_id()`; FAB's id is the row number of the account,
    which nobody configures. The package assigns review tasks by user name (`reviewers:` in the config,
    and second opinions to the configured reviewers who have not answered yet), so a FAB account answers
    when its id or its user name is assigned. FAB user names are unique, so this widens nothing."""

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user: Any) -> bool:
        return super().is_authorized_hitl_task(assigned_users=assigned_users, user=user) or (
            user is not None and user.get_name() in assigned_users
        )
