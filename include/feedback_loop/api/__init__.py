"""The feedback REST API: a FastAPI app with no Airflow import.

`app.create_app(access)` builds it; the caller supplies the access policy (FastAPI dependencies). The
Airflow adapter (`feedback_loop.adapters.airflow_auth`) supplies Airflow's own token checks, both for the
plugin mounted at /feedback-api and for the standalone `feedback-loop api serve`.
"""
