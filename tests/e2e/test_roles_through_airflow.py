"""The package's roles under the FAB auth manager, through real Airflow processes (`feedback_loop.lab.stack`:
api-server, scheduler, dag-processor, triggerer, with the logins `make up` creates): who may answer
reviews, trigger, clear, approve, write feedback and see the dashboard, and that a refused request stores
nothing. Review tasks are assigned by user name to two FAB reviewer accounts; a third reviewer account,
not assigned, is refused by Airflow and by the feedback API alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml

from feedback_loop.core import config
from feedback_loop.inference import reviews, scoring
from feedback_loop.lab import stack
from feedback_loop.lab.airflow_rest import AirflowClient
from feedback_loop.retrain import baseline, datasets

from ..conftest import ROOT
from ..support.api import api_server
from ..support.helpers import running_stack

pytestmark = pytest.mark.e2e

REVIEW_DAG = "feedback_inference"
ONCALL_DAGS = {
    "model_rollback": {"model_name": "digits", "reason": "e2e: roles"},
    "model_retraining": {"model_name": "digits", "reason": "e2e: roles", "dry_run": True},
    "eval_case_review": {"model_name": "digits", "reason": "e2e: roles", "case_ids": [1]},
}
ASSIGNED = ["reviewer", "reviewer2"]  # the config's `reviewers:` for digits; reviewer3 is not among them


@pytest.fixture
def airflow(db_url, tmp_path, monkeypatch):
    settings = yaml.safe_load((ROOT / "config" / "feedback_loop.yaml").read_text(encoding="utf-8"))
    for model in settings["models"]:
        if model["name"] == "digits":
            model["reviewers"] = ASSIGNED
    path = tmp_path / "feedback_loop.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv(config.ENV_CONFIG, str(path))
    with running_stack(db_url) as state:
        yield state


def more_reviewers(state: stack.StackState) -> dict[str, str]:
    """Two more FAB accounts of role feedback_reviewer, made the way an operator would."""
    home = Path(state.airflow_home)
    env = stack.airflow_env(home, int(state.api_url.rsplit(":", 1)[1]), state.feedback_db_url)
    passwords = home / "more_reviewers.json"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("feedback-loop")), "roles", "sync", "--json"]
        + ["--user", "reviewer2:feedback_reviewer", "--user", "reviewer3:feedback_reviewer"]
        + ["--passwords-file", str(passwords)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["users"] == {
        "reviewer2": {"role": "feedback_reviewer", "action": "created"},
        "reviewer3": {"role": "feedback_reviewer", "action": "created"},
    }
    assert set(report["roles"]) == {"feedback_reviewer", "feedback_oncall", "feedback_app", "feedback_viewer"}
    return json.loads(passwords.read_text())


def counts(conn) -> tuple[int, int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM feedback) AS f, (SELECT count(*) FROM inference_requests) AS r, "
        "(SELECT count(*) FROM review_items WHERE status = 'answered') AS a"
    ).fetchone()
    conn.commit()
    return row["f"], row["r"], row["a"]


def call(client: AirflowClient, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{client.base_url}{path}",
        headers={"Authorization": f"Bearer {client.token()}"},
        timeout=30,
        **kwargs,
    )


def hitl_path(detail: dict) -> str:
    ti = detail["task_instance"]
    return (
        f"/api/v2/dags/{REVIEW_DAG}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
        f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
    )


@pytest.mark.timeout(1200)
def test_each_role_may_do_its_part_and_nothing_else(conn, airflow):
    passwords = {**airflow.passwords, **more_reviewers(airflow)}
    assert set(stack.USERS) <= set(passwords)
    login = {name: AirflowClient(airflow.api_url, name, password) for name, password in passwords.items()}
    admin, reviewer, oncall, app, viewer = (
        login[n] for n in ("admin", "reviewer", "oncall", "app", "viewer")
    )

    model = config.load().model("digits")
    baseline.train_and_register(conn, model, created_by="test", promote=True, reason="e2e roles v1")
    rows = datasets.digits().sample(n=12, random_state=5)
    features = [c for c in rows.columns if c.startswith("pixel_")]
    scoring.enqueue_requests(
        conn, "digits", [({c: float(r[c]) for c in features}, {}) for r in rows.to_dict(orient="records")]
    )
    conn.commit()
    admin.wait_for_dags([REVIEW_DAG, *ONCALL_DAGS], timeout=240)
    # The on-call DAGs stay paused: a triggered run is created (what the roles decide) and never started.
    for dag_id in ONCALL_DAGS:
        admin.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": True})
    admin.unpause(REVIEW_DAG)
    run_id = admin.trigger(
        REVIEW_DAG,
        {"model_name": "digits", "confidence_threshold": 1.0, "review_budget": 3, "batch_size": 12},
    )
    details: list[dict] = []

    def parked() -> None:
        details[:] = admin.pending_reviews(REVIEW_DAG, run_id)
        if len(details) >= 3:
            raise StopIteration

    try:
        admin.wait_for_run(REVIEW_DAG, run_id, timeout=600, on_wait=parked)
    except StopIteration:
        pass
    assert len(details) == 3, details
    assert all({u["id"] for u in d["assigned_users"]} == set(ASSIGNED) for d in details), details
    first, second, third = details
    before = counts(conn)

    # reviewer3 (role feedback_reviewer, not assigned) is refused by Airflow and by the feedback API.
    answer = {"chosen_options": [first["options"][0]], "params_input": {}}
    refused = call(login["reviewer3"], "PATCH", hitl_path(first), json=answer)
    assert refused.status_code == 403, refused.text
    item = reviews.item_of_task(conn, REVIEW_DAG, run_id, first["task_instance"]["task_id"], 0)
    conn.commit()
    items = [
        reviews.item_of_task(
            conn, REVIEW_DAG, run_id, d["task_instance"]["task_id"], d["task_instance"]["map_index"]
        )
        for d in details
    ]
    conn.commit()
    refused = call(login["reviewer3"], "POST", f"/feedback-api/reviews/{items[0]}/answer", json=answer)
    assert refused.status_code == 403, refused.text
    # The app and the viewer may not answer reviews at all; the on-call may not answer these (not assigned).
    for who in (app, viewer):
        assert call(who, "PATCH", hitl_path(first), json=answer).status_code == 403
        assert call(who, "POST", f"/feedback-api/reviews/{items[0]}/answer", json=answer).status_code == 403
    assert counts(conn) == before

    # Both assigned FAB accounts answer: through Airflow's own route and through the feedback API.
    accepted = call(reviewer, "PATCH", hitl_path(first), json=answer)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["responded_by"]["name"] == "reviewer"
    through_api = call(
        login["reviewer2"],
        "POST",
        f"/feedback-api/reviews/{items[1]}/answer",
        json={"chosen_options": [second["options"][0]], "params_input": {}},
    )
    assert through_api.status_code == 201, through_api.text
    # Recorded under the user names the config lists (FAB's ids are row numbers), in the answer and in the
    # feedback row, so reliability and second opinions find the reviewer.
    answered_by = conn.execute(
        "SELECT ri.answer -> 'responded_by' ->> 'id' AS who, ri.answer -> 'responded_by' ->> 'account_id' AS account, "
        "f.user_id FROM review_items ri JOIN feedback f ON f.review_item_id = ri.id WHERE ri.id = ANY(%s)",
        (items[:2],),
    ).fetchall()
    conn.commit()
    assert sorted((r["who"], r["user_id"]) for r in answered_by) == [
        ("reviewer", "reviewer"),
        ("reviewer2", "reviewer2"),
    ]
    assert all(r["account"].isdigit() for r in answered_by), answered_by
    assert item == items[0]

    # The reviewer may not operate models, clear or mark tasks, or write feedback.
    for dag_id, conf in ONCALL_DAGS.items():
        response = call(
            reviewer, "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"conf": conf, "logical_date": None}
        )
        assert response.status_code == 403, (dag_id, response.text)
    cleared = call(
        reviewer,
        "POST",
        f"/api/v2/dags/{REVIEW_DAG}/clearTaskInstances",
        json={"dag_run_id": run_id, "dry_run": False, "only_failed": False},
    )
    assert cleared.status_code == 403, cleared.text
    ti = third["task_instance"]
    marked = call(
        reviewer,
        "PATCH",
        f"/api/v2/dags/{REVIEW_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/{ti['task_id']}/{ti['map_index']}",
        json={"new_state": "success"},
    )
    assert marked.status_code == 403, marked.text
    assert call(reviewer, "GET", "/feedback-dashboard/").status_code == 200

    # The on-call triggers each of its DAGs; it may not trigger feedback_inference.
    for dag_id, conf in ONCALL_DAGS.items():
        response = call(
            oncall, "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"conf": conf, "logical_date": None}
        )
        assert response.status_code == 200, (dag_id, response.text)
    response = call(
        oncall, "POST", f"/api/v2/dags/{REVIEW_DAG}/dagRuns", json={"conf": {}, "logical_date": None}
    )
    assert response.status_code == 403, response.text

    # The app writes feedback and nothing else; Airflow's REST API refuses it.
    trace = conn.execute("SELECT trace_id FROM predictions ORDER BY created_at LIMIT 1").fetchone()[
        "trace_id"
    ]
    conn.commit()
    before = counts(conn)
    posted = call(
        app,
        "POST",
        "/feedback-api/feedback",
        json={"trace_id": str(trace), "kind": "thumbs_up", "user_id": "u-1"},
    )
    assert posted.status_code == 201, posted.text
    assert counts(conn)[0] == before[0] + 1
    for method, path, body in (
        ("GET", "/api/v2/dags", None),
        ("POST", f"/api/v2/dags/{REVIEW_DAG}/dagRuns", {"conf": {}, "logical_date": None}),
        ("POST", "/api/v2/assets/events", {"asset_id": 1}),
        ("GET", "/feedback-dashboard/", None),
    ):
        response = call(app, method, path, json=body)
        assert response.status_code == 403, (method, path, response.status_code, response.text)

    # The viewer (and the reviewer, and the on-call) read but may not write through the feedback API.
    before = counts(conn)
    for who in (viewer, reviewer, oncall):
        for path, body in (
            ("/feedback-api/feedback", {"trace_id": str(trace), "kind": "thumbs_down", "user_id": "u-2"}),
            (
                "/feedback-api/requests",
                {"model_name": "digits", "items": [{"request_id": "r1", "input": {}}]},
            ),
        ):
            response = call(who, "POST", path, json=body)
            assert response.status_code == 403, (who.username, path, response.text)
        assert call(who, "GET", f"/feedback-api/predictions/{trace}").status_code == 200
    assert call(viewer, "GET", "/feedback-dashboard/").status_code == 200
    assert call(viewer, "GET", "/api/v2/dags").json()["total_entries"] >= 5
    assert counts(conn) == before

    # The feedback API on its own (`feedback-loop api serve`, the stack's Airflow settings) asks the same
    # FAB auth manager: the app writes, the viewer is refused and nothing of the refusal is stored.
    home = Path(airflow.airflow_home)
    env = stack.airflow_env(home, int(airflow.api_url.rsplit(":", 1)[1]), airflow.feedback_db_url)
    with api_server(env, home / "standalone-api.log") as base:
        body = {"trace_id": str(trace), "kind": "thumbs_up", "user_id": "u-3"}
        before = counts(conn)
        alone = requests.post(
            f"{base}/feedback", json=body, headers={"Authorization": f"Bearer {app.token()}"}
        )
        assert alone.status_code == 201, alone.text
        refused = requests.post(
            f"{base}/feedback", json=body, headers={"Authorization": f"Bearer {viewer.token()}"}
        )
        assert refused.status_code == 403, refused.text
        assert counts(conn)[0] == before[0] + 1

    # Let the run finish: the second reviewer answers the review left open (admin is not assigned: 403).
    last = {"chosen_options": [third["options"][0]], "params_input": {}}
    assert call(admin, "PATCH", hitl_path(third), json=last).status_code == 403
    assert call(login["reviewer2"], "PATCH", hitl_path(third), json=last).status_code == 200
    assert admin.wait_for_run(REVIEW_DAG, run_id, timeout=300) == "success"
