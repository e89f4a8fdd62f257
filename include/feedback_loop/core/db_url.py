"""Where the feedback database's URL comes from, before any connection is opened.

FEEDBACK_LOOP_DB_URL wins. Otherwise an orchestrator may install a source: inside Airflow the adapter
installs the `feedback_db` connection when Airflow loads our DAGs or plugins. This module imports nothing
heavy, so DAG files can install the source at parse time without loading a database driver.
"""

from __future__ import annotations

from collections.abc import Callable

ENV_URL = "FEEDBACK_LOOP_DB_URL"
EMBEDDED = "embedded"

_source: Callable[[], str] | None = None
_listeners: list[Callable[[], None]] = []


def use_url_source(source: Callable[[], str] | None) -> None:
    """Install (or remove, with None) the function that names the database when FEEDBACK_LOOP_DB_URL is
    not set. It returns a URL or raises DatabaseUnavailableError saying what to configure."""
    global _source
    _source = source
    for forget in _listeners:
        forget()


def installed_source() -> Callable[[], str] | None:
    return _source


def on_change(forget: Callable[[], None]) -> None:
    """Call `forget` whenever the source changes (the resolved URL is cached)."""
    _listeners.append(forget)
