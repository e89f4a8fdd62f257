"""Group commit without a database: what goes in a group, and what each submitter gets back."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from feedback_loop.api import group_commit
from feedback_loop.api.group_commit import GroupCommit

pytestmark = pytest.mark.unit
WAIT = 10.0  # seconds; only reached when the code under test is broken


class _HeldWrites:
    """A write function that records its groups and holds each write until the test releases it."""

    def __init__(self, fail: Sequence[int] = ()) -> None:
        self.groups: list[list[int]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.fail = set(fail)  # writes (counted from 1) that raise

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        self.started.release()
        assert self.release.acquire(timeout=WAIT)
        if len(self.groups) in self.fail:
            raise RuntimeError(f"write {len(self.groups)} failed")
        return [item * 10 for item in items]


def test_a_lone_item_is_written_at_once_in_a_group_of_its_own():
    groups: list[list[str]] = []

    def write(items: Sequence[str]) -> list[str]:
        groups.append(list(items))
        return [item.upper() for item in items]

    group = GroupCommit(write)
    try:
        assert group.submit("a").result(WAIT) == "A"
        assert group.submit("b").result(WAIT) == "B"
    finally:
        group.close()
    assert groups == [["a"], ["b"]]
    assert (group.groups, group.items) == (2, 2)


def test_items_that_arrive_during_a_write_are_written_together_next_in_arrival_order():
    writes = _HeldWrites()
    group = GroupCommit(writes)
    first = group.submit(1)
    assert writes.started.acquire(timeout=WAIT)  # item 1 is being written
    queued = [group.submit(item) for item in (2, 3, 4)]
    writes.release.release()
    assert first.result(WAIT) == 10
    assert writes.started.acquire(timeout=WAIT)
    writes.release.release()
    assert [future.result(WAIT) for future in queued] == [20, 30, 40]
    group.close()
    assert writes.groups == [[1], [2, 3, 4]]


def test_a_failed_write_reaches_every_submitter_of_its_group_and_the_writer_goes_on():
    writes = _HeldWrites(fail=[2])
    group = GroupCommit(writes)
    first = group.submit(1)
    assert writes.started.acquire(timeout=WAIT)
    failing = [group.submit(2), group.submit(3)]
    for _ in range(3):
        writes.release.release()
    assert first.result(WAIT) == 10
    for future in failing:
        with pytest.raises(RuntimeError, match="write 2 failed"):
            future.result(WAIT)
    assert group.submit(5).result(WAIT) == 50
    group.close()
    assert writes.groups == [[1], [2, 3], [5]]


def test_a_group_holds_at_most_max_group_items_and_close_writes_what_is_queued():
    writes = _HeldWrites()
    group = GroupCommit(writes, max_group=2)
    futures = [group.submit(1)]
    assert writes.started.acquire(timeout=WAIT)
    futures += [group.submit(item) for item in (2, 3, 4, 5, 6)]
    for _ in range(4):  # the held write, then three groups of at most two
        writes.release.release()
    group.close()
    assert writes.groups == [[1], [2, 3], [4, 5], [6]]
    assert [future.result(0) for future in futures] == [10, 20, 30, 40, 50, 60]
    with pytest.raises(RuntimeError, match="closed"):
        group.submit(7)


def test_a_write_that_returns_the_wrong_number_of_outcomes_is_an_error():
    group: GroupCommit[int, int] = GroupCommit(lambda items: [])
    try:
        with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
            group.submit(1).result(WAIT)
    finally:
        group.close()
    with pytest.raises(ValueError, match="max_group"):
        GroupCommit(lambda items: list(items), max_group=0)


def test_an_item_cancelled_while_queued_is_left_out_and_one_being_written_cannot_be_cancelled():
    writes = _HeldWrites()
    group = GroupCommit(writes)
    first = group.submit(1)
    assert writes.started.acquire(timeout=WAIT)
    assert not first.cancel(), "its write has begun: the request waits for it"
    gone, kept = group.submit(2), group.submit(3)
    assert gone.cancel()  # its request went away before the write took it
    writes.release.release()
    assert writes.started.acquire(timeout=WAIT)
    writes.release.release()
    assert (first.result(WAIT), kept.result(WAIT)) == (10, 30)
    group.close()
    assert writes.groups == [[1], [3]]


def test_a_forked_process_starts_a_writer_of_its_own():
    group = GroupCommit(lambda items: [item + 1 for item in items])
    try:
        assert group.submit(1).result(WAIT) == 2
        parents_writer = group._writer
        group_commit._after_fork_in_child()  # what os.fork runs in the child
        assert group._writer is None, "the parent's writer thread does not exist in the child"
        assert group.submit(2).result(WAIT) == 3
        assert group._writer is not parents_writer
    finally:
        group.close()


def test_a_write_that_raises_stop_iteration_reaches_its_submitters_as_an_error():
    def write(items: Sequence[int]) -> list[int]:
        raise StopIteration

    group: GroupCommit[int, int] = GroupCommit(write)
    try:
        with pytest.raises(RuntimeError, match="the group write failed"):
            group.submit(1).result(WAIT)
    finally:
        group.close()
