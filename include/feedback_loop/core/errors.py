"""Errors with a one-line message an operator can act on.

Every error raised on purpose by the package derives from FeedbackLoopError, so the CLI and the API can
turn it into an exit code or an HTTP status without guessing.
"""


class FeedbackLoopError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = 1


class ConfigError(FeedbackLoopError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class NotFoundError(FeedbackLoopError):
    """A model, version, trace or feedback item that was asked for does not exist."""

    exit_code = 2


class InvalidInputError(FeedbackLoopError):
    """An argument or payload failed validation; the message names the field."""

    exit_code = 2


class ConflictError(FeedbackLoopError):
    """The request contradicts stored state (e.g. an idempotency key reused with another body)."""

    exit_code = 3


class IntegrityError(FeedbackLoopError):
    """A stored artifact does not match its recorded checksum or contains untrusted types."""

    exit_code = 4


class DatabaseUnavailableError(FeedbackLoopError):
    """No PostgreSQL server could be found or started."""

    exit_code = 5


class ForbiddenError(FeedbackLoopError):
    """The authenticated user may not do this (e.g. answer a review assigned to someone else)."""

    exit_code = 2
