"""`feedback-loop` command line: argparse front end; each command group lives in feedback_loop.commands.

Errors the package raises on purpose become one line on stderr and a non-zero exit code; argparse's own
usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

import psycopg

from feedback_loop import __version__
from feedback_loop.core.errors import FeedbackLoopError

# Each module exposes register(subparsers); order is the order shown in --help.
COMMAND_MODULES = (
    "feedback_loop.commands.db",
    "feedback_loop.commands.model",
    "feedback_loop.commands.eval_cases",
    "feedback_loop.commands.reviewers",
    "feedback_loop.commands.predict",
    "feedback_loop.commands.api",
    "feedback_loop.commands.roles",
    "feedback_loop.commands.simulate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedback-loop",
        description="Close the human feedback loop around production ML models (Airflow 3 + PostgreSQL).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens, step by step")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that left shows up here
        return code
    except FeedbackLoopError as exc:
        print(f"feedback-loop: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("feedback-loop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_left()
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        first = str(exc).strip().splitlines()[0]
        print(
            f"feedback-loop: error: the feedback database's schema is missing or behind ({first}); "
            "run `feedback-loop db upgrade`",
            file=sys.stderr,
        )
        return 2


def _reader_left() -> int:
    """The reader of our output went away (`feedback-loop ... | head`): stop quietly, like other tools."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not raise again
    return 141


if __name__ == "__main__":
    sys.exit(main())
