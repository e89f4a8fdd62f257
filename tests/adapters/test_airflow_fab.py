"""The package's FAB roles, asked of FAB's own authorization code (providers-fab's `FabAuthManager`), with
no database: a user holding exactly one role's permissions, and the questions Airflow's routes ask."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from feedback_loop.adapters import airflow_fab, airflow_users
from feedback_loop.adapters.airflow_fab_manager import FeedbackLoopFabAuthManager
from feedback_loop.core.errors import InvalidInputError

pytestmark = pytest.mark.unit

ONCALL_DAGS = ("model_retraining", "model_rollback", "eval_case_review")
ALL_DAGS = ("feedback_inference", "feedback_aggregation", *ONCALL_DAGS)


@dataclass
class FakeUser:
    """What FAB's checks read of a user: its permissions, id and name."""

    perms: set[tuple[str, str]]
    id: int = 7
    username: str = "someone"

    def get_id(self) -> str:
        return str(self.id)

    def get_name(self) -> str:
        return self.username


def holder(role: str, username: str = "someone") -> FakeUser:
    return FakeUser(set(airflow_fab.ROLE_PERMISSIONS[role]), username=username)


@pytest.fixture(scope="module")
def fab() -> FeedbackLoopFabAuthManager:
    return FeedbackLoopFabAuthManager()


def may(fab, user, method, dag_id, entity=None) -> bool:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    access = getattr(DagAccessEntity, entity) if entity else None
    return fab.is_authorized_dag(
        method=method, user=user, access_entity=access, details=DagDetails(id=dag_id)
    )


def feedback_api(fab, user, method) -> bool:
    return fab.is_authorized_custom_view(
        method=method, resource_name=airflow_fab.FEEDBACK_RESOURCE, user=user
    )


def test_the_reviewer_answers_reviews_of_feedback_inference_and_operates_nothing(fab):
    user = holder("feedback_reviewer")
    assert may(fab, user, "PUT", "feedback_inference", "HITL_DETAIL")  # Airflow's HITL answer
    assert may(fab, user, "GET", "feedback_inference", "TASK_INSTANCE")
    for dag_id in ALL_DAGS:
        assert not may(fab, user, "POST", dag_id, "RUN"), dag_id  # trigger
        assert not may(fab, user, "POST", dag_id, "TASK_INSTANCE"), dag_id  # clear
        assert not may(fab, user, "PUT", dag_id, "TASK_INSTANCE"), dag_id  # mark a task
        assert not may(fab, user, "PUT", dag_id, "RUN"), dag_id  # mark a run
    for dag_id in ONCALL_DAGS:
        assert not may(fab, user, "GET", dag_id), dag_id
        assert not may(fab, user, "PUT", dag_id, "HITL_DETAIL"), dag_id  # no promotion approvals
    # What FAB cannot separate: answering needs edit on the DAG, and edit on the DAG is pausing it.
    assert may(fab, user, "PUT", "feedback_inference")
    assert feedback_api(fab, user, "GET") and not feedback_api(fab, user, "POST")


def test_the_oncall_operates_its_three_dags_and_approves_but_only_reads_the_others(fab):
    user = holder("feedback_oncall")
    for dag_id in ONCALL_DAGS:
        assert may(fab, user, "POST", dag_id, "RUN"), dag_id
        assert may(fab, user, "POST", dag_id, "TASK_INSTANCE"), dag_id
        assert may(fab, user, "PUT", dag_id, "HITL_DETAIL"), dag_id  # the approval task of model_retraining
    for dag_id in ("feedback_inference", "feedback_aggregation"):
        assert may(fab, user, "GET", dag_id, "TASK_LOGS"), dag_id
        assert not may(fab, user, "POST", dag_id, "RUN"), dag_id
        assert not may(fab, user, "POST", dag_id, "TASK_INSTANCE"), dag_id
    assert feedback_api(fab, user, "GET") and not feedback_api(fab, user, "POST")


def test_the_app_writes_feedback_and_nothing_of_airflow(fab):
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    user = holder("feedback_app")
    assert feedback_api(fab, user, "GET") and feedback_api(fab, user, "POST")
    assert not fab.is_authorized_dag(method="GET", user=user)  # no DAG list, hence no dashboard
    for dag_id in ALL_DAGS:
        assert not may(fab, user, "GET", dag_id), dag_id
        assert not may(fab, user, "POST", dag_id, "RUN"), dag_id
    assert not fab.is_authorized_asset(method="POST", user=user)  # asset events could start retraining
    assert not fab.is_authorized_asset(method="GET", user=user)
    assert not fab.is_authorized_view(access_view=AccessView.PLUGINS, user=user)


def test_the_viewer_reads_the_package_and_changes_nothing(fab):
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView

    user = holder("feedback_viewer")
    assert fab.is_authorized_view(access_view=AccessView.WEBSITE, user=user)
    assert fab.is_authorized_dag(method="GET", user=user)
    for dag_id in ALL_DAGS:
        assert may(fab, user, "GET", dag_id, "RUN"), dag_id
        assert not may(fab, user, "PUT", dag_id, "HITL_DETAIL"), dag_id
        assert not may(fab, user, "POST", dag_id, "RUN"), dag_id
    assert feedback_api(fab, user, "GET") and not feedback_api(fab, user, "POST")


def test_review_assignments_match_fab_accounts_by_user_name_or_id(fab):
    alice, bob = holder("feedback_reviewer", "alice"), holder("feedback_reviewer", "bob")
    assert fab.is_authorized_hitl_task(assigned_users={"alice", "carol"}, user=alice)
    assert not fab.is_authorized_hitl_task(assigned_users={"alice", "carol"}, user=bob)
    assert fab.is_authorized_hitl_task(assigned_users={str(bob.id)}, user=bob)  # FAB's own rule still holds


def test_a_fab_responder_is_recorded_under_its_user_name(monkeypatch):
    monkeypatch.setattr(airflow_users, "fab_in_use", lambda: True)
    assert airflow_users.reviewer({"id": "3", "name": "alice"}) == {
        "id": "alice",
        "name": "alice",
        "account_id": "3",
    }
    assert airflow_users.reviewer(None) is None
    monkeypatch.setattr(airflow_users, "fab_in_use", lambda: False)
    assert airflow_users.reviewer({"id": "alice", "name": "Alice"}) == {"id": "alice", "name": "Alice"}


def test_the_test_session_runs_the_simple_auth_manager():
    airflow_users.fab_in_use.cache_clear()
    assert airflow_users.fab_in_use() is False


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("alice", "--user must be NAME:ROLE, got 'alice'"),
        (":feedback_app", "--user must be NAME:ROLE"),
        (
            "alice:Op",
            "role must be one of feedback_reviewer, feedback_oncall, feedback_app, feedback_viewer, Admin",
        ),
    ],
)
def test_a_bad_user_argument_is_refused_naming_it(text, reason):
    with pytest.raises(InvalidInputError, match=reason):
        airflow_fab.parse_user(text)
    assert airflow_fab.parse_user("alice:feedback_reviewer") == ("alice", "feedback_reviewer")
