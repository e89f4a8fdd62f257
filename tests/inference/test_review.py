"""Review content and the meaning of answers (pure functions)."""

from __future__ import annotations

import re
import string
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from feedback_loop.core import config
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import review, review_image

pytestmark = pytest.mark.unit

OPENED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(**overrides) -> review.ReviewItem:
    values = {
        "item_id": 42,
        "trace_id": uuid.UUID("00000000-0000-4000-8000-000000000042"),
        "model_name": "digits",
        "model_version": 3,
        "input": {"pixel_0": 0.0, "pixel_1": 12.5, "note": "a|b"},
        "output_label": "3",
        "confidence": 0.46,
        "probabilities": {"3": 0.46, "8": 0.31, "5": 0.13, "9": 0.06, "1": 0.03, "7": 0.01},
        "slice": {"writer_group": "b"},
        "opened_at": OPENED,
    }
    return review.ReviewItem(**{**values, **overrides})


def answer(option: str, user: str | None = "alice", seconds: float = 90, **params) -> review.Answer:
    return review.Answer(
        chosen_options=[option],
        params_input={"corrected_label": None, "comment": None, **params},
        responded_at=OPENED + timedelta(seconds=seconds),
        responded_by={"id": user, "name": user} if user else None,
    )


def test_options_are_labels_by_probability_then_none_of_these_and_skip():
    content = review.build_review(item(), threshold=0.8)
    assert content.options == ["3", "8", "5", "9", "1", review.NONE_OF_THESE, review.SKIP]
    assert content.defaults == [review.SKIP]
    assert "digits v3" in content.subject and "'3'" in content.subject and "46%" in content.subject


def test_predicted_label_comes_first_even_when_probabilities_tie():
    tied = item(output_label="8", probabilities={"3": 0.5, "8": 0.5})
    assert review.build_review(tied).options[:2] == ["8", "3"]


def test_body_shows_prediction_alternatives_input_table_and_slice():
    body = review.build_review(item(), threshold=0.8).body
    assert "**Prediction:** 3 with confidence **46.0%** (below the review threshold 80%)" in body
    assert "| 1 | 3 | 46.0% |" in body and "| 2 | 8 | 31.0% |" in body
    assert "| feature | value | feature | value | feature | value |" in body
    assert "| pixel\\_0 | 0 | pixel\\_1 | 12.5 | note | a\\|b |" in body  # pipes escaped, table intact
    assert "writer\\_group=b" in body
    assert str(item().trace_id) in body


HOSTILE = {
    "link": "[click](http://evil.example) <img src=x>",
    "auto": "www.evil.example mail@evil.example",
    "markup": "{{ conn.password }} **bold** ~~gone~~ &amp; # no heading",
    "bidi": "\u202eesrever",
}


def unescaped_punctuation(markdown: str) -> list[str]:
    """ASCII punctuation in `markdown` that no backslash escapes (escaped pairs removed first)."""
    return [ch for ch in re.sub(r"\\[!-/:-@\[-`{-~]", "", markdown) if ch in string.punctuation]


