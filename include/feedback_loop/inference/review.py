"""What a reviewer sees and what their answer means: pure functions, no database, no Airflow.

`build_review` turns a prediction into the content of one review task (subject, markdown body, options,
defaults). `outcome_of_answer` turns the response into feedback rows for the store and the review item's
final status. The Airflow adapter (adapters/airflow_hitl.py) only moves these values in and out of
Airflow's human-in-the-loop operator.
"""

from __future__ import annotations

import math
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from feedback_loop.core import privacy
from feedback_loop.core.config import ImageDisplay, InputDisplay, TableDisplay, TextDisplay
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import review_image
from feedback_loop.inference.review_form import (
    COMMENT,
    CORRECTED_LABEL,
    MAX_COMMENT_LENGTH,
    MAX_LABEL_LENGTH,
    NONE_OF_THESE,
    SKIP,
)
from feedback_loop.inference.review_form import (
    review_params_schema as review_params_schema,  # where it lived before review_form
)

if TYPE_CHECKING:
    # The store imports psycopg; DAG files import this module at parse time, so only type-check it.
    from feedback_loop.core.store import FeedbackIn

RESERVED_OPTIONS = (NONE_OF_THESE, SKIP)
# The option an unanswered review falls back to when its response timeout passes: it carries no label,
# so a timeout never turns into a silent confirmation of the model.
DEFAULT_OPTION = SKIP
MAX_LABEL_OPTIONS = 5
TABLE_PAIRS_PER_ROW = 4


@dataclass(frozen=True)
class ReviewItem:
    """A review item joined with its prediction: everything needed to ask and to record the answer."""

    item_id: int
    trace_id: uuid.UUID
    model_name: str
    model_version: int
    input: dict[str, Any]
    output_label: str
    confidence: float
    probabilities: dict[str, float]
    slice: dict[str, Any] = field(default_factory=dict)
    opened_at: datetime | None = None


@dataclass(frozen=True)
class ReviewContent:
    subject: str
    body: str
    options: list[str]
    defaults: list[str]


@dataclass(frozen=True)
class Answer:
    """A response as Airflow's HITL operator returns it; `responded_by` is None when it timed out."""

    chosen_options: list[str]
    params_input: dict[str, Any]
    responded_at: datetime
    responded_by: Mapping[str, Any] | None


@dataclass(frozen=True)
class Outcome:
    status: str  # answered | expired
    feedback: FeedbackIn | None
    summary: str


def ranked_labels(probabilities: Mapping[str, float]) -> list[tuple[str, float]]:
    """Labels by probability, highest first; ties broken by label so the order is stable."""
    return sorted(((str(k), float(v)) for k, v in probabilities.items()), key=lambda kv: (-kv[1], kv[0]))


def label_options(item: ReviewItem, max_labels: int = MAX_LABEL_OPTIONS) -> list[str]:
    """Candidate labels ordered by probability; the predicted label always comes first."""
    labels = [label for label, _ in ranked_labels(item.probabilities)]
    if item.output_label in labels:
        labels.remove(item.output_label)
    labels.insert(0, item.output_label)
    clashes = sorted(set(labels) & set(RESERVED_OPTIONS))
    if clashes:
        raise InvalidInputError(
            f"model {item.model_name!r}: class label(s) {clashes} clash with review options"
        )
    return labels[:max_labels]


# CommonMark lets a backslash escape any ASCII punctuation, and an escaped character is always literal, so
# all of it is escaped (not only what starts markup today): tables, strikethrough and HTML stay text.
MARKDOWN_SPECIAL = frozenset(string.punctuation)
# GFM's autolink literals (`www.x`, `http://x`, `a@b.c`) are found by remark-gfm in the text *after*
# escapes are resolved, so escaping cannot stop them (seen in Airflow's UI). An invisible word joiner
# before every `.`, `:` and `@` does: each pattern needs those characters right after a letter or digit.
LINK_BREAKER = "\u2060"
AUTOLINK_PUNCTUATION = frozenset(".:@")


