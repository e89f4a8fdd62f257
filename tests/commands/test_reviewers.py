"""`feedback-loop reviewers list`: reliability, agreement and second opinions through the CLI."""

from __future__ import annotations

import json

import pytest

from feedback_loop import cli
from feedback_loop.core import store

from ..support.helpers import make_predictions, register_toy, run_cli

pytestmark = pytest.mark.integration


def answer(conn, trace, reviewer: str, label: str) -> None:
    kind = "thumbs_up" if label == "a" else "correction"
    store.record_feedback(
        conn,
        store.FeedbackIn(trace_id=trace, kind=kind, label=label, user_id=reviewer, source="review"),
    )


def test_reviewers_list_shows_each_reviewers_reliability_and_the_agreement(conn, capsys):
    register_toy(conn, model_name="digits")
    traces = make_predictions(conn, "digits", 1, 12, confidence=0.6)
    # ann and bob answer every trace; they agree on ten and differ on two. cy answers three alone.
    for i, trace in enumerate(traces):
        answer(conn, trace, "ann", "a")
        answer(conn, trace, "bob", "b" if i < 2 else "a")
    for trace in traces[:3]:
        answer(conn, trace, "cy", "b")
    conn.commit()

    assert cli.main(["reviewers", "list", "--model", "digits", "--refresh", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    people = {r["reviewer"]: r for r in found["reviewers"]}
    assert set(people) == {"ann", "bob", "cy"}
    assert people["ann"]["answers"] == 12 and people["bob"]["answers"] == 12 and people["cy"]["answers"] == 3
    assert people["ann"]["agreement"]["of"] == 12
    assert people["ann"]["estimated_accuracy"] > people["cy"]["estimated_accuracy"]
    for person in people.values():
        assert person["accuracy_upper"] >= person["estimated_accuracy"]
        assert person["below_threshold"] is False, "three or twelve answers never make anyone credibly poor"
    assert found["traces_with_several_answers"] == 12
    assert found["krippendorff_alpha"] is not None and found["krippendorff_alpha"] < 1

    assert cli.main(["reviewers", "list", "--model", "digits"]) == 0
    shown = capsys.readouterr().out
    assert "Krippendorff's alpha" in shown and "ann" in shown and "estimated_accuracy" in shown


def test_reviewers_list_of_an_unknown_model_exits_2_with_one_line():
    result = run_cli("reviewers", "list", "--model", "nope")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
    assert "nope" in result.stderr
