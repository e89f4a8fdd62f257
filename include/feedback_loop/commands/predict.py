"""`feedback-loop predict`: enqueue a CSV/Parquet file of inputs for the `feedback_inference` DAG, and
`feedback-loop predict status`: what became of requests named by their request ids."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from feedback_loop.commands.output import emit_json, table
from feedback_loop.core import config, db
from feedback_loop.core import inference_requests as requests
from feedback_loop.core.console import progress
from feedback_loop.core.errors import InvalidInputError, NotFoundError
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import datasets

STATUS_COLUMNS = (
    "request_id",
    "status",
    "prediction",
    "confidence",
    "model_version",
    "trace_id",
    "scored_at",
)
ERROR_WIDTH = 60  # failure reasons can be long; --json has them whole


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "predict",
        help="enqueue a file of inputs for scoring by the feedback_inference DAG; `predict status` reads back",
        description="Check a CSV or Parquet file against the champion's feature columns and append its rows "
        "to inference_requests; the feedback_inference DAG scores them on its next run. Configured slice "
        "columns found in the file are kept as slice attributes; other extra columns are ignored. With "
        "--request-id-column each row is named by its request id (unique per model): running the same file "
        "again enqueues nothing new, and a row whose id was enqueued before with another input is refused. "
        "`feedback-loop predict status --help` shows how to read back trace ids and predictions.",
    )
    # Not required=True: `predict status ...` parses through this parser too; run_predict checks them.
    parser.add_argument("--model", help="model name from the config file (required)")
    parser.add_argument("--input", type=Path, help="a .csv or .parquet file, one request per row (required)")
    parser.add_argument(
        "--request-id-column",
        metavar="COL",
        help="the column holding each row's request id: present, non-empty, unique within the file, at most "
        f"{requests.REQUEST_ID_MAX_LENGTH} printable characters",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON, with every enqueued request"
    )
    parser.set_defaults(handler=run_predict)
    commands = parser.add_subparsers(dest="predict_command", metavar="status", required=False)
    # SUPPRESS: options given before `status` (predict --model m status ...) are not reset by its defaults.
    status = commands.add_parser(
        "status",
        argument_default=argparse.SUPPRESS,
        help="status, trace id, prediction and confidence of requests named by their request ids",
        description="Read back, per request id: status (pending, scored, failed with the reason, or unknown), "
        "trace id, prediction (output label), confidence, model version and when it was scored. Post "
        "feedback on the trace id to the feedback API. Unknown ids are listed as unknown; the command fails "
        "only when none of the ids is known.",
    )
    status.add_argument("--model", help="model name from the config file (required)")
    status.add_argument(
        "--request-id", action="append", dest="request_ids", metavar="ID", help="a request id (repeatable)"
    )
    status.add_argument("--input", type=Path, help="... or the ids of a file enqueued with predict")
    status.add_argument(
        "--request-id-column", metavar="COL", help="the file's request id column (with --input)"
    )
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(handler=run_status)


def _clean(value: Any, column: str, row: int, path: Path) -> Any:
    """JSON-ready value: NaN/None become null (the model imputes them); infinities and NUL are refused, the
    error naming the file, the column and the row (1 = the first row after the header)."""
    if value is None:
        return None
    if hasattr(value, "item"):  # numpy scalar -> Python
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise InvalidInputError(f"--input {path}: column {column!r}, row {row + 1}: infinite value")
    if isinstance(value, str) and "\x00" in value:  # PostgreSQL's jsonb cannot hold NUL
        raise InvalidInputError(f"--input {path}: column {column!r}, row {row + 1}: contains a NUL character")
    return value


def _column_values(path: Path, frame: Any, column: str) -> list[Any]:
    """The id column as it is written: a CSV column is read again as text, because pandas would read
    '007' as the number 7 and 'NA' as missing."""
    import pandas as pd

    if column not in [str(c) for c in frame.columns]:
        shown = ", ".join(str(c) for c in frame.columns[:12])
        raise InvalidInputError(
            f"--request-id-column {column!r}: {path} has no such column (columns: {shown})"
        )
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False)[column].tolist()
    return frame[column].tolist()


def request_ids_of(path: Path, frame: Any, column: str) -> list[str]:
    """Each row's request id, validated: present, non-empty, a valid id, unique within the file."""
    found: list[str] = []
    for row, value in enumerate(_column_values(path, frame, column), start=1):
        if hasattr(value, "item"):
            value = value.item()
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            raise InvalidInputError(f"--request-id-column {column!r}: row {row} has no request id")
        text = value if isinstance(value, str) else str(value)
        if why := requests.request_id_problem(text):
            raise InvalidInputError(f"--request-id-column {column!r}: row {row}: request id {text!r} {why}")
        found.append(text)
    twice = requests.repeated(found)
    if twice:
        index, first = twice[0]
        raise InvalidInputError(
            f"--request-id-column {column!r}: request id {found[index]!r} is on rows {first + 1} and "
            f"{index + 1}; ids must be unique within the file"
        )
    return found


