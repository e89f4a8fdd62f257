"""What a retraining run is asked to do: validated parameters, and which models one trigger retrains."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback_loop.core import schedules
from feedback_loop.core.config import ModelConfig, Settings
from feedback_loop.core.errors import InvalidInputError

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RunParams:
    model_name: str
    min_rating: int
    include_corrections: bool
    window_start: datetime
    window_end: datetime
    dry_run: bool = False
    reason: str = ""
    triggered_by: str = "unknown"
    airflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["window_start"] = self.window_start.isoformat()
        data["window_end"] = self.window_end.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunParams:
        return cls(
            **{
                **data,
                "window_start": datetime.fromisoformat(data["window_start"]),
                "window_end": datetime.fromisoformat(data["window_end"]),
            }
        )


def _when(name: str, value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInputError(
                f"{name}: {value!r} is not an ISO date or timestamp (e.g. 2026-11-01 or 2026-11-01T12:00Z)"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve_params(
    model: ModelConfig,
    *,
    min_rating: int | None = None,
    include_corrections: bool = True,
    window_start: Any = None,
    window_end: Any = None,
    window_days: int | None = None,
    dry_run: bool = False,
    reason: str = "",
    triggered_by: str = "unknown",
    airflow_run_id: str | None = None,
    now: datetime | None = None,
) -> RunParams:
    """Validate trigger parameters; errors name the field. Default window: all feedback up to now."""
    rating = model.min_rating if min_rating is None else min_rating
    if not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidInputError(f"min_rating: must be an integer from 1 to 5, got {rating!r}")
    end = _when("window_end", window_end) or (now or datetime.now(UTC))
    start = _when("window_start", window_start)
    if window_days is not None:
        if start is not None:
            raise InvalidInputError("window_days: give either window_start or window_days, not both")
        if not isinstance(window_days, int) or window_days <= 0:
            raise InvalidInputError(f"window_days: must be a positive number of days, got {window_days!r}")
        start = end - timedelta(days=window_days)
    start = start or EPOCH
    if start >= end:
        raise InvalidInputError(
            f"window_start: {start.isoformat()} is not before window_end {end.isoformat()}"
        )
    return RunParams(
        model_name=model.name,
        min_rating=rating,
        include_corrections=bool(include_corrections),
        window_start=start,
        window_end=end,
        dry_run=bool(dry_run),
        reason=(reason or "").strip(),
        triggered_by=triggered_by,
        airflow_run_id=airflow_run_id,
    )


def plan(
    settings: Settings,
    *,
    run_type: str,
    params: dict[str, Any],
    asset_extras: list[dict[str, Any]] | None = None,
    triggered_by: str,
    airflow_run_id: str | None = None,
    now: datetime | None = None,
    at: datetime | None = None,
) -> list[RunParams]:
    """The runs one trigger asks for (`now`: the end of the default feedback window; `at`: the run's
    scheduled time, which decides the models a scheduled run retrains).

    * manual (trigger form / REST conf): the model and settings in `params`;
    * asset-triggered (`retraining_needed`): the models named in the events' extra (all if none is named),
      with each model's configured settings and the events' reasons;
    * scheduled: every model whose `schedules.retraining` fires at `at`, with its
      configured settings.
    """
    if run_type == "manual":
        model = settings.model(params["model_name"])
        return [
            resolve_params(
                model,
                min_rating=params.get("min_rating"),
                include_corrections=params.get("include_corrections", True),
                window_start=params.get("window_start"),
                window_end=params.get("window_end"),
                window_days=params.get("window_days"),
                dry_run=params.get("dry_run", False),
                reason=params.get("reason") or "manual trigger",
                triggered_by=triggered_by,
                airflow_run_id=airflow_run_id,
                now=now,
            )
        ]
    if run_type == "asset_triggered":
        extras = asset_extras or []
        named = [e["model_name"] for e in extras if isinstance(e, dict) and e.get("model_name")]
        known = {m.name for m in settings.models}
        unknown = sorted(set(named) - known)
        if unknown:
            log.warning("retraining_needed names unconfigured model(s) %s; ignoring them", unknown)
        names = [n for n in dict.fromkeys(named) if n in known] or [m.name for m in settings.models]
        reasons: dict[str, list[str]] = {}
        for extra in extras:
            if isinstance(extra, dict) and extra.get("reason"):
                reasons.setdefault(extra.get("model_name", ""), []).append(str(extra["reason"]))
        return [
            resolve_params(
                settings.model(name),
                reason=("retraining_needed: " + "; ".join(reasons.get(name, []) or ["asset event"]))[:500],
                triggered_by=triggered_by,
                airflow_run_id=airflow_run_id,
                now=now,
            )
            for name in names
        ]
    return [
        resolve_params(
            m,
            reason="scheduled retraining",
            triggered_by=triggered_by,
            airflow_run_id=airflow_run_id,
            now=now,
        )
        for m in schedules.due(settings.models, "retraining", at or now or datetime.now(UTC))
    ]
