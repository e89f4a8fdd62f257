"""Stopping what the local stack started: each component (and the throwaway Redis) runs in a process group
of its own, so stopping the group stops every process it forked."""

from __future__ import annotations

import os
import signal
import time


def alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(pids: list[int], grace: float = 15) -> int:
    """SIGTERM the process groups of these group leaders at once, then SIGKILL whatever is left after
    `grace` seconds; the number of groups that were still running."""
    groups = []
    for pid in pids:
        try:
            groups.append(os.getpgid(pid))
        except ProcessLookupError:
            continue
    running = len(groups)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive(g) for g in groups):
            time.sleep(0.2)
        groups = [g for g in groups if alive(g)]
        if not groups:
            break
    return running
