"""Requests apps name with their own ids: validated, unique per model, idempotent on retry, refused when an id
comes back with another input, and read back with what scoring made of them (real PostgreSQL)."""

from __future__ import annotations

import threading

import psycopg
import pytest

from feedback_loop.core import config, db
from feedback_loop.core import inference_requests as requests
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import scoring
from feedback_loop.registry import versions as registry

from ..support.helpers import register_toy

pytestmark = pytest.mark.integration

MODEL = config.parse(
    "models:\n  - name: toy\n    label_column: y\n    training_data: {path: unused.csv}\n", "toy.yaml"
).model("toy")


def named(request_id: str, f0: float = 1.0, **slice_values) -> requests.NewRequest:
    return requests.NewRequest({"f0": f0, "f1": 0.0}, dict(slice_values), request_id)


def stored(conn) -> list[dict]:
    conn.commit()
    return conn.execute(
        "SELECT id, model_name, request_id, input, slice, status FROM inference_requests ORDER BY id"
    ).fetchall()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        ("x" * 201, "at most 200 characters (got 201)"),
        ("line\nbreak", "printable"),
        ("tab\there", "printable"),
        ("nul\x00", "printable"),
        ("\u2028sep", "printable"),
        (" padded", "start or end with spaces"),
        (42, "must be a string"),
    ],
)
def test_a_bad_request_id_is_named_with_the_reason(value, reason):
    assert reason in requests.request_id_problem(value)


@pytest.mark.parametrize("value", ["order-1", "x" * 200, "a/b?c=d#e", "Bestellung 7 ü 🙂", "7b0c8a8e-5a3e"])
def test_printable_ids_up_to_the_limit_are_accepted(value):
    assert requests.request_id_problem(value) is None


def test_requests_without_ids_go_in_with_their_ids_in_order(conn):
    enqueued = requests.enqueue(conn, "toy", [requests.NewRequest({"f0": i}, {"g": "a"}) for i in range(3)])
    rows = stored(conn)
    assert [e.id for e in enqueued] == [r["id"] for r in rows]
    assert {(e.status, e.created, e.request_id) for e in enqueued} == {("pending", True, None)}
    assert [r["input"] for r in rows] == [{"f0": 0}, {"f0": 1}, {"f0": 2}]
    assert {r["request_id"] for r in rows} == {None}


def test_a_retry_returns_the_stored_requests_and_stores_nothing_new(conn):
    first = requests.enqueue(conn, "toy", [named("a", 1.0), named("b", 2.0, region="north")])
    assert [(e.request_id, e.created) for e in first] == [("a", True), ("b", True)]
    # Key order and 2 vs 2.0 do not make another input (jsonb equality).
    again = requests.enqueue(
        conn,
        "toy",
        [
            requests.NewRequest({"f1": 0.0, "f0": 2}, {"region": "north"}, "b"),
            named("c", 3.0),
            named("a", 1.0),
        ],
    )
    assert [(e.request_id, e.created) for e in again] == [("b", False), ("c", True), ("a", False)]
    assert again[0].id == first[1].id and again[2].id == first[0].id
    assert [r["request_id"] for r in stored(conn)] == ["a", "b", "c"]


def test_an_id_sent_again_with_another_input_is_refused_and_nothing_of_the_call_is_kept(conn):
    requests.enqueue(conn, "toy", [named("a", 1.0), named("b", 2.0)])
    conn.commit()
    with pytest.raises(requests.RequestIdConflictError) as caught:
        requests.enqueue(conn, "toy", [named("new", 5.0), named("b", 2.5), named("a", 1.0, region="x")])
    assert caught.value.conflicts == [(1, "b"), (2, "a")]
    assert caught.value.exit_code == 2
    assert "request id 'b' was already enqueued for 'toy' with a different input (and 1 more)" in str(
        caught.value
    )
    assert [r["request_id"] for r in stored(conn)] == ["a", "b"]  # 'new' was rolled back with the call


def test_ids_are_unique_per_model_and_repeats_in_one_call_are_refused(conn):
    requests.enqueue(conn, "toy", [named("shared")])
    other = requests.enqueue(conn, "other", [named("shared", 9.0)])
    assert other[0].created
    with pytest.raises(InvalidInputError, match=r"request_id 'x' is given twice \(items 0 and 2\)"):
        requests.enqueue(conn, "toy", [named("x"), named("y"), named("x")])
    with pytest.raises(InvalidInputError, match="request_id 'bad\\\\n': must be printable"):
        requests.enqueue(conn, "toy", [named("bad\n")])
    assert [(r["model_name"], r["request_id"]) for r in stored(conn)] == [
        ("toy", "shared"),
        ("other", "shared"),
    ]


def test_the_schema_keeps_ids_unique_per_model_and_bounded(conn):
    requests.enqueue(conn, "toy", [named("a")])
    conn.commit()
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO inference_requests (model_name, request_id, input) VALUES ('toy', 'a', '{}')"
        )
    conn.rollback()
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO inference_requests (model_name, request_id, input) VALUES ('toy', repeat('x', 201), '{}')"
        )
    conn.rollback()
    # Rows without an id are never in each other's way.
    conn.execute("INSERT INTO inference_requests (model_name, input) VALUES ('toy', '{}'), ('toy', '{}')")
    assert len(stored(conn)) == 3


def test_concurrent_writers_of_the_same_ids_store_each_once_and_agree_on_the_ids(conn, db_url):
    batch = [named(f"r-{i}", float(i)) for i in range(20)]
    results: list[list[requests.Enqueued]] = []
    start = threading.Barrier(4)

    def write() -> None:
        with db.connect(db_url) as own:
            start.wait()
            results.append(requests.enqueue(own, "toy", batch))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4
    assert sum(e.created for result in results for e in result) == 20
    assert len({tuple(e.id for e in result) for result in results}) == 1
    assert [r["request_id"] for r in stored(conn)] == [f"r-{i}" for i in range(20)]


def test_statuses_follow_a_request_from_pending_to_scored_or_failed(conn):
    version = register_toy(conn)
    registry.promote(conn, "toy", version.version, actor="test")
    conn.commit()
    requests.enqueue(
        conn,
        "toy",
        [named("ok", 2.5), requests.NewRequest({"f0": "lots", "f1": 1.0}, {}, "unreadable"), named("later")],
    )
    before = requests.statuses(conn, "toy", ["ok", "ghost"])
    assert [(s.request_id, s.status, s.trace_id, s.known) for s in before] == [
        ("ok", "pending", None, True),
        ("ghost", "unknown", None, False),
    ]
    scoring.score_batch(conn, MODEL, threshold=0.8, batch_size=2)
    conn.commit()
    ok, unreadable, later, ghost = requests.statuses(conn, "toy", ["ok", "unreadable", "later", "ghost"])
    prediction = conn.execute("SELECT * FROM predictions").fetchone()
    assert (ok.status, ok.trace_id, ok.prediction, ok.model_version) == (
        "scored",
        prediction["trace_id"],
        prediction["output_label"],
        version.version,
    )
    assert ok.confidence == pytest.approx(prediction["confidence"]) and ok.scored_at is not None
    assert (unreadable.status, unreadable.trace_id, unreadable.prediction) == ("failed", None, None)
    assert unreadable.error.startswith("model could not read the input")
    assert (later.status, ghost.status, ghost.id) == ("pending", "unknown", None)
    with pytest.raises(InvalidInputError, match="request_id '': must not be empty"):
        requests.statuses(conn, "toy", [""])
