"""Airflow adapter for human review: the HITL operator that records its own answer, and the notifier.

Review content and the meaning of answers live in feedback_loop.inference.review (plain Python); this module only
moves them in and out of the standard provider's human-in-the-loop operator. It is imported by the DAG
file at parse time, so it stays light (no pandas, no psycopg at module level).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseNotifier, Param

from feedback_loop.core.config import ModelConfig
from feedback_loop.inference import review

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://localhost:8080"


def review_params() -> dict[str, Param]:
    """The form fields every review task shows: corrected label and comment (both optional)."""
    return {name: Param(**spec) for name, spec in review.review_params_schema().items()}


def assigned_users(model: ModelConfig) -> list[dict[str, str]] | None:
    """Airflow HITL users from the configured reviewer names; None lets anyone with access answer.

    Airflow matches assignments on the auth manager's user id; with the simple auth manager (and most
    others) that is the user name the config lists.
    """
    return [{"id": name, "name": name} for name in model.reviewers] or None


def review_task_kwargs(model: ModelConfig, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-task keyword arguments for ReviewOperator.partial(...).expand_kwargs(...). A second opinion or
    a gold question is assigned only to the reviewers who have not answered its trace yet."""
    timeout = timedelta(minutes=model.review_timeout_minutes)
    kwargs = []
    for task in tasks:
        content = {k: v for k, v in task.items() if k not in ("reviewers", "reason")}
        users = [{"id": name, "name": name} for name in task.get("reviewers") or []] or assigned_users(model)
        kwargs.append({**content, "response_timeout": timeout, "assigned_users": users})
    return kwargs


class ReviewOperator(HITLOperator):
    """A review task: asks a human about one prediction, then records the answer as feedback.

    Recording happens in the task that received the answer, as soon as it arrives: an answer is never
    lost because another review of the same run failed, and a retry finds the item closed and stores
    nothing twice. A response timeout resolves to the defaults with no responder, which closes the item
    as `expired` without feedback.
    """

    # Subject and body embed application inputs: they must never be rendered as Jinja templates.
    template_fields = ()

    def __init__(self, *, review_item_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.review_item_id = review_item_id

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        result = super().execute_complete(context, event)
        from feedback_loop.core import db
        from feedback_loop.inference import reviews

        answer = review.Answer(
            chosen_options=list(result["chosen_options"]),
            params_input=dict(result["params_input"] or {}),
            responded_at=result["responded_at"],
            responded_by=result["responded_by_user"],
        )
        with db.connect() as conn:
            outcome = reviews.record_answer(conn, int(self.review_item_id), answer)
        feedback = outcome.feedback
        return {
            "review_item_id": int(self.review_item_id),
            "status": outcome.status,
            "chosen_options": answer.chosen_options,
            "responded_by": answer.responded_by,
            "feedback_kind": feedback.kind if feedback else None,
            "label": feedback.label if feedback else None,
        }


class ReviewNotifier(BaseNotifier):
    """Tells reviewers a review task is waiting: a webhook message with the link to the task.

    Goes through feedback_loop.core.notify (outbox table, timeout, retries), so a dead webhook never fails
    or delays the review task; undelivered messages stay in `notifications` for retry.
    """

    def __init__(self, base_url: str | None = None) -> None:
        super().__init__()
        self.base_url = base_url

    def _link(self, context: Any) -> str | None:
        from airflow.sdk import conf

        base_url = self.base_url or conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL
        try:
            return HITLOperator.generate_link_to_ui_from_context(context=context, base_url=base_url)
        except ValueError as exc:
            log.warning("no link to the review task: %s", exc)
            return None

    def notify(self, context: Any) -> None:
        try:
            from feedback_loop.core import config, db, notify

            task = context["task"]
            link = self._link(context)
            fields = {
                "review item": getattr(task, "review_item_id", None),
                "run": context["run_id"],
                "link": link,
            }
            text = f"Review needed: {task.subject}" + (f" <{link}|open the review>" if link else "")
            with db.connect() as conn:
                delivery = notify.notify(conn, "review_opened", text, config.load().notify, fields)
            log.info("reviewers notified about %s (%s)", task.subject, delivery.status)
        except Exception as exc:  # noqa: BLE001 - a notification problem must never block a review
            log.warning("could not notify reviewers: %s", exc)
