"""The garbage-collector pause around batch ingest: off while any batch runs, restored after the last."""

from __future__ import annotations

import gc
import threading

import pytest

from feedback_loop.api import collector

pytestmark = pytest.mark.unit


def test_collector_is_off_inside_and_back_on_after():
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_stays_off_until_the_last_of_overlapping_batches_ends():
    first_inside, second_done, release_first = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with collector.paused():
            first_inside.set()
            release_first.wait(5)
            seen["first, after the second ended"] = gc.isenabled()

    def second() -> None:
        first_inside.wait(5)
        with collector.paused():
            pass
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert second_done.wait(5)
    assert not gc.isenabled()  # the first batch is still running
    release_first.set()
    for thread in threads:
        thread.join(5)
    assert seen == {"first, after the second ended": False}
    assert gc.isenabled()


def test_a_collector_disabled_on_purpose_stays_disabled():
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_still_restores_the_collector():
    try:
        with collector.paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_cycles_are_collected_while_a_batch_holds_the_pause_for_long(monkeypatch):
    # One batch waiting on a lock, or a stream of overlapping ones, must not keep cycles alive: a timer
    # runs a full pass every MAX_PAUSE_SECONDS while the pause lasts.
    import time
    import weakref

    monkeypatch.setattr(collector, "MAX_PAUSE_SECONDS", 0.05)

    class Node:
        pass

    with collector.paused():
        node = Node()
        node.self = node  # a cycle: reference counting alone never frees it
        alive = weakref.ref(node)
        del node
        deadline = time.monotonic() + 5
        while alive() is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert alive() is None
        assert not gc.isenabled()  # still paused: the pass was a timed one
    assert gc.isenabled()


def test_no_timed_passes_when_the_collector_was_off_before(monkeypatch):
    import time
    import weakref

    monkeypatch.setattr(collector, "MAX_PAUSE_SECONDS", 0.02)

    class Node:
        pass

    gc.disable()
    try:
        with collector.paused():
            node = Node()
            node.self = node
            alive = weakref.ref(node)
            del node
            time.sleep(0.2)
            assert alive() is not None  # whoever turned it off decides when to collect
    finally:
        gc.enable()
        gc.collect()
