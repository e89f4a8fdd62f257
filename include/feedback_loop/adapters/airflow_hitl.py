"""Airflow adapter for human review: the HITL operator that records its own answer, and the notifier.

Review content and the meaning of answers live in feedback_loop.inference.review (plain Python); this module only
moves them in and out of the standard provider's human-in-the-loop operator. It is imported by the DAG
file at parse time, so it stays light (no pandas, no psycopg at module level).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseNotifier, Param

from feedback_loop.inference import review_form

if TYPE_CHECKING:
    # Both import the pydantic config models (~100 ms per DAG parse); the operator needs them at run time.
    from feedback_loop.core.config import ModelConfig
    from feedback_loop.inference import review

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://localhost:8080"


def review_params() -> dict[str, Param]:
    """The form fields every review task shows: corrected label and comment (both optional)."""
    return {name: Param(**spec) for name, spec in review_form.review_params_schema().items()}


def assigned_users(model: ModelConfig) -> list[dict[str, str]] | None:
    """Airflow HITL users from the configured reviewer names; None lets anyone with access answer.

    Airflow matches assignments on the auth manager's user id; with the simple auth manager that is the
    user name the config lists, and the FAB auth manager the package runs matches the user name too
    (adapters.airflow_fab_manager).
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

    An accepted answer is recorded exactly once, whatever its shape or timing:
    - it is recorded in the task that received it, as soon as it arrives: an answer is never lost because
      another review of the same run failed, and a retry finds the item closed and stores nothing twice;
    - any subset of the form's fields is an answer (Airflow's own check wants all of them or none, and
      failed the task after answering 200), and values Airflow accepted unchecked are made usable
      (review.usable) rather than failing the task;
    - a task that (re)starts first looks for an answer already recorded in PostgreSQL, where both doors
      record on arrival: the feedback API's answer route, and Airflow's own `PATCH .../hitlDetails`
      (adapters.airflow_reviews.RecordReviewAnswers). It finishes with that answer instead of asking
      again, before Airflow's own code would wipe a stored response by asking again (PR #53824);
    - an answer recorded while the task was starting is picked up just before the task would park.
    A response timeout resolves to the defaults with no responder, which closes the item as `expired`
    without feedback.
    """

    # Subject and body embed application inputs: they must never be rendered as Jinja templates.
    template_fields = ()

    def __init__(self, *, review_item_id: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.review_item_id = review_item_id

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import TaskAwaitingInput

        recorded = self._recorded()
        if recorded is not None:
            log.info("review item %s was already answered; finishing with that answer", self.review_item_id)
            return self._result(recorded)
        try:
            return super().execute(context)
        except TaskAwaitingInput:
            # The request is written; an answer recorded meanwhile (the feedback API's answer route while
            # this task was starting) finishes the task now instead of parking it.
            recorded = self._recorded()
            if recorded is None:
                raise
            log.info("review item %s was answered while its task started; not waiting", self.review_item_id)
            return self._result(recorded)

    def validate_params_input(self, params_input: Mapping[str, Any]) -> None:
        """Any subset of the form's fields is an answer; unknown fields are dropped when it is recorded.
        (The provider's check refuses a subset, after Airflow's REST API has already answered 200.)"""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from feedback_loop.adapters import airflow_users
        from feedback_loop.inference import review

        result = super().execute_complete(context, event)
        return self._record(
            review.Answer(
                chosen_options=list(result["chosen_options"] or []),
                params_input=dict(result["params_input"] or {}),
                responded_at=result["responded_at"],
                responded_by=airflow_users.reviewer(result["responded_by_user"]),
            )
        )

    def _recorded(self) -> Any:
        from feedback_loop.core import db
        from feedback_loop.inference import reviews

        with db.connect() as conn:
            return reviews.recorded_answer(conn, int(self.review_item_id))

    def _record(self, answer: review.Answer) -> dict[str, Any]:
        from feedback_loop.core import db
        from feedback_loop.inference import reviews

        with db.connect() as conn:
            reviews.record_answer(conn, int(self.review_item_id), answer)
            recorded = reviews.recorded_answer(conn, int(self.review_item_id))
        return self._result(recorded)

    def _result(self, recorded: Any) -> dict[str, Any]:
        """The task's return value (XCom): the answer the item was closed with, whoever recorded it."""
        given = recorded.answer or {}
        return {
            "review_item_id": int(self.review_item_id),
            "status": recorded.status,
            "chosen_options": given.get("chosen_options"),
            "responded_by": given.get("responded_by"),
            "via": given.get("via"),
            "feedback_kind": recorded.feedback_kind,
            "label": recorded.label,
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
