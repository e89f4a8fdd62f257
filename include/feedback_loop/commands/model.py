"""`feedback-loop model ...`: list, register, promote, roll back and audit model versions."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from feedback_loop.commands.arguments import positive_int
from feedback_loop.commands.output import emit_json, table
from feedback_loop.core import config, db
from feedback_loop.core.actors import cli_actor
from feedback_loop.core.console import progress
from feedback_loop.core.errors import InvalidInputError, NotFoundError
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import baseline


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser("model", help="model registry", description="Model registry commands.")
    commands = parser.add_subparsers(dest="command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list versions, metrics and which one is champion")
    listing.add_argument("--model", help="model name (default: every registered model)")
    listing.add_argument("--json", action="store_true", help="print the result as JSON")
    listing.set_defaults(handler=run_list)

    reg = commands.add_parser(
        "register",
        help="register a version: train on the configured base data, or take a skops file",
        description="Register a new version. --train fits the configured estimator on the model's base "
        "training data; --artifact takes an existing .skops file (checked for untrusted types).",
    )
    reg.add_argument("--model", required=True, help="model name from the config file")
    source = reg.add_mutually_exclusive_group(required=True)
    source.add_argument("--train", action="store_true", help="train on the configured base training data")
    source.add_argument("--artifact", type=Path, help="path of a scikit-learn model saved with skops")
    reg.add_argument("--promote", action="store_true", help="make the new version champion right away")
    reg.add_argument("--reason", default="", help="why, for the audit trail")
    reg.add_argument("--json", action="store_true", help="print the result as JSON")
    reg.set_defaults(handler=run_register)

    promote = commands.add_parser("promote", help="make a version the champion (audited)")
    promote.add_argument("--model", required=True, help="model name")
    promote.add_argument("--version", required=True, type=positive_int, help="version number to promote")
    promote.add_argument("--reason", default="", help="why, for the audit trail")
    promote.add_argument("--json", action="store_true", help="print the result as JSON")
    promote.set_defaults(handler=run_promote)

    rollback = commands.add_parser("rollback", help="move the champion back (default: the previous one)")
    rollback.add_argument("--model", required=True, help="model name")
    rollback.add_argument(
        "--to-version", type=positive_int, help="version to restore (default: previous champion)"
    )
    rollback.add_argument("--reason", default="", help="why, for the audit trail")
    rollback.add_argument("--json", action="store_true", help="print the result as JSON")
    rollback.set_defaults(handler=run_rollback)

    runs = commands.add_parser(
        "runs",
        help="training runs: what each decided and why (the gate's checks with --id)",
        description="Training runs of a model, newest first; --id shows one run with every gate check.",
    )
    which = runs.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model name: list its latest runs")
    which.add_argument(
        "--id", type=positive_int, help="one run in full: decision, gate checks, training data"
    )
    runs.add_argument("--limit", type=positive_int, default=10, help="how many runs to list (default 10)")
    runs.add_argument("--json", action="store_true", help="print the result as JSON")
    runs.set_defaults(handler=run_runs)

    history = commands.add_parser("history", help="who held the champion alias, when, and why")
    history.add_argument("--model", required=True, help="model name")
    history.add_argument("--json", action="store_true", help="print the result as JSON")
    history.set_defaults(handler=run_history)


CREATED_BY_WIDTH = 32  # asset-triggered runs are created by long run ids; --json keeps them whole


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run_list(args: argparse.Namespace) -> int:
    with db.connect() as conn:
        names = [args.model] if args.model else registry.model_names(conn)
        rows = []
        for name in names:
            champion = registry.current_version(conn, name)
            for version in registry.list_versions(conn, name):
                rows.append({**version.summary(), "champion": version.version == champion})
    if args.json:
        emit_json(rows)
    elif not rows:
        print("no model versions registered yet")
    else:
        for row in rows:
            row["champion"] = "*" if row["champion"] else ""
            row["created_by"] = shorten(str(row["created_by"]), CREATED_BY_WIDTH)
        print(
            table(
                rows,
                [
                    "model_name",
                    "version",
                    "champion",
                    "status",
                    "accuracy",
                    "train_rows",
                    "created_by",
                    "created_at",
                ],
            )
        )
    return 0


def run_register(args: argparse.Namespace) -> int:
    settings = config.load()
    model = settings.model(args.model)
    with db.connect() as conn:
        if args.train:
            progress(f"training {model.name} on its base data ({model.estimator}) ...")
            version = baseline.train_and_register(
                conn, model, created_by=cli_actor(), promote=args.promote, reason=args.reason
            )
        else:
            version = _register_artifact(conn, model.name, args.artifact, args.reason)
            if args.promote:
                registry.promote(conn, model.name, version.version, actor=cli_actor(), reason=args.reason)
    summary = version.summary()
    if args.json:
        emit_json({**summary, "promoted": bool(args.promote)})
    else:
        accuracy = f", holdout accuracy {summary['accuracy']:.3f}" if summary["accuracy"] is not None else ""
        promoted = " and promoted it to champion" if args.promote else ""
        print(f"registered {model.name} v{version.version}{accuracy}{promoted}")
    return 0


def _register_artifact(conn, model_name: str, path: Path, reason: str) -> registry.ModelVersion:
    if not path.is_file():
        raise InvalidInputError(f"--artifact {path}: file not found")
    estimator = registry.read_skops(path.read_bytes(), f"--artifact {path}")
    # Before anything is stored: a classifier fitted on the model's columns, with its classes.
    registry.check_fit(conn, model_name, estimator, label=f"--artifact {path}")
    return registry.register(
        conn,
        model_name,
        estimator,
        created_by=cli_actor(),
        note=reason or f"imported from {path.name}",
        data_snapshot={"source": f"artifact:{path.name}"},
    )


def run_promote(args: argparse.Namespace) -> int:
    with db.connect() as conn:
        event = registry.promote(conn, args.model, args.version, actor=cli_actor(), reason=args.reason)
    if args.json:
        emit_json(asdict(event))
    else:
        print(f"{args.model}: champion is now v{event.version} (was v{event.previous_version})")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    with db.connect() as conn:
        event = registry.rollback(
            conn, args.model, actor=cli_actor(), reason=args.reason, to_version=args.to_version
        )
    if args.json:
        emit_json(asdict(event))
    else:
        print(f"{args.model}: rolled back champion from v{event.previous_version} to v{event.version}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    with db.connect() as conn:
        events = registry.alias_history(conn, args.model)
        if not events:
            registry.list_versions(conn, args.model)  # raises for an unknown model
    rows = [asdict(e) for e in events]
    if args.json:
        emit_json(rows)
    elif not rows:
        print(f"{args.model} has never had a champion")
    else:
        print(table(rows, ["id", "action", "version", "previous_version", "actor", "reason", "created_at"]))
    return 0


def run_runs(args: argparse.Namespace) -> int:
    from feedback_loop.retrain import run_records

    with db.connect() as conn:
        if args.id is not None:
            return _show_run(run_records.get_run(conn, args.id), args.json)
        rows = run_records.recent_runs(conn, args.model, args.limit)
        # Runs can exist before any version does (every run skipped or failed), so look at them first.
        if not rows and args.model not in registry.model_names(conn):
            configured = [m.name for m in config.load().models]
            if args.model not in configured:
                raise NotFoundError(
                    f"unknown model {args.model!r}: neither registered nor configured (configured: "
                    f"{', '.join(configured) or 'none'})"
                )
    if args.json:
        emit_json(rows)
    elif not rows:
        print(f"{args.model}: no training runs yet")
    else:
        for row in rows:
            row["versions"] = " -> ".join(
                f"v{v}" if v else "-" for v in (row["champion_version"], row["candidate_version"])
            )
            row["decision"] = row["decision"][:90] + ("..." if len(row["decision"]) > 90 else "")
        print(table(rows, ["id", "status", "versions", "triggered_by", "started_at", "decision"]))
        print(f"details: feedback-loop model runs --id {rows[0]['id']}")
    return 0


def _show_run(run: dict, as_json: bool) -> int:
    if as_json:
        emit_json(run)
        return 0
    print(f"training run #{run['id']} of {run['model_name']}: {run['status']}")
    print(
        f"  triggered by {run['triggered_by'] or '-'} at {run['started_at']:%Y-%m-%d %H:%M:%S}: {run['reason'] or '-'}"
    )
    print(f"  decision: {run['decision'] or '-'}")
    feedback = (run["data_snapshot"] or {}).get("feedback") or {}
    if feedback:
        counts = ", ".join(f"{k} {v}" for k, v in feedback.items() if isinstance(v, int))
        print(f"  feedback-derived training data: {counts}")
    checks = (run["gate"] or {}).get("checks") or []
    if checks:
        print()
        rows = [{**c, "result": "pass" if c["passed"] else "FAIL"} for c in checks]
        print(table(rows, ["name", "champion", "candidate", "threshold", "result", "detail"]))
    return 0
