"""Mounts the feedback dashboard at /feedback-dashboard and lists it in the Airflow UI's navigation.

Registration only; the app lives in feedback_loop.dashboard and its access check in
feedback_loop.adapters.airflow_dashboard (Airflow's own auth: bearer token or the UI's session cookie).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from feedback_loop.adapters.airflow_dashboard import URL_PREFIX, create_plugin_app


class FeedbackDashboardPlugin(AirflowPlugin):
    name = "feedback_dashboard"
    fastapi_apps = [{"app": create_plugin_app(), "url_prefix": URL_PREFIX, "name": "Feedback dashboard"}]
    external_views = [
        {
            "name": "Feedback dashboard",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "feedback-dashboard",
            "category": "browse",
        }
    ]
