"""Airflow adapter: the package's roles in the FAB auth manager, and the FAB auth manager it runs under.

Four roles, each a fixed set of FAB permissions (action, resource), read from the FAB provider's own
checks (`FabAuthManager.is_authorized_*`, providers-fab 3.10):
- `feedback_reviewer` answers the review tasks of `feedback_inference`. Airflow's HITL answer is
  `is_authorized_dag("PUT", HITL_DETAIL)`, which FAB grants only with `can_edit` on "HITL Detail" AND
  `can_edit` on the DAG itself; edit on a DAG also lets its holder pause it, so a reviewer can pause
  `feedback_inference` and nothing prevents that. Triggering needs `can_create` on "DAG Runs", clearing or
  marking needs edit or create on "Task Instances" and "DAG Runs": the role has none of them.
- `feedback_oncall` reads every DAG of the package and operates three of them: `can_edit` on
  `model_retraining`, `model_rollback` and `eval_case_review` only, with create/edit on "DAG Runs" and
  "Task Instances", which FAB applies only to DAGs the user may edit. It approves gated promotions (the
  approval task of `model_retraining` is a HITL task of a DAG it may edit).
- `feedback_app` holds the feedback API's own resource (FEEDBACK_RESOURCE) and the home page FAB gives
  every role: no DAG, no dashboard, nothing in Airflow's REST API.
- `feedback_viewer` reads the package's DAGs, the dashboard and the feedback API.

The feedback API asks the auth manager about FEEDBACK_RESOURCE through `is_authorized_custom_view`
(adapters.airflow_auth); the dashboard asks for the UI itself (`AccessView.WEBSITE`, "Website").

Roles are synchronised, not only created: a role of ours ends up with exactly these permissions, so a
permission added to one by hand is removed again (give people a second role instead).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from feedback_loop.core.errors import InvalidInputError

# The feedback API's resource in the auth manager (adapters.airflow_auth): read = GET routes, create = POST.
FEEDBACK_RESOURCE = "Feedback Loop API"

PACKAGE_DAGS = (
    "feedback_inference",
    "feedback_aggregation",
    "model_retraining",
    "model_rollback",
    "eval_case_review",
)
REVIEW_DAGS = ("feedback_inference",)
ONCALL_DAGS = ("model_retraining", "model_rollback", "eval_case_review")

READ, EDIT, CREATE, MENU = "can_read", "can_edit", "can_create", "menu_access"


def _dag(dag_id: str) -> str:
    return f"DAG:{dag_id}"


# What a person needs to see a DAG's runs, tasks and review tasks in the UI (global resources: FAB applies
# them only to DAGs the user may read).
UI_READ: tuple[tuple[str, str], ...] = (
    (READ, "Website"),
    (READ, "DAG Runs"),
    (READ, "Task Instances"),
    (READ, "HITL Detail"),
    (READ, "DAG Versions"),
    (READ, "DAG Warnings"),
    (READ, "DAG Dependencies"),
    (READ, "Assets"),
    (MENU, "DAGs"),
    (MENU, "DAG Runs"),
    (MENU, "Task Instances"),
    (MENU, "HITL Detail"),
    (MENU, "Browse"),
)
FEEDBACK_READ = ((READ, FEEDBACK_RESOURCE),)
FEEDBACK_WRITE = ((CREATE, FEEDBACK_RESOURCE),)

ROLE_PERMISSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "feedback_reviewer": (
        *UI_READ,
        *FEEDBACK_READ,
        (EDIT, "HITL Detail"),
        *((READ, _dag(d)) for d in REVIEW_DAGS),
        *((EDIT, _dag(d)) for d in REVIEW_DAGS),
    ),
    "feedback_oncall": (
        *UI_READ,
        *FEEDBACK_READ,
        (READ, "Task Logs"),
        (READ, "XComs"),
        (READ, "DAG Code"),
        (READ, "Audit Logs"),
        (EDIT, "HITL Detail"),
        (CREATE, "DAG Runs"),
        (EDIT, "DAG Runs"),
        (CREATE, "Task Instances"),
        (EDIT, "Task Instances"),
        *((READ, _dag(d)) for d in PACKAGE_DAGS),
        *((EDIT, _dag(d)) for d in ONCALL_DAGS),
    ),
    # FAB gives every custom role the home page ("Website") each time the API server starts
    # (`add_homepage_access_to_custom_roles`); held here so a sync does not take it away and FAB put it back.
    # It opens an empty UI: no DAG, and the dashboard also asks for permission to read DAGs.
    "feedback_app": ((READ, "Website"), *FEEDBACK_READ, *FEEDBACK_WRITE),
    "feedback_viewer": (*UI_READ, *FEEDBACK_READ, *((READ, _dag(d)) for d in PACKAGE_DAGS)),
}
ROLES = tuple(ROLE_PERMISSIONS)
ADMIN_ROLE = "Admin"


@dataclass
class SyncReport:
    roles: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> added, removed, total
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # user -> role, action
    passwords: dict[str, str] = field(default_factory=dict, repr=False)  # only users created now

    def to_dict(self) -> dict[str, Any]:
        return {"roles": self.roles, "users": self.users}


def parse_user(text: str) -> tuple[str, str]:
    """`NAME:ROLE` from the command line; ROLE is one of ours or Admin."""
    name, sep, role = text.partition(":")
    if not sep or not name.strip() or not role.strip():
        raise InvalidInputError(f"--user must be NAME:ROLE, got {text!r}")
    if role not in (*ROLES, ADMIN_ROLE):
        raise InvalidInputError(f"--user {text!r}: role must be one of {', '.join((*ROLES, ADMIN_ROLE))}")
    return name.strip(), role


def sync(users: Iterable[tuple[str, str]] = (), passwords: Mapping[str, str] | None = None) -> SyncReport:
    """Create or update the four roles with exactly their permissions, grant the feedback API's resource
    to Admin too, and create the users missing from FAB with their role (password from `passwords`, else
    generated). An existing user keeps its password and gets the role added. Safe to repeat."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    # FAB logs every permission it creates or grants (a hundred lines on a fresh database); `-v` shows them.
    if not logging.getLogger().isEnabledFor(logging.INFO):
        for name in ("airflow.providers.fab", "flask_appbuilder"):
            logging.getLogger(name).setLevel(logging.WARNING)
    report = SyncReport()
    given = dict(passwords or {})
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        for name, wanted in ROLE_PERMISSIONS.items():
            role = sm.add_role(name)
            want = {sm.create_permission(action, resource) for action, resource in wanted}
            have = set(role.permissions)
            for perm in want - have:
                sm.add_permission_to_role(role, perm)
            for perm in have - want:
                sm.remove_permission_from_role(role, perm)
            report.roles[name] = {"added": len(want - have), "removed": len(have - want), "total": len(want)}
        admin = sm.add_role(ADMIN_ROLE)
        for action in (READ, CREATE):
            perm = sm.create_permission(action, FEEDBACK_RESOURCE)
            if perm not in admin.permissions:
                sm.add_permission_to_role(admin, perm)
        for name, role_name in users:
            role = sm.find_role(role_name)
            existing = sm.find_user(username=name)
            if existing is None:
                password = given.get(name) or secrets.token_urlsafe(18)
                sm.add_user(name, name, role_name, f"{name}@feedback-loop.invalid", role, password)
                report.passwords[name] = password
                report.users[name] = {"role": role_name, "action": "created"}
            elif role not in existing.roles:
                existing.roles.append(role)
                sm.update_user(existing)
                report.users[name] = {"role": role_name, "action": "role added"}
            else:
                report.users[name] = {"role": role_name, "action": "unchanged"}
    return report
