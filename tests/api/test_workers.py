"""The default number of API server processes: one per usable core, at most MAX_WORKERS."""

from __future__ import annotations

import os

import pytest

from feedback_loop.api import workers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 2), (3, 3), (16, workers.MAX_WORKERS)])
def test_one_worker_per_usable_core_up_to_the_cap(monkeypatch, cores, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert workers.default_workers() == expected