def run_predict(args: argparse.Namespace) -> int:
    missing = [flag for flag, value in (("--model", args.model), ("--input", args.input)) if value is None]
    if missing:
        raise InvalidInputError(
            f"predict needs {' and '.join(missing)} (to read requests back: feedback-loop predict status)"
        )
    model = config.load().model(args.model)
    frame = datasets.read_table(args.input)
    if frame.empty:
        raise InvalidInputError(f"--input {args.input}: the file has no rows")
    id_column = args.request_id_column
    ids = request_ids_of(args.input, frame, id_column) if id_column else None
    columns = [str(c) for c in frame.columns]
    with db.connect() as conn:
        champion = registry.champion(conn, model.name)
        features = list(champion.feature_columns)
        if not features:
            raise InvalidInputError(f"{model.name} v{champion.version}: no feature columns recorded")
        missing = [c for c in features if c not in columns]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise InvalidInputError(
                f"--input {args.input}: missing {len(missing)} feature column(s) that {model.name} "
                f"v{champion.version} needs: {shown}"
            )
        slices = [c for c in model.slice_columns if c in columns and c not in features and c != id_column]
        ignored = [c for c in columns if c not in features and c not in slices and c != id_column]
        records = frame.astype(object).to_dict("records")
        rows = [
            requests.NewRequest(
                input={c: _clean(record[c], c, i, args.input) for c in features},
                slice={c: _clean(record[c], c, i, args.input) for c in slices},
                request_id=None if ids is None else ids[i],
            )
            for i, record in enumerate(records)
        ]
        progress(f"enqueueing {len(rows)} row(s) of {args.input.name} for {model.name} ...")
        try:
            enqueued = requests.enqueue(conn, model.name, rows)
        except requests.RequestIdConflictError as exc:
            row = exc.conflicts[0][0] + 1
            raise InvalidInputError(f"--input {args.input}: row {row}: {exc}") from None
    queued = sum(e.created for e in enqueued)
    result = {
        "model_name": model.name,
        "champion_version": champion.version,
        "queued": queued,
        "already_enqueued": len(enqueued) - queued,
        "slice_columns": slices,
        "ignored_columns": ignored,
        "request_id_column": id_column,
        "requests": [e.to_dict() for e in enqueued],
    }
    if args.json:
        emit_json(result)
    else:
        extra = f"; ignored column(s): {', '.join(ignored)}" if ignored else ""
        again = (
            f"; {len(enqueued) - queued} already enqueued with the same input"
            if queued < len(enqueued)
            else ""
        )
        print(
            f"queued {queued} request(s) for {model.name} (champion v{champion.version}){again}{extra}; "
            "the next feedback_inference run scores them"
        )
    return 0


def _status_ids(args: argparse.Namespace) -> list[str]:
    given = getattr(args, "request_ids", None)
    path, column = getattr(args, "input", None), getattr(args, "request_id_column", None)
    if given and (path or column):
        raise InvalidInputError(
            "predict status: give --request-id, or --input with --request-id-column, not both"
        )
    if given:
        for value in given:
            if why := requests.request_id_problem(value):
                raise InvalidInputError(f"--request-id {value!r}: {why}")
        return list(dict.fromkeys(given))  # an id asked twice is listed once
    if path is not None and column:
        return request_ids_of(path, datasets.read_table(path), column)
    if path is not None or column:
        raise InvalidInputError("predict status: --input and --request-id-column go together")
    raise InvalidInputError(
        "predict status: give --request-id ID (repeatable) or --input FILE --request-id-column COL"
    )


def run_status(args: argparse.Namespace) -> int:
    model_name = getattr(args, "model", None)
    if not model_name:
        raise InvalidInputError("predict status needs --model")
    model = config.load().model(model_name)
    ids = _status_ids(args)
    with db.connect() as conn:
        found = requests.statuses(conn, model.name, ids)
    known = sum(s.known for s in found)
    if not known:
        raise NotFoundError(
            f"none of the {len(ids)} request id(s) was enqueued for {model.name!r} (first: {ids[0]!r})"
        )
    if args.json:
        emit_json(
            {
                "model_name": model.name,
                "known": known,
                "unknown": len(found) - known,
                "requests": [s.to_dict() for s in found],
            }
        )
        return 0
    rows = []
    for s in found:
        row = s.to_dict()
        if s.error:
            short = s.error if len(s.error) <= ERROR_WIDTH else s.error[: ERROR_WIDTH - 3] + "..."
            row["status"] = f"failed: {short}"
        rows.append(row)
    print(table(rows, STATUS_COLUMNS))
    print(f"{known} known, {len(found) - known} unknown request id(s) for {model.name}")
    return 0
