"""Airflow adapter: the feedback API's review-answer route, answered by Airflow users with Airflow's rules.

Who may answer is Airflow's decision, made by the configured auth manager exactly as for Airflow's own
`PATCH .../hitlDetails`: permission to update the DAG's HITL details, and, when the review is assigned
to named reviewers, `is_authorized_hitl_task`. The answer is recorded in PostgreSQL first
(inference.answers), then handed to the review task through Airflow's own response handler
(`update_hitl_detail` of the core API, called in-process with a metadata-DB session): it validates the
response, stores it on the task instance and resumes a parked task, with the same locking Airflow uses
against a task that is parking at that moment. A task that is not waiting (starting, between tries)
finds the recorded answer itself when it runs (adapters.airflow_hitl.ReviewOperator).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import psycopg
from fastapi.concurrency import run_in_threadpool

from feedback_loop.inference import answers

log = logging.getLogger(__name__)

REVIEW_DAG_ID = "feedback_inference"  # the DAG whose review tasks the answer route answers

# What became of the review task, for the route's `airflow` field.
RESUMED = "answer handed to the review task"
NOT_WAITING = "the review task is not waiting now; it finishes with the recorded answer when it runs"
AIRFLOW_HAD_ONE = "Airflow already held an answer for this task; the recorded answer stands"
NO_TASK = "no review task is linked to this item"


class AirflowReviewDesk:
    """Answers reviews as one authenticated Airflow user."""

    def __init__(self, user: Any) -> None:
        self.user = user

    def responder(self) -> dict[str, str]:
        from feedback_loop.adapters.airflow_users import reviewer

        user_id = self.user.get_id()
        return reviewer({"id": str(user_id), "name": str(self.user.get_name() or user_id)})

    def may_answer(self, dag_id: str, assigned: Sequence[str]) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        manager = get_auth_manager()
        allowed = manager.is_authorized_dag(
            method="PUT",
            access_entity=DagAccessEntity.HITL_DETAIL,
            details=DagDetails(id=dag_id or None),
            user=self.user,
        )
        if allowed and assigned:
            allowed = manager.is_authorized_hitl_task(assigned_users=set(assigned), user=self.user)
        return bool(allowed)

    def answer(
        self, conn: psycopg.Connection, item_id: int, chosen_options: list[str], params_input: dict[str, Any]
    ) -> dict[str, Any]:
        answered = answers.answer(
            conn,
            item_id,
            chosen_options,
            params_input,
            responder=self.responder(),
            may_answer=self.may_answer,
        )
        if answered.replayed:
            handed = "replayed: the answer was handed over when it was first recorded"
        elif not answered.hitl_ref:
            handed = NO_TASK
        else:
            handed = self.hand_over(answered.hitl_ref, chosen_options, params_input)
        log.info(
            "review item %s answered by %s through the feedback API: %s",
            item_id,
            self.responder()["id"],
            handed,
        )
        return {**answered.to_dict(), "airflow": handed}

    def hand_over(self, ref: dict[str, Any], chosen_options: list[str], params_input: dict[str, Any]) -> str:
        """Give the recorded answer to the review task through Airflow's own response handler."""
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.utils.session import create_session
        from fastapi import HTTPException

        payload = UpdateHITLDetailPayload(
            chosen_options=chosen_options,
            params_input={k: v for k, v in params_input.items() if v is not None},
        )
        try:
            with create_session() as session:
                update_hitl_detail(
                    dag_id=ref["dag_id"],
                    dag_run_id=ref["run_id"],
                    task_id=ref["task_id"],
                    update_hitl_detail_payload=payload,
                    user=self.user,
                    session=session,
                    map_index=int(ref.get("map_index", -1)),
                )
        except HTTPException as exc:
            if exc.status_code == 409:
                return AIRFLOW_HAD_ONE
            # 404: no HITL request on the task instance yet (it is starting, or between tries)
            log.info("review task %s not waiting (%s): %s", ref, exc.status_code, exc.detail)
            return NOT_WAITING
        return RESUMED


def review_desk_dependency() -> Callable[..., AirflowReviewDesk]:
    """The FastAPI dependency the feedback API overrides its `review_desk` with: the request's Airflow
    user (401 without a valid token), as a desk."""
    from fastapi import Depends, HTTPException

    from feedback_loop.adapters.airflow_users import known_user_dependency

    # Depends() as a default, not the GetUserDep annotation: annotations are strings in this module and
    # FastAPI resolves them in module globals, where Airflow's names are not imported. known_user: Airflow's
    # get_user, and 403 for a role Airflow does not know (its own checks fail on one with a 500).
    def desk(user: Any = Depends(known_user_dependency())) -> AirflowReviewDesk:  # noqa: B008 - FastAPI's idiom
        found = AirflowReviewDesk(user)
        # Who may not answer this DAG's reviews at all learns nothing about its items.
        if not found.may_answer(REVIEW_DAG_ID, []):
            raise HTTPException(
                403, f"{found.responder()['id']} may not answer the review tasks of {REVIEW_DAG_ID}"
            )
        return found

    return desk


# Airflow's own answer route: PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails
HITL_PATCH = re.compile(
    r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<run_id>[^/]+)/taskInstances/(?P<task_id>[^/]+)/"
    r"(?P<map_index>-?\d+)/hitlDetails$"
)


class RecordReviewAnswers:
    """Root middleware of Airflow's API server: an answer Airflow accepts through its own
    `PATCH .../hitlDetails` for one of our review tasks is recorded in PostgreSQL before the 200 goes
    back, exactly as the feedback API's answer route records first.

    Why: Airflow keeps an accepted answer only on the task instance, and loses it when the resumed task
    fails on a late executor event (apache/airflow#72716) and re-executes, which wipes the stored response
    (PR #53824). Recorded here, the re-executing review task finds it and finishes with it. Every other
    request passes through untouched; a failure to record is logged and never fails Airflow's response (the
    task then records the answer itself when it resumes, as before).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http" or scope.get("method") != "PATCH":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope.get("path", "").encode()
        found = HITL_PATCH.search(raw.decode("latin-1"))
        if found is None:
            await self.app(scope, receive, send)
            return
        ref = {key: unquote(value) for key, value in found.groupdict().items()}
        held: list[dict] = []

        async def hold(message: dict) -> None:
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                start = next((m for m in held if m["type"] == "http.response.start"), None)
                if start is not None and start["status"] == 200:
                    body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
                    await run_in_threadpool(record_accepted_answer, ref, body)
                for kept in held:
                    await send(kept)
                held.clear()

        await self.app(scope, receive, hold)


def record_accepted_answer(ref: dict[str, str], body: bytes) -> None:
    """Record the answer Airflow accepted for the review task `ref`, if the task is one of ours."""
    from feedback_loop.adapters import airflow_users
    from feedback_loop.core import db
    from feedback_loop.inference import review, reviews

    try:
        response = json.loads(body)
        with db.connect() as conn:
            item_id = reviews.item_of_task(
                conn, ref["dag_id"], ref["run_id"], ref["task_id"], int(ref["map_index"])
            )
            if item_id is None:
                return
            answer = review.Answer(
                chosen_options=list(response.get("chosen_options") or []),
                params_input=dict(response.get("params_input") or {}),
                responded_at=datetime.fromisoformat(str(response["responded_at"]).replace("Z", "+00:00")),
                responded_by=airflow_users.reviewer(response.get("responded_by")),
            )
            reviews.record_answer(conn, item_id, answer, via="airflow")
    except Exception:  # noqa: BLE001 - Airflow's answer stands; the review task records it when it resumes
        log.exception("could not record the answer to review task %s on arrival", ref)
