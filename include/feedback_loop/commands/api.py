"""`feedback-loop api ...`: run the feedback API on its own, retry undelivered notifications."""

from __future__ import annotations

import argparse

from feedback_loop.api.workers import MAX_WORKERS, default_workers
from feedback_loop.commands.output import emit_json
from feedback_loop.core.console import progress
from feedback_loop.core.errors import InvalidInputError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, got {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {value}")
    return value


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "api",
        help="the feedback REST API",
        description="Run the feedback API outside the Airflow API server.",
    )
    commands = parser.add_subparsers(dest="command", metavar="ACTION", required=True)

    serve = commands.add_parser(
        "serve",
        help="serve the feedback API with uvicorn (Airflow tokens; same [api_auth] settings as the API server)",
        description=(
            "Serve the feedback API. Requests need an Airflow token from POST /auth/token on the Airflow API "
            "server; this process must share its AIRFLOW__API_AUTH__JWT_SECRET and metadata database."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8765, help="TCP port (default 8765)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"uvicorn worker processes (default: one per core, at most {MAX_WORKERS}; here {default_workers()})",
    )
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=run_serve)

    pending = commands.add_parser(
        "deliver-pending", help="retry webhook notifications that were not delivered yet (outbox)"
    )
    pending.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    pending.add_argument("--json", action="store_true", help="print the result as JSON")
    pending.set_defaults(handler=run_deliver_pending)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    workers = default_workers() if args.workers is None else args.workers
    if workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {workers}")
    progress(
        f"feedback API on http://{args.host}:{args.port} with {workers} worker(s) (OpenAPI at /openapi.json)"
    )
    uvicorn.run(
        "feedback_loop.adapters.airflow_auth:create_standalone_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=workers,
        log_level=args.log_level,
        access_log=False,
    )
    return 0


def run_deliver_pending(args: argparse.Namespace) -> int:
    from feedback_loop.core import config, db, notify

    if args.limit < 1:
        raise InvalidInputError(f"--limit must be at least 1, got {args.limit}")
    with db.connect() as conn:
        results = notify.deliver_pending(conn, config.load().notify, limit=args.limit)
    counts = {
        status: sum(r.status == status for r in results) for status in ("delivered", "failed", "pending")
    }
    if args.json:
        emit_json({"tried": len(results), **counts})
    else:
        print(
            f"tried {len(results)} notification(s): {counts['delivered']} delivered, "
            f"{counts['failed']} failed, {counts['pending']} waiting for a webhook URL"
        )
    return 0
