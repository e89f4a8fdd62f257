"""Consensus labels and reviewer reliability stored in PostgreSQL, and when a trace needs another opinion."""

from __future__ import annotations

import logging
import uuid

import pytest

from feedback_loop.core import config, store
from feedback_loop.core.config import ReviewConfig
from feedback_loop.labels import consensus, report
from feedback_loop.labels import store as labels
from feedback_loop.labels.consensus import Answer

from ..support.helpers import make_predictions, register_toy

pytestmark = pytest.mark.integration

RULES = ReviewConfig()


def test_a_correction_the_consensus_believes_is_settled_one_it_doubts_is_asked_again():
    believed = [Answer("t", "ann", label="b")]
    assert not labels.needs_another_opinion(believed, "a", "b", 0.85, RULES)
    assert labels.needs_another_opinion(believed, "a", "b", 0.6, RULES)


def test_an_answer_the_model_outweighs_is_asked_again():
    assert labels.needs_another_opinion([Answer("t", "ann", label="b")], "a", "a", 0.9, RULES)


def test_two_agreeing_reviewers_or_the_limit_settle_it():
    two = [Answer("t", "ann", label="b"), Answer("t", "bob", label="b")]
    assert not labels.needs_another_opinion(two, "a", "b", 0.7, RULES)
    three = [Answer("t", "ann", label="b"), Answer("t", "bob", label="c"), Answer("t", "cy", label="a")]
    assert not labels.needs_another_opinion(three, "a", "a", 0.4, RULES), "max_reviews_per_item is 3"


def test_a_confirmation_needs_no_second_opinion_unless_its_reviewer_is_unreliable_or_the_label_contested():
    confirmed = [Answer("t", "ann", label="a")]
    assert not labels.needs_another_opinion(confirmed, "a", "a", 0.95, RULES)
    assert labels.needs_another_opinion(confirmed, "a", "a", 0.95, RULES, {"ann"})
    contested = ReviewConfig(contested_labels=["a"], consensus_confidence=0.99)
    assert labels.needs_another_opinion(confirmed, "a", "a", 0.95, contested)


def _answer(conn, trace, reviewer: str, label: str) -> None:
    store.record_feedback(
        conn,
        store.FeedbackIn(trace_id=trace, kind="correction", label=label, user_id=reviewer, source="review"),
    )


def _toy_model() -> config.ModelConfig:
    return config.parse(
        "models:\n  - {name: toy, label_column: y, training_data: {path: x.csv}}\n", "toy.yaml"
    ).model("toy")


def test_refresh_stores_one_consensus_per_trace_and_each_reviewers_estimate(conn):
    register_toy(conn, model_name="toy")
    traces = make_predictions(conn, "toy", 1, 12, confidence=0.6)  # plausible either way
    # ann and bob agree on every trace; cy answers after them and is wrong on all but two.
    for i, trace in enumerate(traces):
        _answer(conn, trace, "ann", "b")
        _answer(conn, trace, "bob", "b")
        _answer(conn, trace, "cy", "b" if i < 2 else "a")
    conn.commit()
    model = _toy_model()

    refreshed = labels.refresh(conn, model)
    conn.commit()

    stored = labels.consensus_labels(conn, "toy")
    assert len(stored) == 12 and {row["label"] for row in stored.values()} == {"b"}
    assert {row["status"] for row in stored.values()} == {"corroborated"}
    accuracy = labels.stored_reliability(conn, "toy", model.review.min_reviewer_accuracy).accuracy
    assert accuracy["cy"] < model.review.min_reviewer_accuracy < min(accuracy["ann"], accuracy["bob"])
    assert {s.reviewer: s.compared for s in refreshed.reviewers} == {"ann": 12, "bob": 12, "cy": 12}
    people = {p["reviewer"]: p for p in report.reviewers(conn, "toy", model.review)["reviewers"]}
    assert people["cy"]["below_threshold"] and not people["ann"]["below_threshold"]
    assert people["cy"]["agreement"]["correct"] == 2 and people["cy"]["agreement"]["interval"][1] < 0.5


