"""Named SQL from sql/queries/*.sql, read once; values are always bound parameters, never formatted in."""

from __future__ import annotations

from functools import cache

from feedback_loop.core import paths
from feedback_loop.core.errors import FeedbackLoopError


@cache
def sql(name: str) -> str:
    """The text of sql/queries/<name>.sql (name may contain one folder level, e.g. 'rollups/upsert')."""
    path = paths.sql_dir() / "queries" / f"{name}.sql"
    if not path.is_file():
        raise FeedbackLoopError(f"missing SQL file {path}")
    return path.read_text(encoding="utf-8")
