"""Run feedback_inference with Airflow's real dag.test() against the real feedback database, and answer
its review tasks through Airflow's real REST API (in-process, from a helper thread).

Under dag.test() a review task waits until someone answers it, so every test starts a `Reviewer` thread:
it answers what it is told to, and answers anything else with "Skip" so a broken run can never hang the
suite (the pytest-timeout marks are the last line of defence).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import quote

import pytest

from feedback_loop.inference import review
from feedback_loop.inference import scoring as inference
from feedback_loop.registry import versions as registry

pytestmark = pytest.mark.dags

DAG_ID = "feedback_inference"
# The query the Required Actions page sends (read from the bundled UI): no map-index filter.
PENDING = {"response_received": "false", "state": ["deferred", "awaiting_input"]}


def api_client(as_user: str | None = None):
    """Airflow's real core API app, in-process; `as_user` sends that user's token by default (needed when
    the all-admins shortcut is off)."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app(apps="core"))
    if as_user:
        client.headers.update(bearer(as_user))
    return client


def bearer(username: str) -> dict[str, str]:
    """A real JWT for an Airflow user, as POST /auth/token would issue it."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role="admin"))
    return {"Authorization": f"Bearer {token}"}


def hitl_details(client, run_id: str = "~", **query: Any) -> dict[str, Any]:
    response = client.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='~')}/hitlDetails", params=query
    )
    assert response.status_code == 200, response.text
    return response.json()


# decide(detail) -> (username, chosen option, params_input) for a review task
Decision = Callable[[dict[str, Any]], tuple[str, str, dict[str, Any]]]


class Reviewer(threading.Thread):
    """Waits for `expected` pending review tasks, then answers each with PATCH .../hitlDetails."""

    def __init__(
        self,
        expected: int,
        decide: Decision | None = None,
        *,
        timeout_instead: bool = False,
        intruder: str | None = None,
        as_user: str | None = None,
    ):
        super().__init__(daemon=True)
        self.intruder = intruder
        self.as_user = as_user
        self.intruder_responses: list[tuple[int, dict[str, Any]]] = []
        self.expected = expected
        self.decide = decide
        self.timeout_instead = timeout_instead
        self.pending: list[dict[str, Any]] = []
        self.responses: list[tuple[int, dict[str, Any]]] = []
        self.unexpected = 0
        self.deadlines: list[timedelta] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        client = None
        try:
            client = api_client(self.as_user)
            self.pending = self._wait_for_pending(client)
            if self.timeout_instead:
                self._let_them_time_out()
                return
            for detail in self.pending:
                user, option, params = self.decide(detail)
                if self.intruder:
                    self.responses, kept = [], self.responses
                    self._answer(client, detail, self.intruder, option, params)
                    self.intruder_responses += self.responses
                    self.responses = kept
                self._answer(client, detail, user, option, params)
        except BaseException as exc:  # noqa: BLE001 - reported by the test, never swallowed
            self.error = exc
        finally:
            if client is not None:
                self._answer_leftovers(client)

    def _wait_for_pending(self, client, deadline: float = 120) -> list[dict[str, Any]]:
        if not self.expected:
            return []
        end = time.monotonic() + deadline
        while time.monotonic() < end and not self.stop.is_set():
            details = hitl_details(client, **PENDING)["hitl_details"]
            if self.expected and len(details) >= self.expected:
                time.sleep(0.5)  # let any extra (wrong) task show up before we count
                return hitl_details(client, **PENDING)["hitl_details"]
            time.sleep(0.2)
        raise AssertionError(f"expected {self.expected} pending review tasks, saw {len(details)}")

    def _answer(self, client, detail: dict[str, Any], user: str, option: str, params: dict[str, Any]) -> None:
        ti = detail["task_instance"]
        url = (
            f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
            f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
        )
        response = client.patch(
            url, json={"chosen_options": [option], "params_input": params}, headers=bearer(user)
        )
        self.responses.append((response.status_code, response.json()))

    def _let_them_time_out(self) -> None:
        """Move each task's response deadline to now and run the scheduler's real timeout sweep."""
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils import timezone
        from airflow.utils.session import create_session
        from sqlalchemy import update

        ids = [uuid.UUID(d["task_instance"]["id"]) for d in self.pending]
        with create_session() as session:
            self.deadlines = [
                ti.trigger_timeout - timezone.utcnow()
                for ti in session.query(TaskInstance).filter(TaskInstance.id.in_(ids))
            ]
            session.execute(
                update(TaskInstance)
                .where(TaskInstance.id.in_(ids))
                .values(trigger_timeout=timezone.utcnow() - timedelta(seconds=1))
            )
        SchedulerJobRunner(job=Job(), executors=[]).check_awaiting_input_timeouts()

    def _answer_leftovers(self, client) -> None:
        """Anything still waiting (a test that went wrong) is skipped so dag.test() always returns; runs
        until the test's dag.test() has returned (bounded by the pytest-timeout marks)."""
        end = time.monotonic() + 600
        while time.monotonic() < end and not self.stop.is_set():
            for detail in hitl_details(client, **PENDING)["hitl_details"]:
                self.unexpected += 1
                assigned = [u["id"] for u in detail.get("assigned_users") or []]
                self._answer(client, detail, assigned[0] if assigned else "cleanup", review.SKIP, {})
            time.sleep(0.3)


