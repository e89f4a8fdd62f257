"""Pause Python's cyclic garbage collector while a large batch is parsed and stored.

A 10,000-item batch allocates tens of thousands of container objects that all stay alive until the
response is sent. Each time the young generations overflow, the collector walks them again, and its full
passes walk the whole heap as well: inside Airflow's api-server that heap holds all of Airflow. Measured
on a 10,000-item batch: ~45 ms of ~230 ms with the heap frozen (`feedback-loop api serve`); inside
Airflow's api-server, whose heap is not frozen, the worst of 7 batches reached 0.27 of raw COPY's rows/s
without the pause and 0.59 with it (docs/benchmarks.md). Reference counting still frees everything that is not
in a cycle; cycles made meanwhile are collected at the next pass after the last batch finishes, or, when
batches keep overlapping so that there is no last one, by a full pass every MAX_PAUSE_SECONDS.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_PAUSE_SECONDS = 2.0

_lock = threading.Lock()
_holders = 0
_enable_when_done = False
_paused_since = 0.0


@contextmanager
def paused() -> Iterator[None]:
    """Collector off while any thread is inside this block; back to its previous state after the last."""
    global _holders, _enable_when_done, _paused_since
    with _lock:
        if _holders == 0:
            # Someone who disabled it on purpose gets it back disabled.
            _enable_when_done = gc.isenabled()
            _paused_since = time.monotonic()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _enable_when_done:
                gc.enable()
            overdue = (
                _holders > 0 and _enable_when_done and time.monotonic() - _paused_since > MAX_PAUSE_SECONDS
            )
            if overdue:
                _paused_since = time.monotonic()
        if overdue:
            # Overlapping batches have kept it off for a while: collect now, so cycles cannot pile up.
            gc.collect()
