"""Killing a component the way a lost host does: every process it started, at once, with SIGKILL."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _parents() -> dict[int, int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (2nd field) may hold spaces and brackets: split after its closing bracket.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (Linux /proc)."""
    parents = _parents()
    tree, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def sigkill_tree(pid: int) -> list[int]:
    """SIGKILL pid and every descendant, also those in process groups of their own (Airflow's task
    supervisor puts each task in one), so nothing of it lives on as an orphan. Returns the pids killed."""
    # Freeze first, so no process forks a child between listing the tree and killing it.
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        tree = process_tree(pid)
        for member in tree:
            try:
                os.kill(member, sig)
            except ProcessLookupError:
                pass
    return tree