class WebhookRecorder(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    """A local Slack-compatible webhook; the review notifier posts to it."""
    WebhookRecorder.received = []
    server = HTTPServer(("127.0.0.1", 0), WebhookRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("FEEDBACK_LOOP_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
    yield WebhookRecorder
    server.shutdown()


# The params a run leaves to the configuration, sent as None: Airflow resolves a run's conf into the Param
# objects of the DAG its in-process tasks run (Param.resolve sets .value), so an earlier test's
# `confidence_threshold: 1.0` (tests/e2e) would otherwise become this process's default. Both guards
# below keep these tests independent of the order they run in (`make test` runs them before tests/e2e).
CONFIGURED = {"confidence_threshold": None, "review_budget": None}
# A review budget under 20 asks no audit question (audit_share 0.05 of it, rounded down). With the
# configured 20, one prediction of the run, confident or not, is audited as designed; a test that counts
# its low-confidence tasks asks for this budget.
NO_AUDIT = 3


def end_reviews_other_tests_left() -> None:
    """Review tasks of this DAG that an earlier test left waiting in the session's Airflow DB would be
    counted and answered by this test's Reviewer: they are failed first, so a test sees only its own
    run's reviews whatever ran before it."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    waiting = (TaskInstanceState.DEFERRED, TaskInstanceState.AWAITING_INPUT)
    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == DAG_ID, TaskInstance.state.in_(waiting))
            .values(state=TaskInstanceState.FAILED)
        )


def run_dag(dagbag, reviewer: Reviewer, **conf):
    end_reviews_other_tests_left()
    reviewer.start()
    try:
        return dagbag.dags[DAG_ID].test(run_conf={"model_name": "digits", **CONFIGURED, **conf})
    finally:
        reviewer.stop.set()
        reviewer.join(timeout=30)


def enqueue(conn, f0_values: list[float]) -> None:
    rows = [
        ({"f0": f0, "f1": 0.0, "writer_group": "abc"[i % 3], "note": "{{ 7 * 7 }}"}, {})
        for i, f0 in enumerate(f0_values)
    ]
    inference.enqueue_requests(conn, "digits", rows)
    conn.commit()


def expected_confidences(conn, f0_values: list[float]) -> list[float]:
    import pandas as pd

    estimator, _ = registry.load(conn, "digits")
    frame = pd.DataFrame({"f0": f0_values, "f1": [0.0] * len(f0_values)})
    return [float(p.max()) for p in estimator.predict_proba(frame)]


@pytest.fixture
def champion(digits_champion):
    return digits_champion


def asset_events(dag_run) -> list[str]:
    """URIs of the asset events the run emitted (Airflow metadata DB)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = (
            select(AssetModel.uri)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == dag_run.run_id)
        )
        return sorted(session.scalars(query))


def task_states(dag_run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}


MIXED_BATCH = [-3.0, 2.5, 3.0, 0.02, -0.05, 0.1, -0.2, 0.3, -2.8, 0.01]


@pytest.mark.timeout(300)
def test_low_confidence_predictions_are_reviewed_through_the_rest_api(
    airflow_db, dagbag, conn, champion, webhook
):
    confidences = expected_confidences(conn, MIXED_BATCH)
    below = sorted(c for c in confidences if c < 0.8)
    budget = 3
    assert len(below) > budget, "the batch must leave some items queued"
    enqueue(conn, MIXED_BATCH)

    def decide(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        predicted, alternative = detail["options"][0], detail["options"][1]
        map_index = detail["task_instance"]["map_index"]
        if map_index == 0:
            return "alice", predicted, {"corrected_label": None, "comment": None}
        if map_index == 1:
            return "bob", alternative, {"corrected_label": None, "comment": "clearly the other one"}
        return "alice", review.NONE_OF_THESE, {"corrected_label": "c", "comment": "new class"}

    reviewer = Reviewer(expected=budget, decide=decide)
    dag_run = run_dag(dagbag, reviewer, review_budget=budget)
    assert reviewer.error is None, reviewer.error
    assert reviewer.unexpected == 0
    assert dag_run.state == "success"

    # Exactly `budget` mapped review tasks were listed as pending (what Required Actions shows).
    assert sorted(d["task_instance"]["map_index"] for d in reviewer.pending) == [0, 1, 2]
    assert all(d["task_instance"]["task_id"] == "review" for d in reviewer.pending)
    # The body shows the input, inert: application values are neither markdown nor Jinja.
    assert all("| note | \\{\\{ 7 \\* 7 \\}\\} |" in d["body"] for d in reviewer.pending)
    assert all(
        "**Prediction:**" in d["body"] and "**Top alternatives**" in d["body"] for d in reviewer.pending
    )
    assert [status for status, _ in reviewer.responses] == [200, 200, 200]
    states = task_states(dag_run)
    assert sorted(k for k in states if k[0] == "review") == [("review", 0), ("review", 1), ("review", 2)]
    assert states[("no_review", -1)] == "skipped"
    assert states[("close_round", -1)] == "success"
    assert asset_events(dag_run) == ["feedback_loop://feedback", "feedback_loop://predictions"]

    # Every request is scored and every prediction logged with its run, probabilities and slice.
    predictions = conn.execute(
        "SELECT trace_id, confidence, probabilities, slice, model_version, source_run_id FROM predictions"
    ).fetchall()
    assert len(predictions) == len(MIXED_BATCH)
    assert {p["source_run_id"] for p in predictions} == {dag_run.run_id}
    assert {p["model_version"] for p in predictions} == {champion.version}
    assert all(set(p["probabilities"]) == {"a", "b"} and "writer_group" in p["slice"] for p in predictions)
    assert sorted(p["confidence"] for p in predictions) == pytest.approx(sorted(confidences))
    requests = conn.execute("SELECT status, trace_id FROM inference_requests").fetchall()
    assert {r["status"] for r in requests} == {"scored"}
    assert {r["trace_id"] for r in requests} == {p["trace_id"] for p in predictions}

    # The three least confident were reviewed, in order; the others below the threshold stay queued.
    items = conn.execute(
        """
        SELECT ri.id, ri.status, ri.answered_at, ri.hitl_ref, p.confidence, p.output_label
        FROM review_items ri JOIN predictions p USING (trace_id)
        WHERE ri.reason = 'low_confidence' ORDER BY p.confidence, ri.id
        """
    ).fetchall()
    assert len(items) == len(below)
    # alice's "c" is a label the model does not even know: one person against the model is not settled,
    # so someone else is asked next time; bob's pick of the model's own runner-up needs no second opinion.
    follow_ups = conn.execute(
        "SELECT f.label FROM review_items ri JOIN feedback f USING (trace_id) "
        "WHERE ri.reason = 'second_opinion' AND ri.status = 'queued'"
    ).fetchall()
    assert [f["label"] for f in follow_ups] == ["c"]
    assert [i["status"] for i in items] == ["answered"] * budget + ["queued"] * (len(below) - budget)
    assert [i["hitl_ref"]["map_index"] for i in items[:budget]] == [0, 1, 2]
    assert all(i["hitl_ref"]["run_id"] == dag_run.run_id for i in items[:budget])
    assert all(i["answered_at"] is not None for i in items[:budget])

    feedback = conn.execute(
        "SELECT review_item_id, kind, label, user_id, source, comment, latency_seconds FROM feedback "
        "ORDER BY review_item_id"
    ).fetchall()
    by_item = {f["review_item_id"]: f for f in feedback}
    assert len(feedback) == budget
    first, second, third = (by_item[i["id"]] for i in items[:budget])
    assert (first["kind"], first["label"], first["user_id"]) == (
        "thumbs_up",
        items[0]["output_label"],
        "alice",
    )
    other = {"a": "b", "b": "a"}[items[1]["output_label"]]
    assert (second["kind"], second["label"], second["user_id"]) == ("correction", other, "bob")
    assert second["comment"] == "clearly the other one"
    assert (third["kind"], third["label"], third["user_id"], third["comment"]) == (
        "correction",
        "c",
        "alice",
        "new class",
    )
    assert all(f["source"] == "review" and f["latency_seconds"] is not None for f in feedback)
    assert all(f["latency_seconds"] >= 0 for f in feedback)

    # Reviewers were told about each review task, with a link to its Required Actions page.
    texts = sorted(message["text"] for message in webhook.received)
    assert len(texts) == budget
    for map_index, text in enumerate(sorted(texts, key=lambda t: t.split("map_index=")[1])):
        assert text.startswith("Review needed: digits v1")
        assert (
            f"/dags/{DAG_ID}/runs/" in text
            and f"/tasks/review/required_actions?map_index={map_index}" in text
        )

    # The REST API lists the run's mapped review tasks with the reviewers who answered them.
    listed = hitl_details(api_client(), run_id=dag_run.run_id)
    assert listed["total_entries"] == budget
    assert sorted(d["responded_by_user"]["id"] for d in listed["hitl_details"]) == ["alice", "alice", "bob"]


@pytest.mark.timeout(240)
def test_only_the_configured_reviewers_may_answer(airflow_db, dagbag, conn, champion, tmp_path, monkeypatch):
    import yaml

    from ..conftest import ROOT

    settings = yaml.safe_load((ROOT / "config" / "feedback_loop.yaml").read_text(encoding="utf-8"))
    settings["models"][0]["reviewers"] = ["alice"]
    path = tmp_path / "feedback_loop.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(path))
    # Without the all-admins shortcut Airflow checks the responder against the task's assigned users.
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    enqueue(conn, [0.02, 3.0])

    def decide(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        return "alice", detail["options"][0], {"corrected_label": None, "comment": None}

    reviewer = Reviewer(expected=1, decide=decide, intruder="mallory", as_user="admin")
    dag_run = run_dag(dagbag, reviewer, review_budget=NO_AUDIT)
    assert reviewer.error is None, reviewer.error
    assert dag_run.state == "success"
    assert reviewer.pending[0]["assigned_users"] == [{"id": "alice", "name": "alice"}]
    assert [status for status, _ in reviewer.intruder_responses] == [403]
    assert [status for status, _ in reviewer.responses] == [200]
    feedback = conn.execute("SELECT user_id, kind FROM feedback").fetchall()
    assert [(f["user_id"], f["kind"]) for f in feedback] == [("alice", "thumbs_up")]
    assert conn.execute("SELECT assigned_reviewers FROM review_items").fetchone()["assigned_reviewers"] == [
        "alice"
    ]


@pytest.mark.timeout(180)
def test_confident_batch_runs_the_skip_branch_and_creates_no_review_task(airflow_db, dagbag, conn, champion):
    batch = [-3.0, 3.0, 2.8, -2.6]
    assert min(expected_confidences(conn, batch)) >= 0.8
    enqueue(conn, batch)
    reviewer = Reviewer(expected=0)
    dag_run = run_dag(dagbag, reviewer, review_budget=NO_AUDIT)
    assert reviewer.error is None, reviewer.error
    assert reviewer.unexpected == 0
    assert dag_run.state == "success"
    states = task_states(dag_run)
    assert states[("no_review", -1)] == "success"
    assert states[("open_reviews", -1)] == "skipped"
    assert asset_events(dag_run) == ["feedback_loop://predictions"]
    assert all(state == "skipped" for (task_id, _), state in states.items() if task_id == "review")
    assert hitl_details(api_client(), run_id=dag_run.run_id)["total_entries"] == 0
    assert conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"] == len(batch)
    assert conn.execute("SELECT count(*) AS n FROM review_items").fetchone()["n"] == 0


@pytest.mark.timeout(180)
def test_unanswered_review_expires_through_the_scheduler_timeout(airflow_db, dagbag, conn, champion):
    enqueue(conn, [0.02, 3.0])
    reviewer = Reviewer(expected=1, timeout_instead=True)
    dag_run = run_dag(dagbag, reviewer, review_budget=NO_AUDIT)
    assert reviewer.error is None, reviewer.error
    assert reviewer.unexpected == 0
    assert dag_run.state == "success"
    # The task carried the model's review_timeout_minutes (1440 in the example config) as its deadline.
    assert len(reviewer.deadlines) == 1
    assert timedelta(minutes=1430) < reviewer.deadlines[0] <= timedelta(minutes=1440)
    item = conn.execute("SELECT status, answered_at FROM review_items").fetchone()
    assert (item["status"], item["answered_at"]) == ("expired", None)
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 0
    detail = hitl_details(api_client(), run_id=dag_run.run_id)["hitl_details"][0]
    assert detail["chosen_options"] == [review.DEFAULT_OPTION]
    assert detail["responded_by_user"] is None


@pytest.mark.timeout(180)
def test_tampered_champion_fails_the_run_and_logs_nothing(airflow_db, dagbag, conn, champion):
    enqueue(conn, [0.02, 3.0])
    with champion.artifact_path.open("ab") as handle:
        handle.write(b"tampered")
    reviewer = Reviewer(expected=0)
    dag_run = run_dag(dagbag, reviewer, review_budget=NO_AUDIT)
    assert reviewer.unexpected == 0
    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states[("score_requests", -1)] == "failed"
    score_ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "score_requests")
    assert score_ti.try_number == 1, "an integrity failure must not be retried"
    assert conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"] == 0
    assert {r["status"] for r in conn.execute("SELECT status FROM inference_requests").fetchall()} == {
        "pending"
    }


@pytest.mark.timeout(400)
def test_mapped_review_tasks_show_on_airflows_required_actions_page(
    airflow_db, dagbag, conn, champion, tmp_path
):
    """What a reviewer sees: Airflow's own Required Actions page (the React UI, served by the real API app
    and rendered by headless Chromium) lists every waiting mapped review task by its subject. The page is
    kept as .local/test-artifacts/required-actions.png for people to look at."""
    from ..conftest import ROOT
    from ..support.browser import airflow_api_server, chromium, chromium_binary, png_size

    binary = chromium_binary()
    enqueue(conn, MIXED_BATCH)
    seen: dict[str, Any] = {}

    def decide(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        if "dom" not in seen:  # the first answer waits until the page has been looked at
            seen["subjects"] = sorted(d["subject"] for d in reviewer.pending)
            with airflow_api_server() as url:
                page = f"{url}/required_actions?response_received=false"
                # A single-page app renders after its own API calls: a busy machine gets more virtual time.
                for budget_ms in (20_000, 40_000, 80_000):
                    dom = chromium(
                        binary,
                        tmp_path / f"dom-{budget_ms}",
                        f"--virtual-time-budget={budget_ms}",
                        "--dump-dom",
                        page,
                    ).stdout
                    if all(subject in dom for subject in seen["subjects"]):
                        break
                seen["dom"] = dom
                shot = ROOT / ".local" / "test-artifacts" / "required-actions.png"
                shot.parent.mkdir(parents=True, exist_ok=True)
                shot.unlink(missing_ok=True)
                chromium(
                    binary,
                    tmp_path / "shot",
                    f"--virtual-time-budget={budget_ms}",
                    "--window-size=1400,900",
                    f"--screenshot={shot}",
                    page,
                )
                seen["shot"] = shot
        return "alice", detail["options"][0], {"corrected_label": None, "comment": None}

    reviewer = Reviewer(expected=3, decide=decide)
    dag_run = run_dag(dagbag, reviewer, review_budget=3)

    assert reviewer.error is None, reviewer.error
    assert dag_run.state == "success"
    assert sorted(d["task_instance"]["map_index"] for d in reviewer.pending) == [0, 1, 2]
    missing = [s for s in seen["subjects"] if s not in seen["dom"]]
    assert not missing, f"not on the Required Actions page: {missing}; page ends with {seen['dom'][-1500:]}"
    assert len(set(seen["subjects"])) == 3  # three distinct tasks, each listed
    assert png_size(seen["shot"]) == (1400, 900)


@pytest.mark.timeout(400)
def test_a_correction_gets_a_second_opinion_from_someone_else_and_ends_with_one_consensus_label(
    airflow_db, dagbag, conn, champion, tmp_path, monkeypatch
):
    import yaml

    from ..conftest import ROOT

    settings = yaml.safe_load((ROOT / "config" / "feedback_loop.yaml").read_text(encoding="utf-8"))
    settings["models"][0]["reviewers"] = ["alice", "bob"]
    path = tmp_path / "feedback_loop.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(path))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    # A confident prediction (reviewed anyway: threshold 1) that alice corrects: one person against a
    # confident model is not settled, so someone else is asked.
    enqueue(conn, [1.5])

    def correct_by(user: str):
        def decide(detail: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
            predicted, other = detail["options"][0], detail["options"][1]
            assert predicted != other
            return user, other, {"corrected_label": None, "comment": None}

        return decide

    first = Reviewer(expected=1, decide=correct_by("alice"), as_user="admin")
    assert run_dag(dagbag, first, review_budget=1, confidence_threshold=1.0).state == "success"
    assert first.error is None, first.error
    assert first.pending[0]["assigned_users"] == [
        {"id": "alice", "name": "alice"},
        {"id": "bob", "name": "bob"},
    ]
    follow_up = conn.execute(
        "SELECT reason, status, excluded_reviewers FROM review_items WHERE reason = 'second_opinion'"
    ).fetchone()
    assert follow_up == {"reason": "second_opinion", "status": "queued", "excluded_reviewers": ["alice"]}

    # The next run asks the same question of bob only; alice may not answer it again.
    second = Reviewer(expected=1, decide=correct_by("bob"), intruder="alice", as_user="admin")
    assert run_dag(dagbag, second, review_budget=1).state == "success"
    assert second.error is None, second.error
    (task,) = second.pending
    assert task["assigned_users"] == [{"id": "bob", "name": "bob"}]
    assert "alice" not in task["body"], "the reviewer sees nothing of the earlier answers"
    assert [status for status, _ in second.intruder_responses] == [403]
    assert [status for status, _ in second.responses] == [200]

    answers = conn.execute("SELECT user_id, kind, label FROM feedback ORDER BY id").fetchall()
    assert [(a["user_id"], a["kind"]) for a in answers] == [("alice", "correction"), ("bob", "correction")]
    (consensus,) = conn.execute(
        "SELECT label, status, answers, reviewers, probability FROM consensus_labels"
    ).fetchall()
    assert consensus["label"] == answers[0]["label"] == answers[1]["label"]
    assert (consensus["status"], consensus["answers"], sorted(consensus["reviewers"])) == (
        "corroborated",
        2,
        ["alice", "bob"],
    )
    assert consensus["probability"] > 0.5, "two agreeing people outweigh a confident model"
    assert conn.execute("SELECT count(*) AS n FROM review_items WHERE status = 'queued'").fetchone()["n"] == 0
