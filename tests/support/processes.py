"""Killing a component the way a lost host does: every process it started, at once, with SIGKILL."""

from __future__ import annotations

import os
import signal

from bench._proc import tree


def sigkill_tree(pid: int) -> list[int]:
    """SIGKILL pid and every descendant, also those in process groups of their own (Airflow's task
    supervisor puts each task in one), so nothing of it lives on as an orphan. Returns the pids killed."""
    # Freeze first, so no process forks a child between listing the tree and killing it.
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        members = tree(pid)
        for member in members:
            try:
                os.kill(member, sig)
            except ProcessLookupError:
                pass
    return members
