"""Pause Python's cyclic garbage collector while a large batch is parsed and stored.

A 10,000-item batch allocates tens of thousands of container objects that all stay alive until the
response is sent. Each time the young generations overflow, the collector walks them again, and its full
passes walk the whole heap as well: inside Airflow's api-server that heap holds all of Airflow. What the
pause is worth, with and without a frozen heap, is measured in docs/benchmarks.md ("Feedback ingest").

Only the batch route enters the pause (`routes._ingest_batch`, around parsing, storing and writing the
answer; a test checks that no other route, ours or Airflow's, does). CPython has one collector per
process, so while a batch runs, automatic cyclic collection is off for every thread of the process,
Airflow's requests included. For them as for the batch, reference counting still frees everything
that is not in a cycle; cycles made meanwhile are collected at the next pass after the last batch
finishes, and while any batch holds the pause (batches that keep overlapping, or one that waits on a
lock), a timer runs a full pass every MAX_PAUSE_SECONDS, so the collector is never off for long.
The collector's state is read when the first batch enters and restored when the last one leaves: a
gc.disable() or gc.enable() by other code in between is not seen.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_PAUSE_SECONDS = 2.0

_lock = threading.Lock()
_holders = 0
_enable_when_done = False
_generation = 0  # one pause period, from the first batch in to the last one out; its timer chain ends with it


def _collect_while_paused(generation: int) -> None:
    """Timer callback: a full pass, then the next timer, for as long as this pause period lasts."""
    with _lock:
        if generation != _generation:
            return
    gc.collect()
    with _lock:
        if generation == _generation:
            _start_timer(generation)


def _start_timer(generation: int) -> None:
    timer = threading.Timer(MAX_PAUSE_SECONDS, _collect_while_paused, args=(generation,))
    timer.daemon = True
    timer.start()


@contextmanager
def paused() -> Iterator[None]:
    """Collector off while any thread is inside this block; back to its previous state after the last."""
    global _holders, _enable_when_done, _generation
    with _lock:
        if _holders == 0:
            # Someone who disabled it on purpose gets it back disabled, and no timed passes.
            _enable_when_done = gc.isenabled()
            gc.disable()
            _generation += 1
            if _enable_when_done:
                _start_timer(_generation)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                _generation += 1  # a timer still pending finds another generation and stops
                if _enable_when_done:
                    gc.enable()