def _inert(text: str) -> str:
    """Text as literal markdown: every ASCII punctuation character escaped, no autolink possible."""
    return "".join(
        (LINK_BREAKER if ch in AUTOLINK_PUNCTUATION else "") + (f"\\{ch}" if ch in MARKDOWN_SPECIAL else ch)
        for ch in text
    )


def _cell(value: Any) -> str:
    """A value as inert markdown: inputs come from applications, so nothing in them may become a link,
    an image, HTML or a broken table in the reviewer's UI."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    return _inert(_visible(str(value))[:80])


def _visible(text: str) -> str:
    """One line of what a person can see: control and invisible characters (bidirectional overrides,
    zero-width spaces) become spaces, runs of white space one space, none at either end."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def quoted_text(value: Any, max_chars: int) -> str:
    """A long text as a markdown block quote that shows it as typed: its line breaks kept, markup inert.

    Each line is `_visible`: nothing can indent a line into a code block or hide text from the
    reviewer."""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    left_out = max(0, len(text) - max_chars)
    paragraphs: list[list[str]] = [[]]
    for raw in text[:max_chars].split("\n"):
        line = _visible(raw)
        if line:
            paragraphs[-1].append(_inert(line))
        elif paragraphs[-1]:
            paragraphs.append([])
    paragraphs = [p for p in paragraphs if p]
    if not paragraphs:
        return "_(empty text)_"
    # A backslash at the end of a line is a hard line break; a line ending in an escaped character
    # ("\\.") still ends in that break, because the escape is read first.
    quoted = "\n>\n".join("> " + "\\\n> ".join(lines) for lines in paragraphs)
    if left_out:
        quoted += f"\n\n_({left_out:,} more characters not shown)_"
    return quoted


def input_table(values: Mapping[str, Any], pairs_per_row: int = TABLE_PAIRS_PER_ROW) -> str:
    """The input as a markdown table; wide inputs wrap into several feature/value column pairs."""
    items = list(values.items())
    if not items:
        return "_(empty input)_"
    pairs = max(1, min(pairs_per_row, len(items)))
    header = "| " + " | ".join(["feature | value"] * pairs) + " |"
    rule = "|" + "---|---|" * pairs
    lines = [header, rule]
    for start in range(0, len(items), pairs):
        chunk = items[start : start + pairs]
        cells = [f"{_cell(k)} | {_cell(v)}" for k, v in chunk]
        cells += ["  |  "] * (pairs - len(chunk))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def input_section(item: ReviewItem, display: InputDisplay | None = None) -> list[str]:
    """The input as the model's `input_display` says: a table; a picture of a pixel vector above the
    table of its values (reviewers and screen readers still need the numbers); or a text column as a
    quoted block above the table of the other values. An input the picture or the text cannot be drawn
    from still gets its table, with a line saying why."""
    display = display or TableDisplay()
    if isinstance(display, ImageDisplay):
        try:
            review_image.pixel_values(item.input, display)
        except InvalidInputError as exc:
            return [f"_No picture: {_inert(str(exc))}._", "", input_table(item.input)]
        alt = f"the input drawn as a picture of {display.width} x {display.height} pixels"
        return [f"![{alt}]({review_image.url(item.trace_id)})", "", input_table(item.input)]
    if isinstance(display, TextDisplay):
        if display.column not in item.input:
            return [
                f"_No text: the input has no column {_cell(display.column)}._",
                "",
                input_table(item.input),
            ]
        others = {k: v for k, v in item.input.items() if k != display.column}
        lines = [
            f"*{_cell(display.column)}*:",
            "",
            quoted_text(item.input[display.column], display.max_chars),
        ]
        if others:
            lines += ["", "*Other values*", "", input_table(others)]
        return lines
    return [input_table(item.input)]


