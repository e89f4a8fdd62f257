"""`feedback-loop reviewers list`: how far each reviewer of a model can be trusted, and how much they agree.

Per reviewer: answers, estimated accuracy (from agreement with others and gold questions), gold accuracy
and agreement with the others' consensus, each with a 95% Wilson interval; per model: Krippendorff's alpha
over traces several people answered, and second opinions still waiting.
"""

from __future__ import annotations

import argparse

from feedback_loop.commands.output import emit_json, table
from feedback_loop.core import config, db
from feedback_loop.labels import report
from feedback_loop.labels import store as labels


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "reviewers",
        help="reviewer reliability and agreement per model",
        description="How far each reviewer of a model can be trusted, and how much reviewers agree.",
    )
    commands = parser.add_subparsers(dest="command", metavar="ACTION", required=True)
    listing = commands.add_parser(
        "list", help="list the reviewers of one model, or of every configured model"
    )
    listing.add_argument("--model", help="model name (default: every configured model)")
    listing.add_argument(
        "--refresh",
        action="store_true",
        help="re-estimate from every answer first (retraining does too, and aggregation when answers came)",
    )
    listing.add_argument("--json", action="store_true", help="print the result as JSON")
    listing.set_defaults(handler=run_list)


def _interval(share: dict) -> str:
    if share["of"] == 0:
        return "-"
    low, high = share["interval"]
    return f"{share['correct']}/{share['of']} ({low:.0%}-{high:.0%})"


def _estimate(person: dict) -> str:
    low, high = person["accuracy_lower"], person["accuracy_upper"]
    point = f"{person['estimated_accuracy']:.0%}"
    return point if low is None or high is None else f"{point} ({low:.0%}-{high:.0%})"


def run_list(args: argparse.Namespace) -> int:
    settings = config.load()
    models = [settings.model(args.model)] if args.model else list(settings.models)
    reports = []
    with db.connect() as conn:
        for model in models:
            if args.refresh:
                labels.refresh(conn, model)
                conn.commit()
            reports.append(report.reviewers(conn, model.name, model.review))
    if args.json:
        emit_json(reports if not args.model else reports[0])
        return 0
    for found in reports:
        alpha = found["krippendorff_alpha"]
        print(
            f"{found['model_name']}: Krippendorff's alpha "
            f"{'-' if alpha is None else f'{alpha:.2f}'} over {found['traces_with_several_answers']} trace(s) "
            f"answered by several people; {found['second_opinions_waiting']} second opinion(s) waiting"
        )
        if not found["reviewers"]:
            print("  no reviewer has answered yet")
            continue
        rows = [
            {
                "reviewer": r["reviewer"] + (" (below threshold)" if r["below_threshold"] else ""),
                "answers": r["answers"],
                "estimated_accuracy": _estimate(r),
                "gold": _interval(r["gold"]),
                "agreement": _interval(r["agreement"]),
            }
            for r in found["reviewers"]
        ]
        print(table(rows, ["reviewer", "answers", "estimated_accuracy", "gold", "agreement"]))
    return 0
