"""Routes of the dashboard app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from feedback_loop.core import config, db, store
from feedback_loop.core.errors import InvalidInputError, NotFoundError
from feedback_loop.dashboard import data, page
from feedback_loop.inference import review_image
from feedback_loop.registry import versions as registry

Model = Annotated[str | None, Query(description="model name; default: the first configured model")]
Days = Annotated[int | None, Query(ge=1, le=366, description="window length in days (default from config)")]
# The picture shows an application's input to whoever may see the UI: never kept by shared caches, and
# never reused after the model's input_display changes.
NOT_STORED = {"Cache-Control": "no-store"}


def _models(conn) -> list[str]:
    configured = [m.name for m in config.load().models]
    return configured + [name for name in registry.model_names(conn) if name not in configured]


def _view(
    model: str | None, days: int | None
) -> tuple[data.ModelView | None, list[str], int, config.Settings]:
    settings = config.load()
    days = days or settings.aggregation.dashboard_days
    with db.connect() as conn:
        models = _models(conn)
        if model is not None and model not in models:
            raise HTTPException(404, f"unknown model {model!r}; known models: {', '.join(models) or 'none'}")
        chosen = model or (models[0] if models else None)
        configured = settings.model(chosen) if chosen in {m.name for m in settings.models} else None
        view = (
            data.load(
                conn,
                chosen,
                days,
                settings.alerts.min_drift_rows,
                configured.review if configured else None,
                configured.schedules.aggregation if configured else None,
            )
            if chosen
            else None
        )
    return view, models, days, settings


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/", response_class=HTMLResponse, summary="Dashboard page")
    def dashboard(model: Model = None, days: Days = None) -> HTMLResponse:
        view, models, days, settings = _view(model, days)
        return HTMLResponse(page.render(view, models, days, settings.alerts))

    @routes.get("/api/rollups", summary="The rollups behind the page, as JSON")
    def rollups(model: Model = None, days: Days = None) -> dict[str, Any]:
        view, models, days, _ = _view(model, days)
        if view is None:
            return {"models": models, "model_name": None, "rollups": [], "alias_history": []}
        return {
            "models": models,
            "model_name": view.model_name,
            "since": view.since,
            "until": view.until,
            "rollups": view.rows,
            "alias_history": [e.__dict__ for e in view.aliases],
            "accuracy_per_version": view.totals(),
            "reviewers": view.reviewers,
        }

    @routes.get(
        review_image.IMAGE_ROUTE,
        response_class=Response,
        summary="A prediction's input drawn as a picture, for review tasks of models shown as images",
        responses={
            200: {"content": {review_image.MEDIA_TYPE: {}}, "description": "the PNG"},
            404: {"description": "unknown trace_id"},
            409: {"description": "the trace's model is not configured to show its input as an image"},
            422: {
                "description": "the stored input lacks the configured pixel columns, or one is not a number"
            },
        },
    )
    def review_picture(trace_id: uuid.UUID) -> Response:
        return Response(_picture(trace_id), media_type=review_image.MEDIA_TYPE, headers=NOT_STORED)

    return routes


def _picture(trace_id: uuid.UUID) -> bytes:
    with db.connect() as conn:
        try:
            prediction = store.get_prediction(conn, trace_id)
        except NotFoundError:
            raise HTTPException(404, f"unknown trace_id {trace_id}") from None
    name = prediction["model_name"]
    try:
        display = config.load().model(name).input_display
    except NotFoundError:
        raise HTTPException(
            409, f"model {name!r} is not in the configuration: it has no input_display"
        ) from None
    if not isinstance(display, config.ImageDisplay):
        raise HTTPException(
            409,
            f"model {name!r} shows its input as {display.kind!r}, not as an image "
            "(its input_display.kind is not 'image')",
        )
    try:
        return review_image.render_png(prediction["input"], display)
    except InvalidInputError as exc:
        raise HTTPException(422, f"trace_id {trace_id}: {exc}") from None


def create_app(dependencies: Sequence[Any] = ()) -> FastAPI:
    """The dashboard app; `dependencies` guard every route (the plugin passes Airflow's access check)."""
    app = FastAPI(title="Feedback dashboard", docs_url=None, redoc_url=None)
    app.include_router(router(), dependencies=list(dependencies))
    return app
