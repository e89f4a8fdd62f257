"""Airflow adapter: the feedback API's access checks, done by Airflow's own security code.

The feedback API accepts exactly the tokens Airflow's REST API accepts (`POST /auth/token`), verified by
the configured auth manager (`airflow.api_fastapi.core_api.security.get_user`), and asks that auth
manager who may do what about the API's own resource, `Feedback Loop API`
(`is_authorized_custom_view`, the auth managers' question for a resource a plugin defines):
- reads (GET) need permission to read it, writes (POST: feedback, inference requests) to create on it.
  With FAB those are `can_read` / `can_create` on "Feedback Loop API", held by the package's roles
  (adapters.airflow_fab): the `feedback_app` role writes feedback without any permission in Airflow itself.
- The simple auth manager answers every custom-view question with "viewers may", whatever the method, so
  it cannot say who writes: under it a write also needs its permission to create asset events (role op or
  admin; viewer and user get 403), as before roles came.
- review answers (`POST /reviews/{id}/answer`) need what Airflow's own HITL answer needs: permission to
  update the DAG's HITL details, and being one of the review's assigned users (adapters.airflow_reviews).
A token signed with the real secret but naming a role Airflow does not know is 403 naming the role
(adapters.airflow_users); Airflow's own check would fail on it with a 500.
Neither check needs a lookup in Airflow's metadata DB (DAG checks would, for the DAG's team), so a write
costs one token check and the revoked-token lookup Airflow always does.

Those dependencies find the auth manager through `airflow.api_fastapi.app.get_auth_manager()` (the
process-wide instance), not through `request.app.state`, so they work unchanged inside the plugin's
mounted sub-app. The standalone server (`feedback-loop api serve`) initialises the same auth manager
without mounting Airflow's routes; it must share the API server's `[api_auth]` settings
(AIRFLOW__API_AUTH__JWT_SECRET or the JWT key files) and its metadata DB (revoked tokens).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from feedback_loop.adapters import airflow_connection, airflow_users
from feedback_loop.adapters.airflow_fab import FEEDBACK_RESOURCE
from feedback_loop.api.app import Access, create_app

log = logging.getLogger(__name__)


def feedback_access(method: str) -> Callable[..., Any]:
    """A FastAPI dependency: 403 unless the auth manager lets the request's user `method` the feedback API."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.core_api.security import bearer_scheme, oauth2_scheme

    def check(user: Any) -> None:
        manager = get_auth_manager()
        allowed = manager.is_authorized_custom_view(method=method, resource_name=FEEDBACK_RESOURCE, user=user)
        if allowed and method != "GET" and isinstance(manager, SimpleAuthManager):
            # Its custom-view answer ignores the method (module docstring); its asset check does not.
            allowed = manager.is_authorized_asset(method=method, user=user)
        if not allowed:
            # The same answer Airflow's own `requires_access_*` gives, so the API's 403 stays as it was.
            raise HTTPException(403, "Forbidden")

    if not airflow_users.simple_auth_manager_in_use():
        # FAB reads a user's permissions through SQLAlchemy, which may query the metadata DB; other auth
        # managers may ask a remote service. That must not block the event loop: FastAPI runs a plain
        # function in a worker thread.
        known_user = airflow_users.known_user_dependency()

        def access(user: Any = Depends(known_user)) -> None:  # noqa: B008 - FastAPI's idiom
            check(user)

        return access

    resolve_known_user = airflow_users.known_user_resolver()

    # The simple auth manager answers from the token's claims: a plain check, run on the event loop
    # without a thread hand-off per request, in the same dependency that resolves the user (FastAPI
    # solves each nested level on every request; docs/benchmarks.md, "Single events").
    async def access_without_io(
        request: Request,
        oauth_token: str | None = Depends(oauth2_scheme),  # noqa: B008 - FastAPI's idiom
        bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),  # noqa: B008
    ) -> None:
        check(await resolve_known_user(request, oauth_token, bearer))

    return access_without_io


def airflow_access() -> Access:
    from feedback_loop.adapters.airflow_reviews import review_desk_dependency

    return Access(read=feedback_access("GET"), write=feedback_access("POST"), review=review_desk_dependency())


def freeze_heap() -> None:
    """Once, when the server starts: move every object alive now into the collector's permanent generation.

    Importing Airflow leaves a large, long-lived heap. A 10,000-item batch allocates enough objects to set off
    full collections, and each full pass walked all of Airflow: one batch round in seven stalled at a quarter
    of the usual rate (docs/benchmarks.md, "Feedback ingest"). Frozen, those objects are never walked again.
    The collector itself stays on for every request, Airflow's included (gc.freeze, as pre-forking servers
    use it); what the frozen objects hold is never collected, which for a server's start-up state is
    nothing that would have been."""
    gc.collect()
    gc.freeze()


def create_plugin_app() -> FastAPI:
    """The app the plugin mounts at /feedback-api; Airflow's API server initialises the auth manager."""
    airflow_connection.install()
    return create_app(airflow_access(), on_start=freeze_heap)


def create_standalone_app() -> FastAPI:
    """The app `feedback-loop api serve` runs: initialises Airflow's auth manager in this process first."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.configuration import conf

    manager = init_auth_manager()
    if not (
        conf.get("api_auth", "jwt_secret", fallback="")
        or conf.get("api_auth", "jwt_private_key_path", fallback="")
        or conf.get("api_auth", "trusted_jwks_url", fallback="")
    ):
        log.warning(
            "no [api_auth] jwt_secret, jwt_private_key_path or trusted_jwks_url is configured: tokens from "
            "the Airflow API server will be refused; set AIRFLOW__API_AUTH__JWT_SECRET to its secret"
        )
    log.info("feedback API verifies Airflow tokens with %s", type(manager).__name__)
    return create_app(airflow_access(), on_start=freeze_heap)