def build_review(
    item: ReviewItem,
    threshold: float | None = None,
    max_labels: int = MAX_LABEL_OPTIONS,
    display: InputDisplay | None = None,
) -> ReviewContent:
    """Subject, markdown body, options (labels by probability, then "None of these" and skip) and
    defaults (skip) of the review task for one prediction; `display` is the model's `input_display`
    (default: the input as a table)."""
    options = label_options(item, max_labels)
    ranked = ranked_labels(item.probabilities)
    subject = (
        f"{item.model_name} v{item.model_version}: is it {item.output_label!r}? "
        f"(confidence {item.confidence:.0%})"
    )
    lines = [
        f"**Prediction:** {_cell(item.output_label)} with confidence **{item.confidence:.1%}**"
        + (f" (below the review threshold {threshold:.0%})" if threshold is not None else ""),
        "",
        "**Top alternatives**",
        "",
        "| rank | label | probability |",
        "|---|---|---|",
    ]
    for rank, (label, probability) in enumerate(ranked[: max(max_labels, 1)], start=1):
        lines.append(f"| {rank} | {_cell(label)} | {probability:.1%} |")
    lines += ["", "**Input**", "", *input_section(item, display)]
    if item.slice:
        lines += ["", "**Slice:** " + ", ".join(f"{_cell(k)}={_cell(v)}" for k, v in item.slice.items())]
    lines += [
        "",
        f"Pick the correct label. If it is not listed, choose *{NONE_OF_THESE}* and type it in "
        f"*Corrected label*. Choose *{SKIP}* if you cannot decide; a comment is always welcome.",
        "",
        f"Trace `{item.trace_id}` · review item {item.item_id}",
    ]
    return ReviewContent(
        subject=subject,
        body="\n".join(lines),
        options=options + list(RESERVED_OPTIONS),
        defaults=[DEFAULT_OPTION],
    )


ANSWER_FIELDS = (CORRECTED_LABEL, COMMENT)
LIMITS = {CORRECTED_LABEL: MAX_LABEL_LENGTH, COMMENT: MAX_COMMENT_LENGTH}


