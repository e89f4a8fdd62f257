"""Mounts the feedback API on the Airflow API server at /feedback-api (OpenAPI: /feedback-api/openapi.json).

Registration only; the app lives in feedback_loop.api and its access checks in
feedback_loop.adapters.airflow_auth (Airflow's own token checks). The root middleware records answers
Airflow accepts for our review tasks on arrival (feedback_loop.adapters.airflow_reviews).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from feedback_loop.adapters.airflow_auth import create_plugin_app
from feedback_loop.adapters.airflow_reviews import RecordReviewAnswers


class FeedbackApiPlugin(AirflowPlugin):
    name = "feedback_api"
    fastapi_apps = [{"app": create_plugin_app(), "url_prefix": "/feedback-api", "name": "Feedback API"}]
    fastapi_root_middlewares = [
        {"middleware": RecordReviewAnswers, "name": "Record review answers on arrival"}
    ]
