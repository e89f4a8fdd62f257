"""How many server processes serve the feedback API by default: one per core this process may use.

One process runs Python on one core at a time, and a single feedback event costs about 1.5-2.3 ms of it
(docs/benchmarks.md, "Single events"), so one process tops out near 450 events/s standalone and 350-450
inside Airflow's api-server, whatever the machine. Airflow's own guidance for `[api] workers` is the same:
roughly one per core. Capped at MAX_WORKERS: each api-server worker is a whole Airflow API process
(hundreds of MB), and beyond a few the database, not the API, is the limit on one machine.
"""

from __future__ import annotations

import os

MAX_WORKERS = 4


def default_workers() -> int:
    """One per core available to this process (its CPU affinity, not the machine's count), 1 to MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))
