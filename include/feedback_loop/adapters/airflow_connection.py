"""Airflow adapter: the feedback database is the Airflow connection `feedback_db`.

`install()` makes it the database's only source besides FEEDBACK_LOOP_DB_URL for this process (DAG files
and the plugins call it). A task that finds neither fails with one line saying what to configure: it never
falls back to a server on 127.0.0.1 or starts a throwaway one on a worker.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from feedback_loop.core import db_url
from feedback_loop.core.errors import DatabaseUnavailableError

CONN_ID = "feedback_db"
MISSING = (
    f"no feedback database configured: define the Airflow connection '{CONN_ID}' "
    f"(e.g. AIRFLOW_CONN_{CONN_ID.upper()}=postgresql://user:password@host:5432/dbname) "
    f"or set {db_url.ENV_URL}"
)


class DatabaseNotConfigured(DatabaseUnavailableError, AirflowFailException):
    """Fails a task at once (no retry can define a connection); the feedback API answers it with 503."""


def feedback_db_url() -> str:
    """The URL of the `feedback_db` connection; DatabaseNotConfigured (MISSING) when it is not defined.
    Any other problem (a secrets backend down, a malformed URI) surfaces as it is."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    try:
        return PostgresHook(postgres_conn_id=CONN_ID).get_uri()
    except AirflowNotFoundException:
        raise DatabaseNotConfigured(MISSING) from None


def install() -> None:
    db_url.use_url_source(feedback_db_url)
