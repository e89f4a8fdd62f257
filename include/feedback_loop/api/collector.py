"""Pause Python's cyclic garbage collector while a large batch is parsed and stored.

A 10,000-item batch allocates tens of thousands of container objects that all stay alive until the
response is sent. Each time the young generations overflow, the collector walks them again, and its full
passes walk the whole heap as well: inside Airflow's api-server that heap holds all of Airflow. Measured
on a 10,000-item batch: ~45 ms of ~230 ms with the heap frozen (`feedback-loop api serve`), and ~100 ms
of validation alone without (docs/benchmarks.md). Reference counting still frees everything that is not
in a cycle; cycles made meanwhile are collected at the next pass after the last batch finishes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_enable_when_done = False


@contextmanager
def paused() -> Iterator[None]:
    """Collector off while any thread is inside this block; back to its previous state after the last."""
    global _holders, _enable_when_done
    with _lock:
        if _holders == 0:
            # Someone who disabled it on purpose gets it back disabled.
            _enable_when_done = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _enable_when_done:
                gc.enable()
