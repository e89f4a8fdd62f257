"""Progress lines for people: on stderr, so stdout stays machine-readable (JSON, tables)."""

from __future__ import annotations

import sys


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
