"""Airflow adapter: the request's Airflow user, remembered for a few seconds per bearer token.

Airflow resolves a token on every request: it checks the signature, then looks the token's id up in the
metadata database's revoked tokens, a database round trip that cost about a fifth of a single feedback
event's time (docs/benchmarks.md, "Single events"). An app sending feedback uses the same token for
minutes, so the user Airflow resolved is kept for REVOCATION_BOUND_SECONDS, never past the token's own
expiry: a token revoked in Airflow (logout, `revoke_token`), or one whose account was deactivated or
deleted (the FAB auth manager re-reads the account on every check), is refused by the feedback API at
most that many seconds later; an expired token is refused at once, as before. Failures are never remembered: a bad
token is checked by Airflow every time. Tokens from the UI's session cookie go to Airflow every time too.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

REVOCATION_BOUND_SECONDS = 5.0
MAX_TOKENS = 4096  # distinct tokens remembered at once; the least recently used go first


class RecentTokens:
    """Users resolved from bearer tokens, each until min(resolved + bound, the token's expiry)."""

    def __init__(self, bound: float = REVOCATION_BOUND_SECONDS, size: int = MAX_TOKENS) -> None:
        self.bound = bound
        self.size = size
        self._users: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, now: float) -> Any | None:
        with self._lock:
            found = self._users.get(token)
            if found is None:
                return None
            user, until = found
            if now >= until:
                del self._users[token]
                return None
            self._users.move_to_end(token)
            return user

    def put(self, token: str, user: Any, now: float, expires_at: float) -> None:
        until = min(now + self.bound, expires_at)
        if until <= now:
            return
        with self._lock:
            self._users[token] = (user, until)
            self._users.move_to_end(token)
            while len(self._users) > self.size:
                self._users.popitem(last=False)


def _now() -> float:
    return time.time()  # wall clock: token expiry (`exp`) is wall-clock time


def _expiry(token: str) -> float:
    """The token's `exp` claim (Airflow requires one), read after Airflow verified the token: its middle
    part is base64url-encoded JSON, so no JWT library is needed to read it again."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"])


UserResolver: TypeAlias = Callable[[Request, str | None, HTTPAuthorizationCredentials | None], Awaitable[Any]]


def user_resolver(tokens: RecentTokens | None = None) -> UserResolver:
    """What Airflow's `get_user` does (same 401/403 on missing, invalid, expired or revoked tokens), as a
    plain coroutine function of the request and its two security schemes' credentials, remembering each
    bearer token's user as the module docstring says. Plain, not a FastAPI dependency, so an access check
    can call it inside its own dependency: FastAPI solves each level of nested dependencies on every
    request (docs/benchmarks.md, "Single events")."""
    from airflow.api_fastapi.core_api.security import get_user, resolve_user_from_token

    recent = tokens or RecentTokens()

    async def user(
        request: Request, oauth_token: str | None, bearer: HTTPAuthorizationCredentials | None
    ) -> Any:
        if bearer is None or bearer.scheme.lower() != "bearer":
            return await get_user(request, oauth_token, bearer)
        token = bearer.credentials
        wall = _now()
        found = recent.get(token, wall)
        if found is not None:
            return found
        resolved = await resolve_user_from_token(token)
        recent.put(token, resolved, wall, _expiry(token))
        return resolved

    return user


def with_credentials(resolve: UserResolver) -> Callable[..., Awaitable[Any]]:
    """A FastAPI dependency calling `resolve` with the credentials of Airflow's two security schemes (the
    same ones as Airflow's get_user, so the OpenAPI document names the same schemes)."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, oauth2_scheme

    # Depends() as a default, not Airflow's annotated aliases: annotations are strings in this module and
    # FastAPI resolves them in module globals, where Airflow's names are not imported.
    async def user(
        request: Request,
        oauth_token: str | None = Depends(oauth2_scheme),  # noqa: B008 - FastAPI's idiom
        bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # noqa: B008
    ) -> Any:
        return await resolve(request, oauth_token, bearer)

    return user


def user_dependency(tokens: RecentTokens | None = None) -> Callable[..., Awaitable[Any]]:
    """A FastAPI dependency: the request's Airflow user (`user_resolver`)."""
    return with_credentials(user_resolver(tokens))
