"""`feedback-loop db ...`: schema migrations and where the database is."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from feedback_loop.commands.output import emit_json
from feedback_loop.core import db, embedded_postgres, migrations


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser("db", help="database schema and server", description="Database commands.")
    commands = parser.add_subparsers(dest="command", metavar="ACTION", required=True)

    upgrade = commands.add_parser("upgrade", help="apply pending schema migrations (safe to repeat)")
    upgrade.add_argument("--json", action="store_true", help="print the result as JSON")
    upgrade.set_defaults(handler=run_upgrade)

    status = commands.add_parser("status", help="which database is used and which migrations are pending")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(handler=run_status)

    stop = commands.add_parser("stop-embedded", help="stop the throwaway PostgreSQL server under .local/pg")
    stop.set_defaults(handler=run_stop_embedded)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def run_upgrade(args: argparse.Namespace) -> int:
    url = db.resolve_url()
    applied = migrations.upgrade(url)
    if args.json:
        emit_json({"database": _where(url), "applied": applied})
    elif applied:
        print(f"applied {len(applied)} migration(s) to {_where(url)}: {', '.join(applied)}")
    else:
        print(f"schema of {_where(url)} is up to date")
    return 0


def run_status(args: argparse.Namespace) -> int:
    url = db.resolve_url()
    pending = migrations.pending(url)
    if args.json:
        emit_json({"database": _where(url), "pending": pending})
    else:
        print(f"database: {_where(url)}")
        print(f"pending migrations: {', '.join(pending) if pending else 'none'}")
    return 0


def run_stop_embedded(args: argparse.Namespace) -> int:
    directory = db.embedded_data_dir()
    if embedded_postgres.status(directory) is None:
        print("no throwaway PostgreSQL server is running")
        return 0
    embedded_postgres.stop(directory)
    print(f"stopped the throwaway PostgreSQL server in {directory}")
    return 0
