"""`feedback-loop roles sync`: the package's roles (and optionally users) in the FAB auth manager."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from feedback_loop.commands.output import emit_json, table
from feedback_loop.core.errors import FeedbackLoopError, InvalidInputError


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "roles",
        help="the package's roles in Airflow's FAB auth manager",
        description="Roles for reviewers, on-call, apps and viewers in Airflow's FAB auth manager.",
    )
    commands = parser.add_subparsers(dest="command", metavar="ACTION", required=True)
    sync = commands.add_parser(
        "sync",
        help="create or update feedback_reviewer, feedback_oncall, feedback_app, feedback_viewer (safe to repeat)",
        description=(
            "Create the four roles in the metadata database of the Airflow this environment points at "
            "(AIRFLOW_HOME / AIRFLOW__DATABASE__SQL_ALCHEMY_CONN), each with exactly its permissions "
            "(docs/operations.md, 'Roles'), and give Admin the feedback API's permissions. With --user, "
            "create the accounts missing from FAB with a generated password; existing accounts keep theirs."
        ),
    )
    sync.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:ROLE",
        help="an account to create (if missing) with this role; repeatable",
    )
    sync.add_argument(
        "--passwords-file",
        type=Path,
        help="JSON file {user: password}: passwords of new accounts are read from it when listed, else "
        "generated and added to it (owner-only); required with --user",
    )
    sync.add_argument("--json", action="store_true", help="print what was done as JSON")
    sync.set_defaults(handler=run_sync)


def _read_passwords(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"--passwords-file {path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidInputError(f"--passwords-file {path}: must be a JSON object of user names to passwords")
    return data


def _write_passwords(path: Path, passwords: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created owner-only before anything is written into it: passwords never sit in a readable file.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out, indent=2)
    path.chmod(0o600)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Airflow logs to standard output; while it runs, that goes to stderr, so stdout holds only our report
    (`--json` stays parseable)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_sync(args: argparse.Namespace) -> int:
    from feedback_loop.adapters import airflow_fab

    users = [airflow_fab.parse_user(text) for text in args.user]
    if users and args.passwords_file is None:
        raise InvalidInputError("--user needs --passwords-file (new accounts' passwords are written there)")
    known = _read_passwords(args.passwords_file) if args.passwords_file else {}
    try:
        with _stdout_to_stderr():
            report = airflow_fab.sync(users, known)
    except Exception as exc:  # noqa: BLE001 - FAB and SQLAlchemy errors become one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FeedbackLoopError(f"could not sync roles in Airflow's metadata database: {first}") from None
    if report.passwords:
        _write_passwords(args.passwords_file, {**known, **report.passwords})
    if args.json:
        emit_json(report.to_dict())
        return 0
    rows = [{"role": name, **counts} for name, counts in report.roles.items()]
    print(table(rows, ["role", "total", "added", "removed"]))
    for name, done in report.users.items():
        print(f"user {name} ({done['role']}): {done['action']}")
    if report.passwords:
        print(f"passwords of new accounts: {args.passwords_file}")
    return 0
