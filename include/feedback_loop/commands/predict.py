"""`feedback-loop predict`: enqueue a CSV/Parquet file of inputs for the `feedback_inference` DAG."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from feedback_loop.commands.output import emit_json
from feedback_loop.core import config, db
from feedback_loop.core.console import progress
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import scoring as inference
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import datasets


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "predict",
        help="enqueue a file of inputs for scoring by the feedback_inference DAG",
        description="Check a CSV or Parquet file against the champion's feature columns and append its rows "
        "to inference_requests; the feedback_inference DAG scores them on its next run. Configured slice "
        "columns found in the file are kept as slice attributes; other extra columns are ignored.",
    )
    parser.add_argument("--model", required=True, help="model name from the config file")
    parser.add_argument(
        "--input", required=True, type=Path, help="a .csv or .parquet file, one request per row"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_predict)


def _clean(value: Any, column: str, row: int) -> Any:
    """JSON-ready value: NaN/None become null (the model imputes them); infinities are refused."""
    if value is None:
        return None
    if hasattr(value, "item"):  # numpy scalar -> Python
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise InvalidInputError(f"--input: column {column!r}, row {row + 1}: infinite value")
    return value


def run_predict(args: argparse.Namespace) -> int:
    model = config.load().model(args.model)
    frame = datasets.read_table(args.input)
    if frame.empty:
        raise InvalidInputError(f"--input {args.input}: the file has no rows")
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
        slices = [c for c in model.slice_columns if c in columns and c not in features]
        ignored = [c for c in columns if c not in features and c not in slices]
        records = frame.astype(object).to_dict("records")
        rows = [
            (
                {c: _clean(record[c], c, i) for c in features},
                {c: _clean(record[c], c, i) for c in slices},
            )
            for i, record in enumerate(records)
        ]
        progress(f"enqueueing {len(rows)} row(s) of {args.input.name} for {model.name} ...")
        queued = inference.enqueue_requests(conn, model.name, rows)
    result = {
        "model_name": model.name,
        "champion_version": champion.version,
        "queued": queued,
        "slice_columns": slices,
        "ignored_columns": ignored,
    }
    if args.json:
        emit_json(result)
    else:
        extra = f"; ignored column(s): {', '.join(ignored)}" if ignored else ""
        print(
            f"queued {queued} request(s) for {model.name} (champion v{champion.version}){extra}; "
            "the next feedback_inference run scores them"
        )
    return 0
