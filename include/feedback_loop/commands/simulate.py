"""`feedback-loop simulate`: the closed loop on a data set, without the scheduler (see feedback_loop.lab.simulate)."""

from __future__ import annotations

import argparse

from feedback_loop.commands.output import emit_json, table
from feedback_loop.core.console import progress


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def _noises(text: str) -> tuple[float, ...]:
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected noise shares like 0.05,0.05,0.4, got {text!r}"
            ) from None
        if not 0 <= value < 1:
            raise argparse.ArgumentTypeError(f"each reviewer's noise must be in [0, 1), got {value}")
        values.append(value)
    return tuple(values)


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "simulate",
        help="run the feedback loop on a data set with simulated reviewers (no scheduler needed)",
        description="Closed-loop simulation with the library code the DAGs run, on a throwaway database, "
        "with the gate, review and training settings of the shipped config: 30%% of the rows (stratified) "
        "are held out for accuracy; v1 is trained on --initial-labels clean labels; each cycle "
        "--batch-size new rows are scored and --review-budget answers are spent (gold, audit, second "
        "opinions, then the least confident predictions or a random sample); a pool of simulated reviewers "
        "(--reviewers, each with its share of wrong answers) answers; the model is retrained, gated and "
        "promoted. --strategy bare runs the loop without the product for comparison. "
        "Progress goes to stderr; with --json the result alone goes to stdout.",
    )
    parser.add_argument("--data", required=True, help="CSV or Parquet file, or 'digits' for the bundled set")
    parser.add_argument("--label-column", help="column to predict (default: 'label' for digits)")
    parser.add_argument("--slice-column", help="column to report slice metrics for (not a feature)")
    parser.add_argument("--drop-columns", default="", help="comma-separated columns to ignore (ids, leaks)")
    parser.add_argument("--initial-labels", type=_int_at_least(10), default=100, help="clean labels for v1")
    parser.add_argument("--cycles", type=_int_at_least(0), default=5, help="feedback cycles to run")
    parser.add_argument("--batch-size", type=_int_at_least(1), default=200, help="new rows per cycle")
    parser.add_argument("--review-budget", type=_int_at_least(1), default=20, help="answers per cycle")
    people = parser.add_mutually_exclusive_group()
    people.add_argument(
        "--reviewers", type=_noises, help="one noise share per simulated reviewer, e.g. 0.05,0.05,0.05,0.4"
    )
    people.add_argument(
        "--reviewer-noise", type=_share, default=0.1, help="three reviewers with this share of wrong answers"
    )
    parser.add_argument(
        "--strategy",
        choices=["uncertainty", "random", "bare"],
        default="uncertainty",
        help="the product routing the least confident predictions (uncertainty) or a random sample, or "
        "the bare loop without the product (one answer per item, no consensus, no gate)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for splits, routing and reviewer noise")
    parser.add_argument("--gold-share", type=_share, help="override review.gold_share of the config")
    parser.add_argument("--audit-share", type=_share, help="override review.audit_share of the config")
    parser.add_argument("--max-reviews", type=_int_at_least(1), help="override review.max_reviews_per_item")
    parser.add_argument(
        "--max-feedback-share", type=_share, help="override max_feedback_share of the config (0 < x <= 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from feedback_loop.core.errors import InvalidInputError
    from feedback_loop.lab import simulate

    label = args.label_column or ("label" if args.data == "digits" else None)
    if label is None:
        raise InvalidInputError("--label-column is required for a data file")
    if args.max_feedback_share == 0:
        raise InvalidInputError("--max-feedback-share must be greater than 0")
    spec = simulate.SimulationSpec(
        data=args.data,
        label_column=label,
        slice_column=args.slice_column or ("writer_group" if args.data == "digits" else None),
        drop_columns=tuple(c.strip() for c in args.drop_columns.split(",") if c.strip()),
        initial_labels=args.initial_labels,
        cycles=args.cycles,
        batch_size=args.batch_size,
        review_budget=args.review_budget,
        reviewers=args.reviewers or (args.reviewer_noise,) * 3,
        strategy=args.strategy,
        seed=args.seed,
        gold_share=args.gold_share,
        audit_share=args.audit_share,
        max_reviews_per_item=args.max_reviews,
        max_feedback_share=args.max_feedback_share,
    )
    result = simulate.run(spec, progress=progress)
    if args.json:
        emit_json(result)
        return 0
    print(
        table(
            result["cycles"],
            ["cycle", "answers", "labelled", "accuracy", "champion_version", "gate", "reviewed", "corrected"],
        )
    )
    final = result["final"]
    print(
        f"champion v{final['champion_version']}: holdout accuracy {final['initial_accuracy']:.3f} -> "
        f"{final['accuracy']:.3f} with {final['answers']} answers "
        f"({final['promotions']} promoted, {final['rejections']} rejected by the gate)"
    )
    return 0
