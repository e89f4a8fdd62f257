"""Airflow adapter: the dashboard app behind Airflow's own access check.

Every route (the page, its JSON, the pictures review tasks show) needs a user allowed to see the Airflow UI
(`requires_access_view(AccessView.WEBSITE)`) and to list DAGs (`requires_access_dag("GET")`): the viewer
role with the simple auth manager; with FAB every role of the package except `feedback_app`, which FAB
lets see the (empty) home page. The user comes from `Authorization: Bearer <JWT>` or,
inside the Airflow UI, from the `_token` cookie the UI keeps: the same resolution `GetUserDep` does for
/api/v2. The check finds the auth manager through `get_auth_manager()` (process-wide), so it works inside
the mounted plugin app.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from feedback_loop import dashboard
from feedback_loop.adapters import airflow_connection
from feedback_loop.inference import review_image

# Review bodies link pictures under this prefix (inference.review_image), so the plugin mounts the app here.
URL_PREFIX = review_image.DASHBOARD_PREFIX


def create_plugin_app() -> FastAPI:
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_dag, requires_access_view

    airflow_connection.install()
    return dashboard.create_app(
        [Depends(requires_access_view(AccessView.WEBSITE)), Depends(requires_access_dag("GET"))]
    )
