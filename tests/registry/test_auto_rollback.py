"""Automatic rollback when the first rollups after a promotion show a regression (off by default)."""

from __future__ import annotations

import pytest

from feedback_loop.registry import auto_rollback as post_promotion
from feedback_loop.registry import versions as registry

from ..support.retraining import champion_v1, digits_model

pytestmark = pytest.mark.integration


def rollup(conn, version: int, start_hours: float, accuracy: float, labelled: int) -> None:
    conn.execute(
        """
        INSERT INTO feedback_rollups (model_name, model_version, interval_start, interval_end, accuracy, n_labelled)
        VALUES ('digits', %s, now() + make_interval(secs => %s), now() + make_interval(secs => %s), %s, %s)
        """,
        (version, start_hours * 3600, (start_hours + 1) * 3600, accuracy, labelled),
    )
    conn.commit()


@pytest.fixture
def promoted_v2(conn):
    model = digits_model(auto_rollback_accuracy_drop=0.1, auto_rollback_min_labelled=30)
    champion_v1(conn, model)
    champion_v1(conn, model)  # v2 replaces v1 as champion
    assert registry.champion(conn, "digits").version == 2
    return model


def test_regression_after_promotion_rolls_back_once_with_the_numbers(conn, db_url, promoted_v2):
    rollup(conn, 1, -3, 0.92, 40)
    rollup(conn, 1, -2, 0.90, 60)
    rollup(conn, 2, -0.5, 0.70, 50)  # the interval in which v2 was promoted counts as "after"

    result = post_promotion.check(conn, promoted_v2, url=db_url)

    assert result["decision"] == "rolled_back" and result["version"] == 1
    assert result["accuracy_before"] == pytest.approx((0.92 * 40 + 0.90 * 60) / 100)
    assert result["accuracy_after"] == pytest.approx(0.70) and result["labelled_after"] == 50
    last = registry.alias_history(conn, "digits")[-1]
    assert (last.action, last.version, last.previous_version, last.actor) == (
        "rollback",
        1,
        2,
        post_promotion.ACTOR,
    )
    assert "0.908" in last.reason and "0.700" in last.reason
    assert post_promotion.check(conn, promoted_v2, url=db_url)["decision"] == "nothing_to_compare"
    assert len(registry.alias_history(conn, "digits")) == 3


def test_small_drop_or_too_few_labels_keeps_the_champion(conn, db_url, promoted_v2):
    rollup(conn, 1, -2, 0.90, 60)
    rollup(conn, 2, 0, 0.60, 10)
    assert post_promotion.check(conn, promoted_v2, url=db_url)["decision"] == "waiting"
    rollup(conn, 2, 1, 0.90, 90)  # (0.6 * 10 + 0.9 * 90) / 100 = 0.87: a drop of 0.03
    result = post_promotion.check(conn, promoted_v2, url=db_url)
    assert result["decision"] == "kept" and result["accuracy_drop"] == pytest.approx(0.03)
    assert registry.champion(conn, "digits").version == 2


def test_off_by_default(conn, db_url):
    model = digits_model()
    champion_v1(conn, model)
    champion_v1(conn, model)
    rollup(conn, 1, -2, 0.90, 60)
    rollup(conn, 2, 0, 0.10, 60)
    assert post_promotion.check(conn, model, url=db_url)["decision"] == "off"
    assert registry.champion(conn, "digits").version == 2


def test_a_rollback_to_a_tampered_version_is_refused_and_reported(conn, db_url, promoted_v2):
    from ..support.artifacts import flip_byte

    rollup(conn, 1, -2, 0.90, 60)
    rollup(conn, 2, 0, 0.50, 60)
    flip_byte(registry.get_version(conn, "digits", 1).artifact_path)

    result = post_promotion.check(conn, promoted_v2, url=db_url)

    assert result["decision"] == "refused"
    assert "digits v1: artifact checksum mismatch" in result["reason"]
    assert registry.current_version(conn, "digits") == 2
    assert [e.action for e in registry.alias_history(conn, "digits")] == ["promote", "promote"]
