"""The garbage-collector pause around batch ingest: off while any batch runs, restored after the last."""

from __future__ import annotations

import gc
import threading

from feedback_loop.api import collector


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


def test_overlapping_batches_still_get_their_cycles_collected(monkeypatch):
    # A steady stream of overlapping batches never lets the holder count reach zero: a full pass every
    # MAX_PAUSE_SECONDS keeps cycles from piling up.
    import time
    import weakref

    monkeypatch.setattr(collector, "MAX_PAUSE_SECONDS", 0.05)

    class Node:
        pass

    hold, release = threading.Event(), threading.Event()

    def long_batch() -> None:
        with collector.paused():
            hold.set()
            release.wait(5)

    thread = threading.Thread(target=long_batch)
    thread.start()
    try:
        assert hold.wait(5)
        node = Node()
        node.self = node  # a cycle: reference counting alone never frees it
        alive = weakref.ref(node)
        del node
        time.sleep(0.1)
        with collector.paused():  # another batch ends while the long one still runs
            pass
        assert alive() is None
        assert not gc.isenabled()  # the long batch still holds the pause
    finally:
        release.set()
        thread.join(5)
    assert gc.isenabled()
