"""Airflow adapter for model_retraining: schedule from the config, what a run was triggered by, and the
text a human approver sees. Light at import (DAG parse time): no pandas, no scikit-learn, no database.
"""

from __future__ import annotations

import logging
from typing import Any

from feedback_loop.core import config

log = logging.getLogger(__name__)


def retraining_cron() -> str | None:
    """The retraining schedule shared by the configured models. One DAG has one schedule: when models
    disagree the first model's wins (logged); a run then retrains every model that has a schedule."""
    crons = [m.schedules.retraining for m in config.load().models if m.schedules.retraining]
    if len(set(crons)) > 1:
        log.warning(
            "models have different retraining schedules %s; the DAG uses %r", sorted(set(crons)), crons[0]
        )
    return crons[0] if crons else None


def schedule() -> Any:
    """Cron (or preset) from the config OR the retraining_needed asset, whichever comes first."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from feedback_loop.adapters.airflow_dags import RETRAINING_NEEDED

    cron = retraining_cron()
    if cron is None:
        return [RETRAINING_NEEDED]
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[RETRAINING_NEEDED]
    )


def run_type(context: dict[str, Any]) -> str:
    value = getattr(context["dag_run"], "run_type", "manual")
    return str(getattr(value, "value", value))


def asset_extras(context: dict[str, Any]) -> list[dict[str, Any]]:
    """The extras of the asset events that triggered this run (empty for other triggers)."""
    events = context.get("triggering_asset_events") or {}
    extras = []
    for asset_events in events.values():
        for event in asset_events:
            extras.append(dict(getattr(event, "extra", None) or {}))
    return extras


def approval_body(outcomes: list[dict[str, Any]]) -> str:
    """Markdown shown in the approval task: per candidate, the before/after gate table and the data."""
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


def responder(result: Any) -> str:
    """Who answered an approval task, for the audit trail."""
    user = (result or {}).get("responded_by_user") if isinstance(result, dict) else None
    if isinstance(user, dict):
        name = user.get("name") or user.get("id")
    else:
        name = user
    return f"airflow:{name}" if name else "airflow:approver"


def auto_rollback_schedule() -> list | None:
    """model_rollback also runs on new rollups, but only when some model enables automatic rollback."""
    from feedback_loop.adapters.airflow_dags import ROLLUPS

    enabled = any(m.gate.auto_rollback_accuracy_drop is not None for m in config.load().models)
    return [ROLLUPS] if enabled else None
