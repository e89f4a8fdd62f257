"""Builds the FastAPI app of the feedback API from the route table, with readable errors.

Every error body has one shape: {"detail": [{"field": "...", "reason": "..."}]}, including FastAPI's
request validation errors, which are rewritten here so a client reads "rating: must be between 1 and 5"
rather than pydantic's internals.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi_offline
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from feedback_loop import __version__
from feedback_loop.api import routes
from feedback_loop.api.problems import ApiProblem, UnsupportedMediaType
from feedback_loop.api.routes import REVIEW_ANSWER_PATH, ROUTES
from feedback_loop.api.schemas import UNICODE_REASON, ProblemOut
from feedback_loop.api.service import FeedbackService
from feedback_loop.core import config, field_paths
from feedback_loop.core.errors import ConfigError, DatabaseUnavailableError

log = logging.getLogger(__name__)

DESCRIPTION = """Human feedback on logged predictions: validated, de-duplicated, PII-masked and triaged.

Authenticate with an Airflow token (`POST /auth/token` on the Airflow API server) sent as
`Authorization: Bearer <token>`. Reads need permission to read the auth manager's `Feedback Loop API`
resource, writes permission to create on it (FAB: the package's roles, `feedback_app` writes; Airflow's
simple auth manager: role viewer reads, role op or admin writes).
Retries are safe with an `Idempotency-Key` header or a `client_event_id` in the body.

Apps may also enqueue inference requests under their own request ids (`POST /requests`) and read back
each one's status, trace_id, prediction and confidence (`GET /requests/{model_name}/{request_id}`, or many
at once with `GET /requests/{model_name}?request_id=a&request_id=b`), then post feedback on the trace_id.
Re-sending a request id with the same input is safe; another input under a known id is 409.
"""


# Swagger UI as files in the fastapi-offline package: FastAPI's own /docs loads it from a CDN, which leaves
# a blank page wherever the API server has no internet.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS_PATH = "/docs-assets"


@dataclass(frozen=True)
class Access:
    """FastAPI dependencies that authorise a request (they raise 401/403 themselves)."""

    read: Callable[..., Any]
    write: Callable[..., Any]
    # A dependency giving the authenticated user's ReviewDesk (None: this server takes no review answers).
    review: Callable[..., Any] | None = None


class BodySizeLimit:
    """Refuses request bodies over the configured size with 413 before they are read into memory.

    It is the first to read the configuration on each request (`limit` reads it: cached, re-read when the
    file changes), so it also answers every request, /healthz included, with 503 naming the file and what
    is wrong while the file is invalid; once it is fixed, requests are served again without a restart."""

    def __init__(self, app: Any, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit
        self.config_problem: str | None = None  # the last one logged

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            limit = self.limit()
        except ConfigError as exc:
            if str(exc) != self.config_problem:
                log.warning("feedback API answers 503 until its configuration is fixed: %s", exc)
                self.config_problem = str(exc)
            await JSONResponse(_config_invalid(exc), status_code=503)(scope, receive, send)
            return
        if self.config_problem is not None:
            log.info("feedback API configuration is valid again; serving requests")
            self.config_problem = None
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            response = JSONResponse(_too_large(limit), status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI passes HTTPException raised while reading the body through unchanged.
                    raise HTTPException(413, detail=_too_large(limit)["detail"])
            return message

        await self.app(scope, limited_receive, send)


NESTED_TOO_DEEPLY = "is not valid JSON: it is nested too deeply"


def _config_invalid(exc: ConfigError) -> dict[str, Any]:
    return {"detail": [{"field": "config", "reason": str(exc)}]}


async def _config_error(_request: Request, exc: ConfigError) -> JSONResponse:
    """The file broke between the middleware's check and a later read in the same request."""
    return JSONResponse(_config_invalid(exc), status_code=503)


def _too_large(limit: int) -> dict[str, Any]:
    return {
        "detail": [{"field": "body", "reason": f"request body is larger than the limit of {limit} bytes"}]
    }


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'items', 3, 'rating') -> 'items[3].rating'; ('header', 'Idempotency-Key') -> 'Idempotency-Key'."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie") and len(parts) > 1:
        parts = parts[1:]
    return field_paths.dotted(parts) or "body"


