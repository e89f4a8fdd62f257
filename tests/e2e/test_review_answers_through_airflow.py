"""Review answers through real Airflow processes (api-server, scheduler, dag-processor, triggerer started by
feedback_loop.lab.stack): 80 review tasks in one feedback_inference run, 40 answered through Airflow's own
`PATCH .../hitlDetails` and 40 through the feedback API's answer route, each 0, 0.5, 1, 2 or 10 s after
its task parked, a quarter with only a comment, a quarter with only a corrected label. Every answer is
recorded exactly once and no review is asked twice.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

import pytest
import requests

from feedback_loop.core import config
from feedback_loop.inference import review, reviews, scoring
from feedback_loop.lab.airflow_rest import AirflowClient
from feedback_loop.retrain import baseline, datasets

from ..support.helpers import running_stack

pytestmark = pytest.mark.e2e

DAG_ID = "feedback_inference"
TASKS = 80
DELAYS = (0.0, 0.5, 1.0, 2.0, 10.0)


@pytest.fixture
def airflow(db_url):
    with running_stack(db_url) as state:
        yield state


def shape(index: int, detail: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """A quarter only a comment, a quarter only a corrected label, the rest an option alone."""
    predicted = detail["options"][0]
    if index % 4 == 0:
        return [predicted], {"comment": f"answer {index}: only a comment"}
    if index % 4 == 1:
        return [review.NONE_OF_THESE], {"corrected_label": "7"}
    return [detail["options"][index % 2]], {}


class Answerer:
    """Answers each review task once, DELAYS[k] seconds after it was first seen parked, alternately through
    Airflow's PATCH and the feedback API's answer route; notes any task seen waiting after its answer."""

    def __init__(self, conn, admin: AirflowClient, reviewer: AirflowClient, api_url: str) -> None:
        self.conn, self.admin, self.reviewer, self.api_url = conn, admin, reviewer, api_url
        self.seen: dict[str, int] = {}  # task key -> index in order of parking
        self.due: list[tuple[float, str]] = []
        self.details: dict[str, dict[str, Any]] = {}
        self.answered: dict[str, float] = {}
        self.statuses: list[tuple[str, int]] = []
        self.asked_again: list[str] = []

    @staticmethod
    def key(detail: dict[str, Any]) -> str:
        ti = detail["task_instance"]
        return f"{ti['dag_run_id']}/{ti['map_index']}"

    def poll(self, run_id: str) -> None:
        now = time.monotonic()
        for detail in self.admin.pending_reviews(DAG_ID, run_id):
            key = self.key(detail)
            if key in self.answered and now - self.answered[key] > 15:
                self.asked_again.append(key)  # still (or again) waiting long after its answer
            if key not in self.seen:
                index = len(self.seen)
                self.seen[key] = index
                self.details[key] = detail
                heapq.heappush(self.due, (now + DELAYS[index % len(DELAYS)], key))
        while self.due and self.due[0][0] <= time.monotonic():
            _, key = heapq.heappop(self.due)
            self.answer(key)

    def answer(self, key: str) -> None:
        detail, index = self.details[key], self.seen[key]
        chosen, params = shape(index, detail)
        ti = detail["task_instance"]
        if index % 2 == 0:
            door = "airflow"
            response = requests.patch(
                f"{self.api_url}/api/v2/dags/{DAG_ID}/dagRuns/{requests.utils.quote(ti['dag_run_id'], safe='')}"
                f"/taskInstances/{ti['task_id']}/{ti['map_index']}/hitlDetails",
                json={"chosen_options": chosen, "params_input": params},
                headers={"Authorization": f"Bearer {self.reviewer.token()}"},
                timeout=30,
            )
        else:
            door = "api"
            item = reviews.item_of_task(self.conn, DAG_ID, ti["dag_run_id"], ti["task_id"], ti["map_index"])
            self.conn.commit()
            response = requests.post(
                f"{self.api_url}/feedback-api/reviews/{item}/answer",
                json={"chosen_options": chosen, "params_input": params},
                headers={"Authorization": f"Bearer {self.reviewer.token()}"},
                timeout=30,
            )
        self.statuses.append((door, response.status_code))
        self.answered[key] = time.monotonic()


@pytest.mark.timeout(1500)
def test_eighty_answers_of_every_shape_and_timing_are_recorded_once(conn, airflow):
    model = config.load().model("digits")
    baseline.train_and_register(conn, model, created_by="test", promote=True, reason="e2e v1")
    rows = datasets.digits().sample(n=TASKS + 20, random_state=3)
    features = [c for c in rows.columns if c.startswith("pixel_")]
    scoring.enqueue_requests(
        conn, "digits", [({c: float(r[c]) for c in features}, {}) for r in rows.to_dict(orient="records")]
    )
    conn.commit()
    passwords = airflow.passwords
    admin = AirflowClient(airflow.api_url, "admin", passwords["admin"])
    reviewer = AirflowClient(airflow.api_url, "reviewer", passwords["reviewer"])
    admin.wait_for_dags([DAG_ID], timeout=180)
    admin.unpause(DAG_ID)
    run_id = admin.trigger(
        DAG_ID,
        {"model_name": "digits", "confidence_threshold": 1.0, "review_budget": TASKS, "batch_size": 200},
    )
    answerer = Answerer(conn, admin, reviewer, airflow.api_url)
    state = admin.wait_for_run(DAG_ID, run_id, timeout=1200, on_wait=lambda: answerer.poll(run_id))

    assert state == "success"
    assert len(answerer.seen) == TASKS
    assert sorted(set(answerer.statuses)) == [("airflow", 200), ("api", 201)], answerer.statuses
    assert len(answerer.statuses) == TASKS
    assert answerer.asked_again == [], "a review was asked again after its answer"
    recorded = conn.execute(
        "SELECT ri.answer ->> 'via' AS via, count(*) AS items, count(DISTINCT f.id) AS feedback "
        "FROM review_items ri LEFT JOIN feedback f ON f.review_item_id = ri.id "
        "WHERE ri.hitl_ref ->> 'run_id' = %s GROUP BY 1 ORDER BY 1",
        (run_id,),
    ).fetchall()
    assert [(r["via"], r["items"], r["feedback"]) for r in recorded] == [("airflow", 40, 40), ("api", 40, 40)]
    statuses = conn.execute(
        "SELECT status, count(*) AS n FROM review_items WHERE hitl_ref ->> 'run_id' = %s GROUP BY 1",
        (run_id,),
    ).fetchall()
    assert [(r["status"], r["n"]) for r in statuses] == [("answered", TASKS)]
    # Each answer became exactly one feedback row, with the fields it was given.
    kinds = conn.execute(
        "SELECT f.kind, f.label, f.comment FROM feedback f JOIN review_items ri ON ri.id = f.review_item_id "
        "WHERE ri.hitl_ref ->> 'run_id' = %s",
        (run_id,),
    ).fetchall()
    assert len(kinds) == TASKS
    assert sum(1 for k in kinds if (k["comment"] or "").endswith("only a comment")) == TASKS // 4
    assert sum(1 for k in kinds if k["label"] == "7" and k["comment"] is None) >= TASKS // 4
    pending = admin.pending_reviews(DAG_ID, run_id)
    assert pending == []
