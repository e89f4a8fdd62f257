"""One inference round against real PostgreSQL: score, log, queue, open reviews, record answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from feedback_loop.core import config
from feedback_loop.core.errors import IntegrityError
from feedback_loop.inference import review, reviews
from feedback_loop.inference import scoring as inference
from feedback_loop.registry import versions as registry

from ..support.helpers import register_toy

pytestmark = pytest.mark.integration

MODEL = config.parse(
    """
models:
  - name: toy
    label_column: y
    slice_columns: [region]
    training_data: {path: unused.csv}
    review_queue_max_age_hours: 2
    reviewers: [alice, bob]
""",
    "toy.yaml",
).model("toy")

REF = {"dag_id": "feedback_inference", "run_id": "run-1", "task_id": "review"}


@pytest.fixture
def champion(conn):
    version = register_toy(conn)
    registry.promote(conn, "toy", version.version, actor="test")
    conn.commit()
    return version


def enqueue(conn, inputs: list[dict], slices: list[dict] | None = None) -> None:
    slices = slices or [{} for _ in inputs]
    assert inference.enqueue_requests(conn, "toy", list(zip(inputs, slices, strict=True))) == len(inputs)
    conn.commit()


def rows(conn, sql: str) -> list[dict]:
    return conn.execute(sql).fetchall()


def test_score_batch_logs_every_prediction_marks_requests_and_queues_the_uncertain(conn, champion):
    f0 = [-3.0, 0.02, 2.5, -0.1, 0.3]
    enqueue(
        conn,
        [{"f0": v, "f1": 0.0, "region": "north" if i % 2 else "south"} for i, v in enumerate(f0)],
        [{"channel": "web"}] * len(f0),
    )
    result = inference.score_batch(conn, MODEL, threshold=0.8, batch_size=100, run_id="run-1")
    conn.commit()

    predictions = rows(conn, "SELECT * FROM predictions ORDER BY confidence")
    assert result.scored == len(predictions) == len(f0)
    assert {p["model_version"] for p in predictions} == {champion.version}
    assert {p["source_run_id"] for p in predictions} == {"run-1"}
    for p in predictions:
        assert set(p["probabilities"]) == {"a", "b"}
        assert sum(p["probabilities"].values()) == pytest.approx(1.0)
        assert p["confidence"] == pytest.approx(max(p["probabilities"].values()))
        assert p["output_label"] == max(p["probabilities"], key=p["probabilities"].get)
        assert p["slice"]["channel"] == "web" and p["slice"]["region"] in {"north", "south"}
    requests = rows(conn, "SELECT status, trace_id, scored_at FROM inference_requests")
    assert {r["status"] for r in requests} == {"scored"}
    assert {str(r["trace_id"]) for r in requests} == set(result.trace_ids)

    low = [p for p in predictions if p["confidence"] < 0.8]
    assert result.below_threshold == result.queued_now == result.queued_total == len(low) > 0
    items = rows(conn, "SELECT trace_id, status, reason, priority FROM review_items ORDER BY priority DESC")
    assert [i["trace_id"] for i in items] == [p["trace_id"] for p in low]
    assert {(i["status"], i["reason"]) for i in items} == {("queued", "low_confidence")}

    again = inference.score_batch(conn, MODEL, threshold=0.8, batch_size=100, run_id="run-2")
    assert (again.scored, again.queued_now, again.queued_total) == (0, 0, len(low))


def test_batch_size_limits_a_round_to_the_oldest_requests(conn, champion):
    enqueue(conn, [{"f0": float(i), "f1": 0.0} for i in range(5)])
    result = inference.score_batch(conn, MODEL, threshold=0.8, batch_size=2)
    conn.commit()
    assert result.scored == 2
    statuses = [r["status"] for r in rows(conn, "SELECT status FROM inference_requests ORDER BY id")]
    assert statuses == ["scored", "scored", "pending", "pending", "pending"]


def test_unreadable_requests_fail_with_a_reason_and_the_rest_is_scored(conn, champion):
    enqueue(conn, [{"f0": 1.0, "f1": 0.0}, {"f0": 2.0}, {"f0": "lots", "f1": 1.0}, {"f0": -1.0, "f1": None}])
    result = inference.score_batch(conn, MODEL, threshold=0.8, batch_size=10)
    conn.commit()
    assert (result.scored, result.failed) == (2, 2)
    requests = rows(conn, "SELECT status, error FROM inference_requests ORDER BY id")
    assert [r["status"] for r in requests] == ["scored", "failed", "failed", "scored"]
    assert requests[1]["error"] == "missing feature column(s): f1"
    assert requests[2]["error"].startswith("model could not read the input")
    assert rows(conn, "SELECT count(*) AS n FROM predictions")[0]["n"] == 2


def test_tampered_champion_raises_and_stores_nothing(conn, champion):
    enqueue(conn, [{"f0": 0.01, "f1": 0.0}])
    champion.artifact_path.write_bytes(champion.artifact_path.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        inference.score_batch(conn, MODEL, threshold=0.8, batch_size=10)
    conn.rollback()
    assert rows(conn, "SELECT count(*) AS n FROM predictions")[0]["n"] == 0
    assert rows(conn, "SELECT status FROM inference_requests")[0]["status"] == "pending"


def test_queued_items_older_than_the_max_age_expire(conn, champion):
    enqueue(conn, [{"f0": 0.01, "f1": 0.0}, {"f0": -0.02, "f1": 0.0}])
    inference.score_batch(conn, MODEL, threshold=0.8, batch_size=10)
    conn.execute("UPDATE review_items SET created_at = now() - interval '3 hours' WHERE id = 1")
    conn.commit()
    result = inference.score_batch(conn, MODEL, threshold=0.8, batch_size=10)
    conn.commit()
    assert (result.expired, result.queued_total) == (1, 1)
    assert [r["status"] for r in rows(conn, "SELECT status FROM review_items ORDER BY id")] == [
        "expired",
        "queued",
    ]


def queue_four(conn) -> list[float]:
    enqueue(conn, [{"f0": v, "f1": 0.0} for v in (0.3, 0.01, -0.2, 0.1)])
    inference.score_batch(conn, MODEL, threshold=0.8, batch_size=10)
    conn.commit()
    return sorted(r["confidence"] for r in rows(conn, "SELECT confidence FROM predictions"))


def test_open_reviews_takes_the_least_confident_within_budget_and_leaves_the_rest(conn, champion):
    confidences = queue_four(conn)
    tasks = reviews.open_reviews(conn, MODEL, budget=2, hitl_ref=REF, threshold=0.8)
    conn.commit()
    assert len(tasks) == 2
    opened = rows(
        conn,
        "SELECT ri.id, ri.status, ri.hitl_ref, ri.assigned_reviewers, ri.opened_at, p.confidence "
        "FROM review_items ri JOIN predictions p USING (trace_id) ORDER BY p.confidence",
    )
    assert [o["status"] for o in opened] == ["open", "open", "queued", "queued"]
    assert [o["confidence"] for o in opened[:2]] == confidences[:2]
    assert [t["review_item_id"] for t in tasks] == [o["id"] for o in opened[:2]]
    assert [o["hitl_ref"] for o in opened[:2]] == [{**REF, "map_index": 0}, {**REF, "map_index": 1}]
    assert opened[0]["assigned_reviewers"] == ["alice", "bob"] and opened[0]["opened_at"] is not None
    assert tasks[0]["options"][-2:] == [review.NONE_OF_THESE, review.SKIP]
    assert tasks[0]["defaults"] == [review.SKIP]
    assert "below the review threshold 80%" in tasks[0]["body"]

    later = reviews.open_reviews(conn, MODEL, budget=5, hitl_ref={**REF, "run_id": "run-2"})
    assert len(later) == 2  # only the two still queued
    assert reviews.open_reviews(conn, MODEL, budget=5, hitl_ref=REF) == []


def test_random_strategy_opens_a_reproducible_sample(conn, champion):
    queue_four(conn)
    tasks = reviews.open_reviews(conn, MODEL, budget=2, hitl_ref=REF, strategy="random", seed=1)
    assert len(tasks) == 2
    assert len(rows(conn, "SELECT id FROM review_items WHERE status = 'open'")) == 2


def open_one(conn) -> int:
    enqueue(conn, [{"f0": 0.01, "f1": 0.0}])
    inference.score_batch(conn, MODEL, threshold=0.8, batch_size=10)
    (task,) = reviews.open_reviews(conn, MODEL, budget=1, hitl_ref=REF)
    conn.commit()
    return task["review_item_id"]


def test_record_answer_writes_feedback_and_closes_the_item_once(conn, champion):
    item_id = open_one(conn)
    opened_at = rows(conn, "SELECT opened_at FROM review_items")[0]["opened_at"]
    answer = review.Answer(
        ["b"],
        {"corrected_label": None, "comment": "ok"},
        opened_at + timedelta(seconds=30),
        {"id": "bob", "name": "Bob"},
    )
    predicted = rows(conn, "SELECT output_label FROM predictions")[0]["output_label"]
    outcome = reviews.record_answer(conn, item_id, answer)
    conn.commit()
    expected_kind = "thumbs_up" if predicted == "b" else "correction"
    assert (outcome.status, outcome.feedback.kind) == ("answered", expected_kind)
    feedback = rows(conn, "SELECT * FROM feedback")
    assert len(feedback) == 1
    fb = feedback[0]
    assert (fb["kind"], fb["label"], fb["user_id"], fb["source"]) == (expected_kind, "b", "bob", "review")
    assert (fb["review_item_id"], fb["latency_seconds"], fb["comment"]) == (item_id, 30, "ok")
    assert fb["idempotency_key"] == f"review-item:{item_id}"
    item = rows(conn, "SELECT status, answered_at FROM review_items")[0]
    assert item["status"] == "answered" and item["answered_at"] == answer.responded_at

    repeated = reviews.record_answer(conn, item_id, answer)
    assert (repeated.status, repeated.feedback) == ("answered", None)
    assert rows(conn, "SELECT count(*) AS n FROM feedback")[0]["n"] == 1


def test_timed_out_review_expires_and_unfinished_items_are_requeued(conn, champion):
    item_id = open_one(conn)
    timeout = review.Answer([review.SKIP], {}, rows(conn, "SELECT now() AS t")[0]["t"], None)
    assert reviews.record_answer(conn, item_id, timeout).status == "expired"
    conn.commit()
    assert rows(conn, "SELECT status FROM review_items")[0]["status"] == "expired"

    second = open_one(conn)
    assert reviews.requeue_unfinished(conn, "feedback_inference", "run-1") == [second]
    assert reviews.requeue_unfinished(conn, "feedback_inference", "run-1") == []
    state = conn.execute(
        "SELECT status, hitl_ref, opened_at FROM review_items WHERE id = %s", (second,)
    ).fetchone()
    assert (state["status"], state["hitl_ref"], state["opened_at"]) == ("queued", None, None)


def test_the_budget_goes_to_gold_audit_second_opinions_then_the_least_confident(conn, champion):
    from datetime import UTC, datetime

    from feedback_loop.labels import store as labels

    model = MODEL.model_copy(
        update={
            "reviewers": ["alice", "bob", "carol"],
            "review": MODEL.review.model_copy(update={"gold_share": 0.2, "audit_share": 0.2}),
        }
    )
    enqueue(conn, [{"f0": v / 10, "f1": 0.0, "region": "north"} for v in range(-20, 20)])
    inference.score_batch(conn, model, threshold=0.8, batch_size=100, run_id="run-1")

    def answer(item_id: int, who: str, label: str) -> review.Outcome:
        return reviews.record_answer(
            conn, item_id, review.Answer([label], {}, datetime.now(UTC), {"id": who}), model
        )

    # Round 1: ten questions. alice and bob settle one trace together (a gold candidate later); carol
    # corrects one against the model (a second opinion follows).
    first = reviews.open_reviews(conn, model, budget=10, hitl_ref=REF, scored_run_id="run-1", seed=1)
    assert {t["reason"] for t in first} == {"audit", "low_confidence"}
    assert sum(t["reason"] == "audit" for t in first) == 2  # gold has nothing settled to ask about yet
    settled, corrected = first[0], first[1]
    answer(settled["review_item_id"], "alice", settled["options"][0])
    answer(corrected["review_item_id"], "carol", corrected["options"][1])
    second_of_settled = conn.execute(
        "INSERT INTO review_items (trace_id, model_name, model_version, reason, status, opened_at, excluded_reviewers) "
        "SELECT trace_id, model_name, model_version, 'second_opinion', 'open', now(), ARRAY['alice'] "
        "FROM review_items WHERE id = %s RETURNING id",
        (settled["review_item_id"],),
    ).fetchone()["id"]
    conn.commit()
    answer(second_of_settled, "bob", settled["options"][0])
    labels.refresh(conn, model)
    conn.commit()
    waiting = rows(
        conn,
        "SELECT excluded_reviewers FROM review_items WHERE reason = 'second_opinion' AND status = 'queued'",
    )
    assert waiting == [{"excluded_reviewers": ["carol"]}]

    # Round 2: gold (the settled trace, for carol only), the second opinion (not for carol), the rest.
    later = reviews.open_reviews(conn, model, budget=10, hitl_ref={**REF, "run_id": "run-2"}, seed=2)
    reasons = [t["reason"] for t in later]
    assert reasons[:2] == ["gold", "second_opinion"] and set(reasons[2:]) <= {"low_confidence"}
    gold, second = later[0], later[1]
    assert gold["reviewers"] == ["carol"] and second["reviewers"] == ["alice", "bob"]
    assert "carol" not in second["body"] and "alice" not in gold["body"]