def test_a_lone_answer_weighs_what_its_reviewers_record_vouches_for(conn):
    """A trace one person answered keeps, as its probability (its training weight), the consensus with that
    person read at the lower end of their credible interval: a newcomer's lone correction weighs less than
    one from a reviewer whose answers agreed with others' many times, and less than its point estimate
    would give, yet it needs no second opinion for that (decided on the point estimate). The per-answer
    update and the refresh agree."""
    register_toy(conn, model_name="toy")
    shared = make_predictions(conn, "toy", 1, 20, confidence=0.6)  # a at 0.6, b at 0.4
    ann_alone, dee_alone, eve_alone = make_predictions(conn, "toy", 1, 3, confidence=0.6)
    for i, trace in enumerate(shared):  # ann and bob agree on twenty traces: a record for both
        for person in ("ann", "bob") if i % 2 else ("bob", "ann"):  # a first answer is not counted
            _answer(conn, trace, person, "b")
    _answer(conn, ann_alone, "ann", "b")
    _answer(conn, dee_alone, "dee", "b")  # dee has answered nothing anyone else answered
    conn.commit()
    model = _toy_model()

    refreshed = labels.refresh(conn, model)
    conn.commit()
    by_trace = {t.trace_id: t for t in refreshed.traces}
    ann, dee = by_trace[str(ann_alone)], by_trace[str(dee_alone)]
    assert ann.status == dee.status == labels.SINGLE and ann.label == dee.label == "b"
    item = consensus.Item("x", {"a": 0.6, "b": 0.4})
    point = consensus.posterior(
        item, [Answer("x", "dee", label="b")], refreshed.estimate.accuracy, ["a", "b"]
    )
    newcomer = consensus.credible_lower(0, 0)
    assert dee.probability == pytest.approx(
        consensus.posterior(item, [Answer("x", "dee", label="b")], {"dee": newcomer}, ["a", "b"])["b"]
    )
    assert dee.probability < ann.probability < by_trace[str(shared[0])].probability
    assert dee.probability < point["b"] - 0.2
    assert not dee.needs_another_opinion, "the point estimate trusts dee enough to skip a second opinion"
    row = conn.execute(
        "SELECT probability, point_probability FROM consensus_labels WHERE trace_id = %s", (dee_alone,)
    ).fetchone()
    assert row["probability"] == pytest.approx(dee.probability)
    assert row["point_probability"] == pytest.approx(dee.point_probability) == pytest.approx(point["b"])
    stored = labels.stored_reliability(conn, "toy", model.review.min_reviewer_accuracy)
    assert stored.cautious["dee"] == pytest.approx(newcomer)
    assert stored.cautious["dee"] < stored.accuracy["dee"] and stored.cautious["ann"] > newcomer

    again = labels.update_trace(conn, "toy", model.review, str(dee_alone))
    assert again is not None and again.probability == pytest.approx(dee.probability)
    ann_again = labels.update_trace(conn, "toy", model.review, str(ann_alone))
    assert ann_again is not None and ann_again.probability == pytest.approx(ann.probability)
    _answer(conn, eve_alone, "eve", "b")  # a reviewer no refresh has seen yet
    first = labels.update_trace(conn, "toy", model.review, str(eve_alone))
    assert first is not None and first.probability == pytest.approx(dee.probability)
    conn.commit()
    people = {p["reviewer"]: p for p in report.reviewers(conn, "toy", model.review)["reviewers"]}
    for person in people.values():
        assert person["accuracy_lower"] <= person["estimated_accuracy"] <= person["accuracy_upper"]


