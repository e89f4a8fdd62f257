"""CPU and memory of a process and its descendants, read from /proc (Linux).

CPU seconds of a server's tree hardly move with other load on the machine, unlike requests per second,
so benchmarks report them beside their rates. Memory is summed as PSS: the workers a server forks share
most of their pages with it, and summing RSS would count those pages once per process.
"""

from __future__ import annotations

import os
from pathlib import Path


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (2nd field) may hold spaces and brackets: split after its closing bracket.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone in between
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def tree(pid: int) -> list[int]:
    """The process and all its live descendants, whichever of their threads forked them (an empty list
    when it is gone)."""
    parents = _parents()
    if pid not in parents:
        return []
    found, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def cpu_seconds(pid: int, *, descendants: bool = True) -> float:
    """User + system CPU seconds of the process (and, by default, its descendants).

    With descendants, each live process also adds what its exited, reaped children used (cutime +
    cstime): an executor forks a process per task, and their CPU would otherwise vanish with them."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for current in tree(pid) if descendants else [pid]:
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = int(fields[11]) + int(fields[12])
        if descendants:
            used += int(fields[13]) + int(fields[14])
        total += used / ticks
    return total


def pss_bytes(pid: int) -> int:
    """Proportional set size of the process tree, in bytes (RSS where smaps_rollup cannot be read)."""
    total = 0
    for current in tree(pid):
        try:
            text = Path(f"/proc/{current}/smaps_rollup").read_text()
            key = "Pss:"
        except OSError:
            try:
                text = Path(f"/proc/{current}/status").read_text()
                key = "VmRSS:"
            except OSError:
                continue
        for line in text.splitlines():
            if line.startswith(key):
                total += int(line.split()[1]) * 1024
                break
    return total
