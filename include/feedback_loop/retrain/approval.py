"""Human sign-off before promotion (`gate.require_approval`): what the approver reads, what their answer does.

Candidates that passed the gate wait in `awaiting_approval`. The approver sees, per candidate, the
before/after table of every gate check and the data it was trained on; *Approve* promotes them under the
model lock again (a champion that moved meanwhile is refused), anything else leaves them to be rejected
when the run closes.
"""

from __future__ import annotations

from typing import Any

import psycopg

from feedback_loop.retrain import pipeline


def approval_text(outcomes: list[dict[str, Any]]) -> str:
    """Markdown for the approval task: per candidate, the before/after gate table and the data."""
    parts = [
        "Candidates that passed the gate and wait for your sign-off. **Approve** promotes all of them; "
        "**Reject** (or no answer before the timeout) marks them rejected.",
        "",
    ]
    for outcome in outcomes:
        if outcome["status"] != "awaiting_approval":
            continue
        fb = outcome["snapshot"].get("feedback", {})
        parts += [
            f"### {outcome['model_name']}: v{outcome['candidate_version']} vs champion "
            f"v{outcome['champion_version']} (training run #{outcome['run_id']})",
            "",
            outcome["table"],
            "",
            f"Trained on {outcome['snapshot'].get('rows')} rows: {fb.get('rows', 0)} from feedback "
            f"({fb.get('confirmed', 0)} confirmed, {fb.get('corrected', 0)} corrected).",
            "",
        ]
    return "\n".join(parts)


def promoted_by_run(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The champions a retraining run installed without waiting for a human."""
    return [
        {"model_name": o["model_name"], "version": o["candidate_version"], "previous": o["champion_version"]}
        for o in outcomes
        if o["status"] == "promoted"
    ]


def approve_all(conn: psycopg.Connection, outcomes: list[dict[str, Any]], *, approver: str) -> list[dict]:
    """The approver said yes: promote every candidate of the run that waits for approval."""
    promoted = []
    for outcome in outcomes:
        if outcome["status"] == "awaiting_approval":
            event = pipeline.approve(conn, outcome["run_id"], actor=approver)
            promoted.append(
                {
                    "model_name": outcome["model_name"],
                    "version": event.version,
                    "previous": event.previous_version,
                }
            )
    return promoted
