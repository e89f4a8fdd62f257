"""Airflow adapter: the request's Airflow user, for the feedback API's access checks.

A token signed with the real secret whose role claim names no role of Airflow's simple auth manager
("hacker", 5) passes Airflow's signature check, and then Airflow's own permission check fails on it
(`SimpleAuthManagerRole[role.upper()]`: KeyError, AttributeError), a 500. Such a user is refused here with
403 naming the role, before any permission check runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, HTTPException


def unknown_role(user: Any) -> str | None:
    """The role claim of a simple-auth-manager user that Airflow does not know, as text; None when the
    role is known, absent (Airflow refuses those itself) or the user comes from another auth manager."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManagerRole
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    if not isinstance(user, SimpleAuthManagerUser):
        return None
    role = user.role
    if role is None or role == "":
        return None
    if isinstance(role, str) and role.upper() in SimpleAuthManagerRole.__members__:
        return None
    return str(role)


def known_user_dependency() -> Callable[..., Any]:
    """A FastAPI dependency: Airflow's `get_user` (401/403 for missing, invalid or expired tokens; each
    bearer token's user remembered for a few seconds, adapters.airflow_tokens), and 403 for a user whose
    role Airflow does not know."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManagerRole

    from feedback_loop.adapters.airflow_tokens import user_dependency

    get_user = user_dependency()
    roles = ", ".join(sorted(r.lower() for r in SimpleAuthManagerRole.__members__))

    # Depends() as a default, not the GetUserDep annotation: annotations are strings in this module and
    # FastAPI resolves them in module globals, where Airflow's names are not imported.
    def known_user(user: Any = Depends(get_user)) -> Any:  # noqa: B008 - FastAPI's idiom
        role = unknown_role(user)
        if role is not None:
            reason = f"the token's role {role!r} is not a role of Airflow's auth manager ({roles})"
            raise HTTPException(403, detail=[{"field": "Authorization", "reason": reason}])
        return user

    return known_user
