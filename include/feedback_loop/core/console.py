"""Progress lines for people: on stderr, so stdout stays machine-readable (JSON, tables)."""

from __future__ import annotations

import sys
import time


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Heartbeat:
    """A line every `every` seconds while something long is waited for, so nobody stares at silence:
    call it in the waiting loop; it prints only when the interval has passed."""

    def __init__(self, what: str, every: float = 25.0) -> None:
        self.what, self.every = what, every
        self.started = self.last = time.monotonic()

    def __call__(self, detail: str = "") -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            progress(
                f"      still waiting for {self.what} ({now - self.started:.0f} s){': ' + detail if detail else ''}"
            )