def test_reading_a_lone_reviewer_cautiously_never_makes_a_label_they_argued_against_surer(conn):
    """A prediction the model was sure of (a at 0.99) and one newcomer saying b: the consensus keeps a, and
    its probability stays what the point estimate gives; reading the newcomer cautiously would raise it."""
    register_toy(conn, model_name="toy")
    (trace,) = make_predictions(conn, "toy", 1, 1, confidence=0.99)
    _answer(conn, trace, "new", "b")
    conn.commit()
    result = labels.update_trace(conn, "toy", RULES, str(trace))
    assert result is not None and result.label == "a"
    item = consensus.Item("x", {"a": 0.99, "b": 0.01})
    at = {
        r: consensus.posterior(item, [Answer("x", "new", label="b")], {"new": r}, ["a", "b"])["a"]
        for r in (consensus.prior_accuracy(), consensus.newcomer_lower())
    }
    assert at[consensus.newcomer_lower()] > at[consensus.prior_accuracy()], "the case this test is about"
    assert result.probability == pytest.approx(result.point_probability)
    assert result.probability == pytest.approx(at[consensus.prior_accuracy()])
    assert result.needs_another_opinion, "a reviewer the model overrules is asked again"


def test_before_the_first_refresh_with_the_lower_end_a_known_reviewer_is_trusted_alone_as_a_newcomer(conn):
    """Rows written before migration 0014 have no lower end until the next refresh: a lone answer is then
    not trusted beyond a newcomer's, nor beyond the reviewer's point estimate."""
    for reviewer, accuracy in (("steady", 0.95), ("shaky", 0.6)):
        conn.execute(
            "INSERT INTO reviewer_accuracy (model_name, reviewer, accuracy, answers, gold_answers, gold_correct,"
            " compared, agreed) VALUES ('toy', %s, %s, 10, 0, 0, 10, 8)",
            (reviewer, accuracy),
        )
    stored = labels.stored_reliability(conn, "toy", 0.7)
    assert stored.cautious["steady"] == pytest.approx(consensus.newcomer_lower())
    assert stored.cautious["shaky"] == pytest.approx(0.6)
    assert stored.cautious_of("nobody") == pytest.approx(consensus.newcomer_lower())


def test_a_refresh_is_skipped_until_an_answer_comes_or_the_review_settings_change(conn, caplog, monkeypatch):
    """Aggregation refreshes only then: the estimates would come out the same, at a cost that grows with
    every answer the model ever got."""
    caplog.set_level(logging.INFO, logger="feedback_loop")
    register_toy(conn, model_name="toy")
    traces = [uuid.uuid4() for _ in range(4)]
    store.log_predictions(
        conn, [store.Prediction(t, "toy", 1, {"f0": 1.0}, "a", 0.6, {"a": 0.6, "b": 0.4}) for t in traces]
    )
    for trace in traces[:3]:
        _answer(conn, trace, "ann", "b")
    conn.commit()
    yaml = "models:\n  - {name: toy, label_column: y, training_data: {path: x.csv}%s}\n"
    model = config.parse(yaml % "", "toy.yaml").model("toy")

    assert labels.refresh_if_changed(conn, model) is not None  # never refreshed
    conn.commit()
    assert labels.refresh_if_changed(conn, model) is None
    assert "unchanged since" in caplog.text and "(3 answer(s), none new)" in caplog.text
    _answer(conn, traces[3], "bob", "a")
    conn.commit()
    refreshed = labels.refresh_if_changed(conn, model)
    assert refreshed is not None and len(refreshed.traces) == 4
    conn.commit()
    assert labels.refresh_if_changed(conn, model) is None
    stricter = config.parse(yaml % ", review: {min_reviewer_accuracy: 0.9}", "toy.yaml").model("toy")
    assert labels.refresh_if_changed(conn, stricter) is not None
    conn.commit()
    assert labels.refresh_if_changed(conn, stricter) is None
    labels.refresh(conn, stricter)  # a refresh by retraining or the CLI counts as the last one too
    conn.commit()
    assert labels.refresh_if_changed(conn, stricter) is None
    monkeypatch.setattr(consensus, "RULES_VERSION", consensus.RULES_VERSION + 1)  # a deploy changed them
    assert labels.refresh_if_changed(conn, stricter) is not None
    conn.commit()
    assert labels.refresh_if_changed(conn, stricter) is None
    conn.execute("UPDATE consensus_refreshes SET refreshed_at = now() - interval '25 hours'")
    assert labels.refresh_if_changed(conn, stricter) is not None  # a day old: refreshed all the same
