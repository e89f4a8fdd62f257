"""Bearer tokens remembered for a few seconds: never past their expiry, the oldest dropped first."""

from __future__ import annotations

import pytest

from feedback_loop.adapters.airflow_tokens import RecentTokens

pytestmark = pytest.mark.unit


def test_a_user_is_remembered_for_the_bound_and_then_resolved_again():
    recent = RecentTokens(bound=5.0)
    recent.put("t", "alice", now=100.0, expires_at=1000.0)
    assert recent.get("t", 104.9) == "alice"
    assert recent.get("t", 105.0) is None
    assert recent.get("t", 104.0) is None  # forgotten once it was found stale


def test_never_past_the_tokens_own_expiry():
    recent = RecentTokens(bound=5.0)
    recent.put("t", "alice", now=100.0, expires_at=102.0)
    assert recent.get("t", 101.9) == "alice"
    assert recent.get("t", 102.0) is None
    recent.put("old", "bob", now=100.0, expires_at=99.0)
    assert recent.get("old", 100.0) is None


def test_the_least_recently_used_token_goes_first_when_full():
    recent = RecentTokens(bound=5.0, size=2)
    recent.put("a", "alice", now=0.0, expires_at=60.0)
    recent.put("b", "bob", now=0.0, expires_at=60.0)
    assert recent.get("a", 1.0) == "alice"  # a is now the most recently used
    recent.put("c", "carol", now=1.0, expires_at=60.0)
    assert recent.get("b", 1.0) is None
    assert recent.get("a", 1.0) == "alice" and recent.get("c", 1.0) == "carol"