def as_text(markdown: str) -> str:
    """The text remark-gfm looks for autolink literals in: escapes resolved."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


# What remark-gfm turns into links in text (mdast-util-gfm-autolink-literal: findUrl, findEmail).
AUTOLINK = re.compile(r"(https?://|www(?=\.))|[-.\w+]@[-\w]", re.IGNORECASE)


def test_input_values_cannot_inject_markdown_html_links_or_templates():
    hostile = item(input=HOSTILE)
    body = review.build_review(hostile).body
    table = review.input_table(hostile.input)
    assert table in body
    cells = [cell for line in table.splitlines()[2:] for cell in line.strip("| ").split(" | ")]
    values = dict(zip(cells[::2], cells[1::2], strict=True))
    assert sorted(values) == sorted(HOSTILE)
    for name, value in values.items():
        assert unescaped_punctuation(value) == [], (name, value)
        assert AUTOLINK.search(as_text(value)) is None, (name, value)
    # A reviewer reads exactly what the application sent (the word joiners are invisible) ...
    shown = {name: as_text(value).replace(review.LINK_BREAKER, "") for name, value in values.items()}
    assert shown == {**HOSTILE, "bidi": "esrever"}  # ... but no bidirectional override
    assert "\\<img src\\=x\\>" in values["link"] and "\\*\\*bold\\*\\*" in values["markup"]


def test_wide_inputs_wrap_into_rows_of_four_pairs():
    wide = item(input={f"pixel_{i}": float(i) for i in range(10)})
    table = review.input_table(wide.input)
    lines = table.splitlines()
    assert len(lines) == 2 + 3  # header, rule, ceil(10 / 4) rows
    assert all(line.count("|") == lines[0].count("|") for line in lines[2:])


def display(**fields) -> config.TableDisplay | config.ImageDisplay | config.TextDisplay:
    """An input_display as the config file would give it (validated the same way)."""
    return config.ModelConfig.model_validate(
        {"name": "m", "label_column": "y", "training_data": {"path": "f.csv"}, "input_display": fields}
    ).input_display


IMAGE = {"kind": "image", "width": 2, "height": 2, "columns": "pixel_{i}", "value_range": [0, 16]}
PIXELS = {"pixel_0": 0.0, "pixel_1": 16.0, "pixel_2": 8.0, "pixel_3": 4.0}


def test_the_input_is_a_table_unless_the_model_says_otherwise():
    default = review.build_review(item()).body
    assert default == review.build_review(item(), display=display(kind="table")).body
    assert "![" not in default and "\n> " not in default


def test_an_image_model_links_its_picture_above_the_table_of_values():
    pixels = item(input={**PIXELS, "writer": "x"})
    body = review.build_review(pixels, display=display(**IMAGE)).body
    url = f"feedback-dashboard/review-images/{pixels.trace_id}.png"
    assert url == review_image.url(pixels.trace_id)
    picture = f"![the input drawn as a picture of 2 x 2 pixels]({url})"
    assert picture in body
    # The values stay below the picture, for reviewers and screen readers.
    table = review.input_table(pixels.input)
    assert body.index("**Input**") < body.index(picture) < body.index(table)
    assert "| pixel\\_0 | 0 | pixel\\_1 | 16 |" in body
    # Relative: resolved against the Airflow UI's <base href>, so react-markdown keeps it (no scheme,
    # no data: URI) and it reaches our plugin on the UI's origin.
    assert not url.startswith(("/", "data:", "http")) and ":" not in url


def test_an_image_model_whose_input_cannot_be_drawn_gets_its_table_and_the_reason():
    missing = item(input={"pixel_0": 1.0, "pixel_1": 2.0})
    body = review.build_review(missing, display=display(**IMAGE)).body
    assert "![" not in body
    assert "_No picture: the input lacks pixel column\\(s\\) pixel\\_2\\, pixel\\_3._" in body
    assert review.input_table(missing.input) in body

    hostile = item(input={**PIXELS, "pixel_2": "<img src=x onerror=alert(1)>", "pixel_3": True})
    body = review.build_review(hostile, display=display(**IMAGE)).body
    assert "![" not in body
    assert "pixel column\\(s\\) pixel\\_2\\, pixel\\_3 are not finite numbers" in body
    assert "\\<img src\\=x onerror\\=alert\\(1\\)\\>" in body


TEXT = {"kind": "text", "column": "message", "max_chars": 2000}


def quoted_lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith(">")]


def test_a_text_model_quotes_the_column_as_typed_and_tables_the_rest():
    message = (
        "Dear team,\n\n"
        + " ".join(HOSTILE.values())
        + "\n    indented code?\n# heading\n1. a list\n| a | b |\nends with \\"
    )
    text = item(input={"message": message, "channel": "mail"})
    body = review.build_review(text, display=display(**TEXT)).body
    lines = quoted_lines(body)
    assert lines[0] == "> Dear team\\,"  # a paragraph of its own
    assert lines[1] == ">"
    assert len(lines) == 2 + 6  # every line of the text kept, each on its own line
    assert all(line.endswith("\\") for line in lines[2:-1])  # hard line breaks inside the paragraph
    assert lines[-1] == "> ends with \\\\"  # an escaped backslash, no hard break after the last line
    assert AUTOLINK.search(as_text(body)) is None
    for n, line in enumerate(lines):
        # Every character of the text is literal: a line's only unescaped punctuation is the quote marker
        # and the hard-break backslash at the end of a paragraph's inner lines.
        inner = n < len(lines) - 1 and lines[n + 1] != ">"
        assert unescaped_punctuation(line.removesuffix("\\") if inner else line) == [">"], line
    assert "> indented code?" not in body and "> indented code\\?\\" in body  # no code block
    assert "\u202e" not in body
    assert "*message*:" in body
    other = body[body.index("*Other values*") :]
    assert "| channel | mail |" in other and "message |" not in other


def test_a_long_text_is_cut_and_says_how_much_is_left_out():
    text = item(input={"message": "word " * 1000})
    body = review.build_review(text, display=display(**{**TEXT, "max_chars": 100})).body
    (line,) = quoted_lines(body)
    assert len(line) <= 2 + 100
    assert "_(4,900 more characters not shown)_" in body
    assert "*Other values*" not in body  # the text was the whole input


def test_a_text_model_without_its_column_or_text_shows_why():
    missing = item(input={"channel": "mail"})
    body = review.build_review(missing, display=display(**TEXT)).body
    assert "_No text: the input has no column message._" in body
    assert "| channel | mail |" in body
    blank = item(input={"message": " \n\t\n "})
    assert "_(empty text)_" in review.build_review(blank, display=display(**TEXT)).body


def test_class_labels_that_clash_with_review_options_are_refused():
    with pytest.raises(InvalidInputError, match="clash with review options"):
        review.build_review(item(probabilities={"None of these": 0.6, "3": 0.4}))


def test_confirmation_is_a_thumbs_up_carrying_the_predicted_label():
    outcome = review.outcome_of_answer(item(), answer("3", seconds=90))
    assert outcome.status == "answered"
    fb = outcome.feedback
    assert (fb.kind, fb.label, fb.user_id, fb.source, fb.review_item_id) == (
        "thumbs_up",
        "3",
        "alice",
        "review",
        42,
    )
    assert fb.latency_seconds == 90
    assert fb.trace_id == item().trace_id


def test_another_listed_label_is_a_correction():
    fb = review.outcome_of_answer(item(), answer("8", user="bob", comment=" loop at the top ")).feedback
    assert (fb.kind, fb.label, fb.user_id, fb.comment) == ("correction", "8", "bob", "loop at the top")


def test_none_of_these_with_a_label_is_a_correction_to_that_label():
    fb = review.outcome_of_answer(item(), answer(review.NONE_OF_THESE, corrected_label="4")).feedback
    assert (fb.kind, fb.label) == ("correction", "4")


def test_none_of_these_naming_the_predicted_label_is_a_confirmation():
    fb = review.outcome_of_answer(item(), answer(review.NONE_OF_THESE, corrected_label="3")).feedback
    assert (fb.kind, fb.label) == ("thumbs_up", "3")


def test_none_of_these_without_a_label_is_a_thumbs_down():
    outcome = review.outcome_of_answer(item(), answer(review.NONE_OF_THESE, corrected_label="  "))
    assert (outcome.status, outcome.feedback.kind, outcome.feedback.label) == (
        "answered",
        "thumbs_down",
        None,
    )


def test_skip_closes_the_item_and_keeps_only_a_comment():
    assert review.outcome_of_answer(item(), answer(review.SKIP)).feedback is None
    with_comment = review.outcome_of_answer(item(), answer(review.SKIP, comment="blurry scan"))
    assert (with_comment.status, with_comment.feedback.kind, with_comment.feedback.comment) == (
        "answered",
        "comment",
        "blurry scan",
    )


def test_timeout_without_a_responder_expires_with_no_feedback():
    outcome = review.outcome_of_answer(item(), answer(review.SKIP, user=None))
    assert (outcome.status, outcome.feedback) == ("expired", None)


def test_latency_is_never_negative_and_absent_without_an_open_time():
    assert review.outcome_of_answer(item(), answer("3", seconds=-5)).feedback.latency_seconds == 0
    assert review.outcome_of_answer(item(opened_at=None), answer("3")).feedback.latency_seconds is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (review.Answer(["3", "8"], {}, OPENED, {"id": "a"}), "expected exactly one option"),
        (answer(review.NONE_OF_THESE, corrected_label="x" * 201), "corrected_label: at most 200"),
        (answer("3", comment="y" * 2001), "comment: at most 2000"),
    ],
)
def test_malformed_answers_name_the_field(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        review.outcome_of_answer(item(), bad)


def test_review_form_fields_are_optional_with_titles():
    schema = review.review_params_schema()
    assert set(schema) == {"corrected_label", "comment"}
    assert all(
        spec["default"] is None and "null" in spec["type"] and spec["title"] for spec in schema.values()
    )


def test_any_subset_of_the_forms_fields_is_an_answer_and_each_problem_names_its_field():
    options = ["a", "b", review.NONE_OF_THESE, review.SKIP]
    assert review.answer_problems(options, ["a"], {}) == []
    assert review.answer_problems(options, ["a"], {"comment": "only a comment"}) == []
    assert review.answer_problems(options, [review.NONE_OF_THESE], {"corrected_label": "c"}) == []
    found = review.answer_problems(
        options, ["z"], {"corrected_label": 7, "comment": "x" * 5000, "mood": "?", "other": None}
    )
    assert [field for field, _ in found] == [
        "chosen_options",
        "params_input.corrected_label",
        "params_input.comment",
        "params_input.mood",
        "params_input.other",
    ]
    assert review.answer_problems(options, ["a", "b"], {})[0] == (
        "chosen_options",
        "choose exactly one option, got 2",
    )
    (label,) = review.answer_problems(options, ["a"], {"corrected_label": "c"})
    assert label[0] == "params_input.corrected_label" and "None of these" in label[1]


def test_an_answer_airflow_accepted_unchecked_is_made_usable_never_refused():
    from datetime import UTC, datetime

    given = review.Answer(
        [],
        {"corrected_label": "L" * 300, "comment": "c" * 2100 + "\x00", "mood": "happy", "n": 3},
        datetime.now(UTC),
        {"id": "ann"},
    )
    fixed, notes = review.usable(given)
    assert fixed.chosen_options == [review.SKIP]
    assert set(fixed.params_input) == {"corrected_label", "comment"}
    assert fixed.params_input["corrected_label"] is None
    assert (
        len(fixed.params_input["comment"]) == review.MAX_COMMENT_LENGTH
        and "\x00" not in fixed.params_input["comment"]
    )
    # two unknown fields dropped, NUL removed, label kept as comment, comment cut, no option taken as skip
    assert len(notes) == 6, notes
    # A timed-out review (no responder) keeps its empty choice: it expires, it is not a skip.
    timed_out = review.Answer([], {}, datetime.now(UTC), None)
    assert review.usable(timed_out)[0].chosen_options == []


def test_a_reviewer_comment_is_masked_like_any_other():
    """Issue 14: a reviewer pasting a customer's e-mail or card number into the comment."""
    given = answer(review.SKIP, comment="customer jane@example.org paid with 4111 1111 1111 1111")
    feedback = review.outcome_of_answer(item(), given).feedback
    assert feedback is not None and feedback.comment == "customer [email] paid with [card]"
