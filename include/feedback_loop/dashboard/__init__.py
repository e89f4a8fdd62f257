"""The feedback dashboard: rollups per model version over time, drift and the alias history.

A small FastAPI app serving server-rendered HTML (inline SVG charts, no JavaScript, nothing fetched from
the internet). The Airflow plugin mounts it at /feedback-dashboard behind Airflow's own auth; the
access check is passed in, so this package stays free of Airflow imports.
"""

from feedback_loop.dashboard.app import create_app

__all__ = ["create_app"]
