"""Errors the API returns, all with one body shape: {"detail": [{"field": ..., "reason": ...}]}.

The service raises them; app.py turns them into responses. Nothing is stored when one is raised: the
service raises before writing or inside the transaction it then rolls back.
"""

from __future__ import annotations

from typing import Any

from feedback_loop.core.errors import FeedbackLoopError

# At most this many problems are reported for one request (and looked for: a batch stops there).
MAX_REPORTED_PROBLEMS = 20


class ApiProblem(FeedbackLoopError):
    status_code = 400

    def __init__(self, field: str, reason: str, *, more: list[dict[str, str]] | None = None) -> None:
        self.problems = [{"field": field, "reason": reason}, *(more or [])]
        super().__init__(f"{field}: {reason}")

    def body(self) -> dict[str, Any]:
        return {"detail": self.problems}


class Invalid(ApiProblem):
    status_code = 422


class NotFound(ApiProblem):
    status_code = 404


class UnsupportedMediaType(ApiProblem):
    status_code = 415


class Conflict(ApiProblem):
    status_code = 409


class Forbidden(ApiProblem):
    status_code = 403


class Unavailable(ApiProblem):
    status_code = 503