def reason(error: dict[str, Any]) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    simple = {
        "missing": "is required",
        "extra_forbidden": "is not a known field",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be an integer",
        "string_type": "must be a string",
        "string_unicode": UNICODE_REASON,  # pydantic's own check on constrained strings
        "uuid_parsing": "must be a UUID such as 7b0c8a8e-5a3e-4cc4-9a59-0b4f2f7f1e11",
        "uuid_type": "must be a UUID such as 7b0c8a8e-5a3e-4cc4-9a59-0b4f2f7f1e11",
        "model_attributes_type": "must be a JSON object",
        "dict_type": "must be a JSON object",
        "model_type": "must be a JSON object",
        "list_type": "must be a JSON array",
        "bool_type": "must be true or false",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} character(s) long"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "json_invalid" and "recursion limit exceeded" in str(ctx.get("error", "")):
        return NESTED_TOO_DEEPLY
    if kind == "json_invalid":
        # FastAPI's own parse error carries ("body", position); pydantic's model_validate_json an empty loc
        position = (error.get("loc") or ("body", "?"))[-1]
        return f"is not valid JSON ({ctx.get('error', 'parse error')} at character {position})"
    return str(error.get("msg", "is invalid"))


def readable_errors(errors: list[dict[str, Any]], limit: int = 20) -> list[dict[str, str]]:
    return [
        {
            "field": "body" if e.get("type") == "json_invalid" else field_name(e.get("loc", ())),
            "reason": reason(e),
        }
        for e in errors[:limit]
    ]


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": readable_errors(list(exc.errors()))}, status_code=422)


