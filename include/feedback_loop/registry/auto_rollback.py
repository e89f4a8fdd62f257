"""Automatic rollback: compare a new champion's first rollups with the version it replaced.

Off unless `gate.auto_rollback_accuracy_drop` is set for the model. The comparison uses accuracy on
labelled feedback (feedback_rollups.accuracy weighted by n_labelled): the first `auto_rollback_intervals`
rollups of the champion after its promotion against the last as many of the previous champion before it,
each side needing `auto_rollback_min_labelled` labels. If accuracy fell by more than the threshold, the
champion goes back to the previous version through registry.rollback (audited in the alias history).

The check holds the model's retraining lock, so no retraining run promotes in between; the decision is
taken on the latest alias event only when it is the promotion being judged, so a rollback already made
(by a person or an earlier check) is never repeated.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from feedback_loop.core import queries
from feedback_loop.core.config import ModelConfig, Settings
from feedback_loop.core.errors import FeedbackLoopError
from feedback_loop.registry import locks
from feedback_loop.registry import versions as registry

log = logging.getLogger(__name__)

ACTOR = "feedback-loop:auto-rollback"


def check(conn: psycopg.Connection, model: ModelConfig, *, url: str | None = None) -> dict[str, Any]:
    """Judge the current champion's promotion; roll back when it regressed. Returns the decision and
    every number it was based on (decision: off | nothing_to_compare | waiting | kept | rolled_back |
    refused: it regressed, but the previous version failed registry.check_servable and the champion stays)."""
    gate = model.gate
    result: dict[str, Any] = {"model_name": model.name, "threshold": gate.auto_rollback_accuracy_drop}
    if gate.auto_rollback_accuracy_drop is None:
        return result | {"decision": "off"}
    with locks.model_lock(model.name, url=url):
        history = registry.alias_history(conn, model.name)
        if not history or history[-1].action != "promote" or history[-1].previous_version is None:
            return result | {"decision": "nothing_to_compare"}
        promotion = history[-1]
        row = conn.execute(
            queries.sql("retraining/post_promotion_rollups"),
            {
                "model_name": model.name,
                "version": promotion.version,
                "previous": promotion.previous_version,
                "since": promotion.created_at,
                "intervals": gate.auto_rollback_intervals,
            },
        ).fetchone()
        result |= {
            "champion": promotion.version,
            "previous": promotion.previous_version,
            "promoted_at": promotion.created_at.isoformat(),
            **{k: (float(v) if v is not None else None) for k, v in row.items()},
        }
        if min(row["labelled_after"], row["labelled_before"]) < gate.auto_rollback_min_labelled:
            return result | {"decision": "waiting"}
        drop = float(row["accuracy_before"]) - float(row["accuracy_after"])
        result["accuracy_drop"] = drop
        if drop <= gate.auto_rollback_accuracy_drop:
            return result | {"decision": "kept"}
        reason = (
            f"automatic rollback: accuracy on labelled feedback fell from {row['accuracy_before']:.3f} "
            f"(v{promotion.previous_version}) to {row['accuracy_after']:.3f} (v{promotion.version}) over "
            f"{row['intervals_after']} rollup(s) after the promotion; threshold {gate.auto_rollback_accuracy_drop}"
        )
        try:
            event = registry.rollback(
                conn, model.name, actor=ACTOR, reason=reason, to_version=promotion.previous_version
            )
        except FeedbackLoopError as exc:  # e.g. the previous version's artifact no longer verifies
            conn.rollback()
            log.error("%s: %s; the rollback was refused: %s", model.name, reason, exc)
            return result | {"decision": "refused", "reason": f"{reason}; refused: {exc}"}
        conn.commit()
        log.warning("%s: %s", model.name, reason)
        return result | {"decision": "rolled_back", "version": event.version, "reason": reason}


def check_all(
    conn: psycopg.Connection, settings: Settings, *, url: str | None = None
) -> list[dict[str, Any]]:
    """`check` every model that enables automatic rollback; one decision per model."""
    return [
        check(conn, model, url=url)
        for model in settings.models
        if model.gate.auto_rollback_accuracy_drop is not None
    ]