def answer_problems(
    options: Sequence[str], chosen_options: Sequence[str], params_input: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """Why an answer cannot be recorded as given, as (field, reason) pairs; empty when it can. Any subset of
    the review's fields is an answer: one option, optionally a corrected label and a comment."""
    found: list[tuple[str, str]] = []
    if len(chosen_options) != 1:
        found.append(("chosen_options", f"choose exactly one option, got {len(chosen_options)}"))
    elif chosen_options[0] not in options:
        found.append(
            ("chosen_options", f"{chosen_options[0]!r} is not an option of this review: {list(options)}")
        )
    for key, value in params_input.items():
        field = f"params_input.{key}"
        if key not in ANSWER_FIELDS:
            found.append((field, f"is not a field of this review (fields: {', '.join(ANSWER_FIELDS)})"))
        elif value is not None and not isinstance(value, str):
            found.append((field, f"must be text or null, got {type(value).__name__}"))
        elif value is not None and len(value.strip()) > LIMITS[key]:
            found.append((field, f"must be at most {LIMITS[key]} characters (got {len(value.strip())})"))
        elif value is not None and "\x00" in value:
            found.append((field, "must not contain NUL (\\u0000) characters"))
    label = params_input.get(CORRECTED_LABEL)
    if isinstance(label, str) and label.strip() and chosen_options and chosen_options[0] != NONE_OF_THESE:
        found.append((f"params_input.{CORRECTED_LABEL}", f"is only for the option {NONE_OF_THESE!r}"))
    return found


def usable(answer: Answer) -> tuple[Answer, list[str]]:
    """The answer as it can be recorded, and what had to change. Answers sent to Airflow's own
    `PATCH .../hitlDetails` are accepted there without our checks (it checks only the options), and an
    accepted answer must never be lost: unknown fields are dropped, text is made text, NUL characters are
    removed, an over-long comment is cut, an over-long label is kept in the comment instead, and no option
    counts as skip."""
    notes: list[str] = []
    params: dict[str, Any] = {}
    for key, value in answer.params_input.items():
        if key not in ANSWER_FIELDS:
            notes.append(f"dropped the unknown field {key!r}")
            continue
        if value is not None and not isinstance(value, str):
            value = str(value)
        if value is not None and "\x00" in value:
            value = value.replace("\x00", "")
            notes.append(f"removed NUL characters from {key}")
        params[key] = value
    label = params.get(CORRECTED_LABEL)
    if label is not None and len(label.strip()) > MAX_LABEL_LENGTH:
        params[CORRECTED_LABEL] = None
        params[COMMENT] = (
            f"corrected label (too long to be one): {label.strip()}\n{params.get(COMMENT) or ''}"
        )
        notes.append(f"kept a {len(label.strip())}-character corrected label as a comment")
    comment = params.get(COMMENT)
    if comment is not None and len(comment.strip()) > MAX_COMMENT_LENGTH:
        params[COMMENT] = comment.strip()[: MAX_COMMENT_LENGTH - 1] + "…"
        notes.append(f"cut a {len(comment.strip())}-character comment to {MAX_COMMENT_LENGTH}")
    chosen = list(answer.chosen_options)
    if not chosen and answer.responded_by is not None:
        chosen = [SKIP]
        notes.append(f"no option was chosen: recorded as {SKIP!r}")
    return Answer(chosen, params, answer.responded_at, answer.responded_by), notes


def _text(params: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    if len(value) > limit:
        raise InvalidInputError(f"{key}: at most {limit} characters, got {len(value)}")
    return value or None


def outcome_of_answer(item: ReviewItem, answer: Answer) -> Outcome:
    """What an answer means for the feedback table and the review item.

    - no responder (the response timeout passed and Airflow applied the defaults): expired, no feedback;
    - the predicted label: a confirmation (thumbs_up carrying the predicted label);
    - another label, or "None of these" with a corrected label: a correction with that label;
    - "None of these" without a label: thumbs_down (wrong, right answer unknown);
    - skip: answered, and only a comment is kept if one was written.
    Confirmations and corrections are both labels for retraining.
    """
    from feedback_loop.core.store import FeedbackIn

    if answer.responded_by is None:
        return Outcome("expired", None, f"review item {item.item_id} expired without an answer")
    if len(answer.chosen_options) != 1:
        raise InvalidInputError(f"chosen_options: expected exactly one option, got {answer.chosen_options}")
    chosen = answer.chosen_options[0]
    corrected = _text(answer.params_input, CORRECTED_LABEL, MAX_LABEL_LENGTH)
    comment = privacy.mask_text(_text(answer.params_input, COMMENT, MAX_COMMENT_LENGTH))
    reviewer = str(answer.responded_by.get("id") or answer.responded_by.get("name") or "") or None
    latency = None
    if item.opened_at is not None:
        latency = max(0.0, (answer.responded_at - item.opened_at).total_seconds())

    def row(kind: str, label: str | None) -> FeedbackIn:
        return FeedbackIn(
            trace_id=item.trace_id,
            kind=kind,
            label=label,
            comment=comment,
            user_id=reviewer,
            source="review",
            review_item_id=item.item_id,
            latency_seconds=latency,
        )

    if chosen == SKIP:
        feedback = row("comment", None) if comment else None
        return Outcome("answered", feedback, f"{reviewer} skipped review item {item.item_id}")
    if chosen == NONE_OF_THESE:
        if corrected is None:
            return Outcome(
                "answered",
                row("thumbs_down", None),
                f"{reviewer} marked {item.output_label!r} wrong without a corrected label",
            )
        chosen = corrected
    if chosen == item.output_label:
        return Outcome("answered", row("thumbs_up", item.output_label), f"{reviewer} confirmed {chosen!r}")
    return Outcome(
        "answered",
        row("correction", chosen),
        f"{reviewer} corrected {item.output_label!r} to {chosen!r}",
    )