async def _unparsable_body(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI answers a body it cannot decode (not UTF-8, ...) with a bare 400 text, and a path no route
    matches with a bare 404/405 text (e.g. a request id holding '/' in GET /requests/{model}/{id}); name
    the field. Every other HTTPException (Airflow's 401/403 among them) keeps FastAPI's own answer."""
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        if isinstance(exc.__cause__, RecursionError):  # Python's json parser ran out of stack
            return JSONResponse({"detail": [{"field": "body", "reason": NESTED_TOO_DEEPLY}]}, status_code=422)
        reason = routes.UNDECODABLE
        return JSONResponse({"detail": [{"field": "body", "reason": reason}]}, status_code=400)
    if (exc.status_code, exc.detail) in ((404, "Not Found"), (405, "Method Not Allowed")):
        reason = f"no route for {request.method} on this path; the routes are listed in openapi.json"
        return JSONResponse(
            {"detail": [{"field": "path", "reason": reason}]},
            status_code=exc.status_code,
            headers=exc.headers,
        )
    return await http_exception_handler(request, exc)


async def utf8_json_body(request: Request) -> None:
    """Bodies are JSON text in UTF-8 (RFC 8259): another media type or charset is 415 naming Content-Type,
    a UTF-16 or UTF-32 body 400 naming the body. (Python's json reads UTF-16 and UTF-32 too, and FastAPI
    reads a body without Content-Type as JSON.) A route dependency, after the access check: who may not
    write learns nothing about the body. The body is read once; the handler gets it from the request."""
    media, _, parameters = request.headers.get("content-type", "").partition(";")
    if media.strip().lower() != "application/json":
        sent = f"got {media.strip()!r}" if media.strip() else "none was sent"
        raise UnsupportedMediaType("Content-Type", f"must be application/json ({sent})")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                "Content-Type", f"charset must be utf-8 (got {charset!r}): send UTF-8 encoded JSON"
            )
    head = (await request.body())[:4]
    # JSON text starts with an ASCII character: a NUL among the first bytes, or a UTF-16/32 byte order
    # mark, is UTF-16 or UTF-32 (RFC 4627's detection).
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise ApiProblem("body", "is not UTF-8 (it looks like UTF-16 or UTF-32): send UTF-8 encoded JSON")


async def _connection_lost(_request: Request, exc: psycopg.OperationalError) -> JSONResponse:
    """A pooled connection that broke mid-request (database restarted, failover) is a temporary outage:
    503 tells the client to retry, and a retry with the same idempotency key stores the event once
    whether or not the lost commit reached the server."""
    log.warning("feedback database connection lost during a request: %s", str(exc).strip().splitlines()[0])
    reason = "the connection to the feedback database was lost; retry with the same Idempotency-Key"
    return JSONResponse({"detail": [{"field": "database", "reason": reason}]}, status_code=503)


async def _api_problem(_request: Request, exc: ApiProblem) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _database_unavailable(_request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
    return JSONResponse({"detail": [{"field": "database", "reason": str(exc)}]}, status_code=503)


def create_app(
    access: Access,
    *,
    settings: config.Settings | None = None,
    service: FeedbackService | None = None,
    on_start: Callable[[], None] | None = None,
) -> FastAPI:
    """The feedback API. Opens no database connection and reads no config until the first request.
    `on_start` runs once when the server starts it (inside Airflow's api-server: after Airflow's start)."""
    feedback_service = service or FeedbackService(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_start is not None:
            on_start()
        feedback_service.open()
        yield
        feedback_service.close()

    app = FastAPI(
        title="Feedback API",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    _serve_docs_offline(app)
    app.state.feedback_service = feedback_service
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(StarletteHTTPException, _unparsable_body)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(psycopg.OperationalError, _connection_lost)
    app.add_middleware(BodySizeLimit, limit=lambda: feedback_service.settings.api.max_body_bytes)
    error_doc = {
        401: {"description": "no token or an expired token"},
        403: {"description": "the token's user may not do this (or the token is invalid)"},
        404: {"model": ProblemOut, "description": "unknown trace_id, feedback id, model or request_id"},
        409: {
            "model": ProblemOut,
            "description": "idempotency key reused with a different body, or a request_id enqueued before "
            "with another input",
        },
        400: {"model": ProblemOut, "description": "the body is not UTF-8"},
        413: {"model": ProblemOut, "description": "request body over the configured limit"},
        415: {"model": ProblemOut, "description": "Content-Type is not application/json (charset utf-8)"},
        422: {
            "model": ProblemOut,
            "description": "invalid input; each problem names the field and the reason",
        },
        503: {
            "model": ProblemOut,
            "description": "the feedback database cannot be reached, or the configuration file is invalid",
        },
    }
    for spec in ROUTES:
        dependencies = [] if spec.access is None else [Depends(getattr(access, spec.access))]
        codes = (*spec.errors, 503) + ((401, 403) if spec.access else ())
        if spec.method == "POST":  # every POST takes a JSON body
            dependencies.append(Depends(utf8_json_body))
            codes += (400, 415)
        endpoint = spec.endpoint
        if spec.path == REVIEW_ANSWER_PATH and access.review is not None:
            endpoint = routes.review_answer_endpoint(access.review)
        app.add_api_route(
            spec.path,
            endpoint,
            methods=[spec.method],
            status_code=spec.status_code,
            response_model=spec.response_model,
            summary=spec.summary,
            dependencies=dependencies,
            responses={code: error_doc[code] for code in sorted(codes)},
            openapi_extra=_request_body(spec.raw_body),
        )
    raw_models = [spec.raw_body for spec in ROUTES if spec.raw_body is not None]
    if raw_models:
        _document_raw_bodies(app, raw_models)
    return app


def _serve_docs_offline(app: FastAPI) -> None:
    """/docs (Swagger UI) with its script, style and icon served by this app.

    URLs carry the request's root path: inside Airflow the app is mounted at /feedback-api, standalone at
    /. The assets are static files anyone may fetch, like the page and openapi.json themselves (the routes
    they document keep their own access checks). Swagger UI's online validator is switched off: it would
    send the document to a third party. FastAPI's /redoc is not served: the ReDoc bundle always loads its
    vendor's logo from the vendor's CDN."""
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + DOCS_ASSETS_PATH
        return get_swagger_ui_html(
            openapi_url=root + str(app.openapi_url),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )


def _request_body(model: Any) -> dict[str, Any] | None:
    if model is None:
        return None
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _document_raw_bodies(app: FastAPI, models: list[Any]) -> None:
    """Add the schemas of bodies parsed by handlers themselves to the generated OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(schema.pop("$defs", {}))
                components[model.__name__] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi
