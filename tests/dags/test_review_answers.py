"""An accepted review answer is recorded exactly once, whatever its shape, its timing or its door: Airflow's
own `PATCH .../hitlDetails`, or the feedback API's answer route (which records first, then hands the
answer to the task). Real dag.test() runs, real Airflow API (in-process), real PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedback_loop.adapters import airflow_reviews
from feedback_loop.inference import review

from .test_feedback_inference import (
    CONFIGURED,
    NO_AUDIT,
    PENDING,
    Reviewer,
    api_client,
    bearer,
    end_reviews_other_tests_left,
    enqueue,
    hitl_details,
    run_dag,
)

pytestmark = pytest.mark.dags

LOW = [0.02, -0.05, 0.1, -0.2, 0.3, 0.01]  # near the toy model's boundary: every one is reviewed


@pytest.fixture
def champion(digits_champion):
    return digits_champion


def answers(conn) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT ri.id, ri.status, ri.answer, f.kind, f.label, f.comment, f.user_id "
        "FROM review_items ri LEFT JOIN feedback f ON f.review_item_id = ri.id "
        "WHERE ri.status <> 'queued' ORDER BY ri.id"
    ).fetchall()


def item_of(conn, detail: dict[str, Any]) -> int:
    ti = detail["task_instance"]
    row = conn.execute(
        "SELECT id FROM review_items WHERE hitl_ref ->> 'run_id' = %s AND (hitl_ref ->> 'map_index')::int = %s",
        (ti["dag_run_id"], ti["map_index"]),
    ).fetchone()
    conn.commit()
    return int(row["id"])


@pytest.mark.timeout(300)
def test_any_subset_of_the_form_sent_to_airflows_own_patch_is_recorded_once(
    airflow_db, dagbag, conn, champion
):
    """Before: `params_input` with only a comment or only a corrected label was answered 200 by Airflow,
    then failed the task (`params_input ... does not match params`) and the review was asked again."""
    enqueue(conn, LOW)
    shapes = {
        0: lambda d: (d["options"][0], {"comment": "only a comment"}),
        1: lambda d: (review.NONE_OF_THESE, {"corrected_label": "c"}),
        2: lambda d: (d["options"][1], {}),
        3: lambda d: (d["options"][0], {"comment": "  ", "mood": "an unknown field is dropped"}),
    }

    def decide(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        option, params = shapes[detail["task_instance"]["map_index"]](detail)
        return "alice", option, params

    reviewer = Reviewer(expected=4, decide=decide)
    dag_run = run_dag(dagbag, reviewer, review_budget=4)
    assert reviewer.error is None, reviewer.error
    assert [status for status, _ in reviewer.responses] == [200] * 4
    assert reviewer.unexpected == 0, "a review was asked again"
    assert dag_run.state == "success"
    assert {ti.state for ti in dag_run.get_task_instances() if ti.task_id == "review"} == {"success"}
    assert max(ti.try_number for ti in dag_run.get_task_instances() if ti.task_id == "review") == 1

    rows = answers(conn)
    assert [r["status"] for r in rows] == ["answered"] * 4
    assert {r["answer"]["via"] for r in rows} == {"airflow"}
    by_comment = {r["comment"]: r for r in rows}
    assert by_comment["only a comment"]["kind"] == "thumbs_up"
    assert [(r["kind"], r["label"]) for r in rows if r["kind"] == "correction" and r["label"] == "c"]
    assert sum(r["kind"] is not None for r in rows) == 4, "each answer became exactly one feedback row"
    assert all("mood" not in r["answer"]["params_input"] for r in rows)


class RouteReviewer(threading.Thread):
    """Answers review items through POST /feedback-api/reviews/{id}/answer as soon as they are open, most
    before their task has started or parked; retries each answer once (a replay) and sends a conflicting
    one. Anything still pending in Airflow afterwards is skipped through PATCH so dag.test() never hangs."""

    def __init__(self, conn, expected: int, user: str = "alice"):
        super().__init__(daemon=True)
        self.conn, self.expected, self.user = conn, expected, user
        self.first: list[tuple[int, dict[str, Any]]] = []
        self.replays: list[tuple[int, dict[str, Any]]] = []
        self.conflicts: list[int] = []
        self.leftovers = 0
        self.resumed = 0  # tasks parked with their answer already stored (resume_parked_with_answer)
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def open_items(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT ri.id, p.output_label FROM review_items ri JOIN predictions p USING (trace_id) "
            "WHERE ri.status = 'open' ORDER BY ri.id"
        ).fetchall()
        self.conn.commit()
        return rows

    def run(self) -> None:
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        try:
            with TestClient(create_app(apps="core")) as client:
                seen: set[int] = set()
                end = time.monotonic() + 120
                try:
                    while len(seen) < self.expected and time.monotonic() < end and not self.stop.is_set():
                        for item in self.open_items():
                            if item["id"] not in seen:
                                seen.add(item["id"])
                                self.answer(client, item)
                        time.sleep(0.05)
                except BaseException as exc:  # noqa: BLE001 - reported by the test
                    self.error = exc
                # Always: a task left waiting would keep dag.test() running until the suite's time-out.
                self.skip_leftovers(client)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = self.error or exc

    def answer(self, client, item: dict[str, Any]) -> None:
        url = f"/feedback-api/reviews/{item['id']}/answer"
        body = {"chosen_options": [item["output_label"]], "params_input": {"comment": f"item {item['id']}"}}
        response = client.post(url, json=body, headers=bearer(self.user))
        self.first.append((response.status_code, response.json()))
        again = client.post(url, json=body, headers=bearer(self.user))
        self.replays.append((again.status_code, again.json()))
        other = {"chosen_options": [review.SKIP], "params_input": {}}
        self.conflicts.append(client.post(url, json=other, headers=bearer(self.user)).status_code)

    def resume_parked_with_answer(self) -> None:
        """Resume a task parked although its answer is stored, as Airflow's answer route does.

        The tests' metadata DB is SQLite, which has no row locks: an answer written while its task was
        parking can go unseen both by the answer route (the task was not parked yet) and by the park
        transition (the answer was not there yet). On PostgreSQL both lock the task instance first and
        one of them resumes it. Without this, dag.test() waits for that task forever."""
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        with create_session() as session:
            parked = session.scalars(
                select(TaskInstance).where(TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            ).all()
            for ti in parked:
                detail = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id))
                if detail is not None and detail.response_received:
                    self.resumed += 1
                    handle_event_submit(
                        TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                    )

    def fail_parked(self) -> None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import update

        with create_session() as session:
            failed = session.execute(
                update(TaskInstance)
                .where(TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                .values(state=TaskInstanceState.FAILED)
            ).rowcount
        if failed:
            self.error = self.error or AssertionError(f"{failed} review task(s) still waited after 180 s")

    def skip_leftovers(self, client) -> None:
        # Airflow's own SIGALRM timeout inside dag.test() replaces pytest-timeout's: if tasks still wait
        # after this, they are failed so that dag.test() returns and the test fails with the reason.
        give_up = time.monotonic() + 180
        while not self.stop.is_set():
            if time.monotonic() > give_up:
                self.fail_parked()
            try:
                self.resume_parked_with_answer()
                for detail in hitl_details(client, **PENDING)["hitl_details"]:
                    self.leftovers += 1
                    ti = detail["task_instance"]
                    client.patch(
                        f"/api/v2/dags/feedback_inference/dagRuns/{ti['dag_run_id']}/taskInstances/review/"
                        f"{ti['map_index']}/hitlDetails",
                        json={"chosen_options": [review.SKIP], "params_input": {}},
                        headers=bearer("cleanup"),
                    )
            except Exception as exc:  # noqa: BLE001 - reported by the test; keep unblocking the run
                self.error = self.error or exc
            time.sleep(0.3)


@pytest.mark.timeout(300)
def test_answers_through_the_feedback_api_are_recorded_first_and_finish_their_tasks(
    airflow_db, dagbag, conn, champion
):
    enqueue(conn, LOW)
    reviewer = RouteReviewer(conn, expected=4)
    end_reviews_other_tests_left()
    reviewer.start()
    try:
        dag_run = dagbag.dags["feedback_inference"].test(
            run_conf={"model_name": "digits", **CONFIGURED, "review_budget": 4}
        )
    finally:
        reviewer.stop.set()
        reviewer.join(timeout=30)
    assert reviewer.error is None, reviewer.error
    assert [status for status, _ in reviewer.first] == [201] * 4, reviewer.first
    # Each answer reached its task: handed over to a parked one, or found by the task when it started.
    handed = {body["airflow"] for _, body in reviewer.first}
    assert handed <= {airflow_reviews.RESUMED, airflow_reviews.NOT_WAITING}, handed
    assert [(status, body["replayed"]) for status, body in reviewer.replays] == [(200, True)] * 4
    assert reviewer.conflicts == [409] * 4
    assert reviewer.leftovers == 0, "a review was asked although its answer was recorded"
    assert dag_run.state == "success"
    results = [
        ti.xcom_pull(task_ids="review", map_indexes=ti.map_index) for ti in dag_run.get_task_instances()
    ]
    assert sorted(r["via"] for r in results if r) == ["api"] * 4

    rows = answers(conn)
    assert [(r["status"], r["answer"]["via"], r["kind"], r["user_id"]) for r in rows] == [
        ("answered", "api", "thumbs_up", "alice")
    ] * 4
    # Nothing waits for an answer (what Required Actions lists). A task that found its answer after writing
    # its request leaves that request without a response: Airflow offers tasks no way to write one.
    assert hitl_details(api_client(), run_id=dag_run.run_id, **PENDING)["total_entries"] == 0


@pytest.mark.timeout(300)
def test_the_answer_route_refuses_who_may_not_answer_and_what_is_not_an_answer(
    airflow_db, dagbag, conn, champion, tmp_path, monkeypatch
):
    import yaml
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    from ..conftest import ROOT

    settings = yaml.safe_load((ROOT / "config" / "feedback_loop.yaml").read_text(encoding="utf-8"))
    settings["models"][0]["reviewers"] = ["alice"]
    path = tmp_path / "feedback_loop.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(path))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    enqueue(conn, LOW[:1])
    outcomes: dict[str, Any] = {}

    def probe(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        item = item_of(conn, detail)
        url = f"/feedback-api/reviews/{item}/answer"
        label = detail["options"][0]
        with TestClient(create_app(apps="core")) as client:
            outcomes["no token"] = client.post(url, json={"chosen_options": [label]}).status_code
            outcomes["not assigned"] = client.post(
                url, json={"chosen_options": [label]}, headers=bearer("mallory")
            ).status_code
            wrong = client.post(
                url,
                json={"chosen_options": ["nine"], "params_input": {"corrected_label": 7, "mood": "x"}},
                headers=bearer("alice"),
            )
            outcomes["invalid"] = (wrong.status_code, [p["field"] for p in wrong.json()["detail"]])
            outcomes["unknown item"] = client.post(
                "/feedback-api/reviews/999999/answer",
                json={"chosen_options": [label]},
                headers=bearer("alice"),
            ).status_code
            outcomes["stored before the answer"] = conn.execute(
                "SELECT count(*) AS n FROM feedback"
            ).fetchone()["n"]
            conn.commit()
        return "alice", label, {}

    reviewer = Reviewer(expected=1, decide=probe, as_user="admin")
    dag_run = run_dag(dagbag, reviewer, review_budget=NO_AUDIT)
    assert reviewer.error is None, reviewer.error
    assert dag_run.state == "success"
    assert outcomes["no token"] == 401
    assert outcomes["not assigned"] == 403
    assert outcomes["invalid"] == (
        422,
        ["chosen_options", "params_input.corrected_label", "params_input.mood"],
    )
    assert outcomes["unknown item"] == 404
    assert outcomes["stored before the answer"] == 0, "a refused answer stored something"
    assert [(r["kind"], r["user_id"]) for r in answers(conn)] == [("thumbs_up", "alice")]


@pytest.mark.timeout(300)
def test_an_answer_airflow_accepted_survives_a_review_task_that_runs_again(
    airflow_db, dagbag, conn, champion
):
    """Airflow accepts an answer (200) while the review task is not parked: here it has just failed on a
    late executor event and waits for its retry (apache/airflow#72716). Airflow keeps the answer only on
    the task instance, and its own code wipes it when the retry asks again (PR #53824). Recorded on
    arrival by the plugin's middleware, the answer is found by the retry, which finishes with it."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    enqueue(conn, LOW[:1])
    recorded_before_200: list[int] = []

    def fail_then_answer(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        with create_session() as session:
            session.execute(
                update(TaskInstance)
                .where(TaskInstance.id == uuid.UUID(detail["task_instance"]["id"]))
                # Failed an hour ago, so its retry delay is over and dag.test() runs the retry at once.
                .values(
                    state=TaskInstanceState.UP_FOR_RETRY,
                    end_date=datetime.now(UTC) - timedelta(hours=1),
                    next_method=None,  # a retry starts at execute(), as after any failure
                    next_kwargs=None,
                )
            )
        return "carol", review.NONE_OF_THESE, {"corrected_label": "b"}

    class Watching(Reviewer):
        def _answer(self, client, detail, user, option, params):  # noqa: ANN001 - test helper
            super()._answer(client, detail, user, option, params)
            if user == "carol":
                recorded_before_200.append(len([r for r in answers(conn) if r["status"] == "answered"]))
                conn.commit()

    reviewer = Watching(expected=1, decide=fail_then_answer)
    dag_run = run_dag(dagbag, reviewer, review_budget=NO_AUDIT)
    assert reviewer.error is None, reviewer.error
    assert [status for status, _ in reviewer.responses] == [200]
    assert recorded_before_200 == [1], "the answer must be recorded when Airflow answers 200"
    assert reviewer.unexpected == 0, "the retried review task asked again"
    assert dag_run.state == "success"
    (ti,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == "review"]
    assert ti.try_number == 2 and ti.state == "success"
    rows = answers(conn)
    assert [(r["status"], r["kind"], r["label"], r["user_id"]) for r in rows] == [
        ("answered", "correction", "b", "carol")
    ]
    assert rows[0]["answer"]["via"] == "airflow"
