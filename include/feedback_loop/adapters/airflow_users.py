"""Airflow adapter: the request's Airflow user, for the feedback API's access checks.

A token signed with the real secret whose role claim names no role of Airflow's simple auth manager
("hacker", 5) passes Airflow's signature check, and then Airflow's own permission check fails on it
(`SimpleAuthManagerRole[role.upper()]`: KeyError, AttributeError), a 500. Such a user is refused here with
403 naming the role, before any permission check runs.

Also: who answered a review, as the package names reviewers under any auth manager (`reviewer`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from feedback_loop.adapters.airflow_tokens import UserResolver, user_resolver, with_credentials


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


def known_user_resolver() -> UserResolver:
    """Airflow's `get_user` (401/403 for missing, invalid or expired tokens; each bearer token's user
    remembered for a few seconds, adapters.airflow_tokens), and 403 for a user whose role Airflow does not
    know; a plain coroutine function, for access checks that resolve the user inside their own dependency."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManagerRole

    get_user = user_resolver()
    roles = ", ".join(sorted(r.lower() for r in SimpleAuthManagerRole.__members__))

    async def known_user(
        request: Request, oauth_token: str | None, bearer: HTTPAuthorizationCredentials | None
    ) -> Any:
        user = await get_user(request, oauth_token, bearer)
        role = unknown_role(user)
        if role is not None:
            reason = f"the token's role {role!r} is not a role of Airflow's auth manager ({roles})"
            raise HTTPException(403, detail=[{"field": "Authorization", "reason": reason}])
        return user

    return known_user


def known_user_dependency() -> Callable[..., Awaitable[Any]]:
    """A FastAPI dependency: the request's user (`known_user_resolver`). Async: it only looks at the
    token's user, and FastAPI would hand a plain function to a worker thread and back, on every request
    (docs/benchmarks.md, "Single events")."""
    return with_credentials(known_user_resolver())


# FAB's auth manager and the package's (adapters.airflow_fab_manager), by the path `[core] auth_manager` names.
FAB_AUTH_MANAGERS = frozenset(
    {
        "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "feedback_loop.adapters.airflow_fab_manager.FeedbackLoopFabAuthManager",
    }
)


@functools.cache
def fab_in_use() -> bool:
    """Whether `[core] auth_manager` names FAB's auth manager or the package's. Read from the config, not
    from a loaded auth manager: a worker finishing a review task loads none, and importing FAB there would
    cost seconds per task."""
    from airflow.configuration import conf

    return conf.get("core", "auth_manager", fallback="") in FAB_AUTH_MANAGERS


SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def simple_auth_manager_in_use() -> bool:
    """Whether `[core] auth_manager` names Airflow's simple auth manager (its default), which answers
    permission questions from the token's claims alone, without I/O."""
    from airflow.configuration import conf

    return conf.get("core", "auth_manager", fallback=SIMPLE_AUTH_MANAGER) == SIMPLE_AUTH_MANAGER


def reviewer(responded_by: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A HITL responder as the package keys reviewers: by the user name the config lists.

    Airflow records a responder as the auth manager's user id and name. With the simple auth manager the
    id is the user name; with FAB it is the account's row number, which no config lists, so reliability,
    second opinions (asked of configured reviewers who have not answered the trace) and feedback rows
    would not find the reviewer. Under FAB the name becomes the id; FAB's id is kept as `account_id`."""
    if responded_by is None:
        return None
    given = dict(responded_by)
    if given.get("name") and fab_in_use():
        return {**given, "id": str(given["name"]), "account_id": str(given.get("id"))}
    return given
