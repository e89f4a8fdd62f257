"""`feedback-loop eval-cases ...`: see the regression set the gate checks, and take a wrong case out of it.

When the gate rejects a candidate on "eval cases (must pass)", its verdict names the failing case ids. A
case whose label was wrong (one reviewer's slip) is demoted to *watched*: the gate still scores and reports
it but no longer fails on it. Both directions are audited and can be undone with `restore`.
"""

from __future__ import annotations

import argparse

from feedback_loop.commands.arguments import positive_int
from feedback_loop.commands.output import emit_json, table
from feedback_loop.core import db
from feedback_loop.core.actors import cli_actor
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import eval_cases


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "eval-cases",
        help="the regression set the gate checks: list, demote a wrong case, restore it",
        description="The eval cases (regression set grown from reported failures) that a candidate must pass.",
    )
    commands = parser.add_subparsers(dest="command", metavar="ACTION", required=True)

    listing = commands.add_parser(
        "list", help="list a model's eval cases, where each came from and its state"
    )
    listing.add_argument("--model", required=True, help="model name")
    listing.add_argument(
        "--id",
        dest="ids",
        metavar="ID",
        action="append",
        type=positive_int,
        help="only this case (repeat for more)",
    )
    listing.add_argument(
        "--watched", action="store_true", help="only the demoted (watched, not gating) cases"
    )
    listing.add_argument("--json", action="store_true", help="print the result as JSON")
    listing.set_defaults(handler=run_list)

    for name, must_pass, summary in (
        ("demote", False, "take cases out of the must-pass set (still scored and reported by the gate)"),
        ("restore", True, "make demoted cases must-pass again"),
    ):
        action = commands.add_parser(
            name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. Audited."
        )
        action.add_argument("--model", required=True, help="model name")
        action.add_argument(
            "--id",
            dest="ids",
            metavar="ID",
            action="append",
            required=True,
            type=positive_int,
            help="case id (repeat for more)",
        )
        action.add_argument("--reason", required=True, help="why, for the audit trail")
        action.add_argument("--json", action="store_true", help="print the result as JSON")
        action.set_defaults(handler=run_set_must_pass, must_pass=must_pass)


def run_list(args: argparse.Namespace) -> int:
    with db.connect() as conn:
        registry.list_versions(conn, args.model)  # an unknown model is an error, not an empty list
        rows = eval_cases.list_cases(conn, args.model, args.ids)
    if args.watched:
        rows = [r for r in rows if not r["must_pass"]]
    if args.json:
        emit_json(rows)
    elif not rows:
        print(f"{args.model}: no eval cases{' match' if args.ids or args.watched else ' yet'}")
    else:
        for row in rows:
            row["state"] = "must-pass" if row["must_pass"] else "watched"
        columns = ["id", "state", "expected_label", "wrong_label", "feedback_id", "feedback_source"]
        columns += ["feedback_by", "created_at", "changed_by", "change_reason"]
        print(table(rows, columns))
    return 0


def run_set_must_pass(args: argparse.Namespace) -> int:
    with db.connect() as conn:
        result = eval_cases.set_must_pass(
            conn, args.model, args.ids, must_pass=args.must_pass, actor=cli_actor(), reason=args.reason
        )
    if args.json:
        emit_json({"model": args.model, "must_pass": args.must_pass, **result})
    else:
        state = "must-pass" if args.must_pass else "watched (scored and reported, not gating)"
        if result["changed"]:
            print(f"{args.model}: eval case(s) {', '.join(map(str, result['changed']))} now {state}")
        if result["unchanged"]:
            print(f"{args.model}: eval case(s) {', '.join(map(str, result['unchanged']))} already {state}")
    return 0
