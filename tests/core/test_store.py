import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from feedback_loop.core import store
from feedback_loop.core.errors import ConflictError, NotFoundError

from ..support.helpers import make_predictions, register_toy

pytestmark = pytest.mark.integration


@pytest.fixture
def traces(conn):
    register_toy(conn)
    conn.commit()
    return make_predictions(conn, "toy", 1, 5)


def test_log_predictions_in_bulk_round_trips_json(conn, traces):
    assert len(traces) == 5
    row = store.get_prediction(conn, traces[3])
    assert row["input"] == {"f0": 3, "f1": -3}
    assert row["probabilities"]["a"] == pytest.approx(0.9)
    assert row["slice"] == {"region": "north"}
    assert row["model_version"] == 1


def test_prediction_for_unregistered_version_is_refused(conn):
    register_toy(conn)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        make_predictions(conn, "toy", 99, 1)


def test_feedback_with_key_is_idempotent_and_conflicts_on_other_body(conn, traces):
    item = store.FeedbackIn(trace_id=traces[0], kind="rating", rating=2, comment="wrong digit", user_id="u1")
    first = store.record_feedback(conn, item, idempotency_key="k-1")
    again = store.record_feedback(conn, item, idempotency_key="k-1")
    assert first.created and not again.created
    assert again.row["id"] == first.row["id"]
    assert first.row["is_negative"] is True
    count = conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"]
    assert count == 1
    with pytest.raises(ConflictError, match="different body"):
        store.record_feedback(
            conn, store.FeedbackIn(trace_id=traces[0], kind="rating", rating=5), idempotency_key="k-1"
        )


def test_a_keyed_event_can_commit_in_its_own_round_trip_and_a_key_naming_a_batch_stores_nothing(
    conn, db_url, traces
):
    item = store.FeedbackIn(trace_id=traces[0], kind="thumbs_up", user_id="u1")
    stored = store.record_keyed_feedback(conn, item, "k-alone", commit=True)
    assert stored.created
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE, "committed with the insert"
    with psycopg.connect(db_url) as other:  # visible to everyone at once, no commit of ours needed
        assert (
            other.execute("SELECT count(*) FROM feedback WHERE idempotency_key = 'k-alone'").fetchone()[0]
            == 1
        )
    store.record_batch(conn, "k-batch", "0" * 64, [stored.row["id"]])
    conn.commit()
    for commit in (True, False):
        with pytest.raises(store.KeyOfStoredBatchError):
            store.record_keyed_feedback(
                conn, store.FeedbackIn(trace_id=traces[1], kind="thumbs_up"), "k-batch", commit=commit
            )
        conn.rollback()
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 1
    # Only the API's single events refuse a batch's key: a review answer's own key is never refused.
    answer = store.FeedbackIn(trace_id=traces[2], kind="correction", label="b", source="review")
    assert store.record_feedback(conn, answer, idempotency_key="k-batch").created


def test_a_group_of_events_is_stored_in_one_commit_and_reports_what_it_did_not_store(conn, db_url, traces):
    store.record_feedback(
        conn, store.FeedbackIn(trace_id=traces[0], kind="thumbs_up"), idempotency_key="k-old"
    )
    store.record_batch(conn, "k-batch", "0" * 64, [])
    conn.commit()
    entries = [
        (
            store.FeedbackIn(trace_id=traces[1], kind="rating", rating=5, comment="fine", user_id="u1"),
            "k-new",
        ),
        (store.FeedbackIn(trace_id=uuid.uuid4(), kind="thumbs_up"), "k-unknown-trace"),
        (store.FeedbackIn(trace_id=traces[2], kind="thumbs_up"), None),
        (store.FeedbackIn(trace_id=traces[3], kind="thumbs_up"), "k-old"),  # stored before
        (store.FeedbackIn(trace_id=traces[4], kind="thumbs_up"), "k-batch"),  # a batch's key
        (store.FeedbackIn(trace_id=traces[2], kind="implicit", signal="accepted", source="implicit"), None),
    ]
    rows = store.record_feedback_group(conn, entries)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE, "committed in the round trip"
    assert [row is not None for row in rows] == [True, False, True, False, False, True]
    first = rows[0]
    assert first is not None
    assert (first["trace_id"], first["kind"], first["rating"], first["comment"]) == (
        traces[1],
        "rating",
        5,
        "fine",
    )
    assert (first["idempotency_key"], first["model_name"], first["model_version"]) == ("k-new", "toy", 1)
    with psycopg.connect(db_url) as other:
        stored = other.execute(
            "SELECT id, trace_id, kind, request_hash FROM feedback WHERE id = ANY(%s) ORDER BY id",
            [[row["id"] for row in rows if row is not None]],
        ).fetchall()
    assert [(r[1], r[2]) for r in stored] == [
        (traces[1], "rating"),
        (traces[2], "thumbs_up"),
        (traces[2], "implicit"),
    ]
    assert stored[0][3] == entries[0][0].request_hash(), "a retry of it is recognised as one"
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 4
    # The one-by-one path then says why the others were not stored, and stores nothing either.
    with pytest.raises(NotFoundError):
        store.record_keyed_feedback(conn, *entries[1], commit=True)
    assert not store.record_keyed_feedback(conn, entries[0][0], "k-new", commit=True).created


def test_a_group_never_waits_for_a_key_locked_elsewhere_and_leaves_no_setting_behind(conn, db_url, traces):
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('idempotency:k-busy'))")
        rows = store.record_feedback_group(
            conn,
            [
                (store.FeedbackIn(trace_id=traces[0], kind="thumbs_up"), "k-busy"),
                (store.FeedbackIn(trace_id=traces[1], kind="thumbs_up"), "k-free"),
                (store.FeedbackIn(trace_id=traces[2], kind="thumbs_up"), None),
            ],
        )
        holder.rollback()
    assert [row is not None for row in rows] == [False, True, True], "the busy key's event is left out"
    # The group's lock timeout ended with its transaction: the pooled connection waits as before.
    assert conn.execute("SHOW lock_timeout").fetchone()["lock_timeout"] == "0"
    assert store.record_keyed_feedback(
        conn, store.FeedbackIn(trace_id=traces[0], kind="thumbs_up"), "k-busy"
    ).created


def test_a_group_refuses_two_events_under_one_key(conn, traces):
    item = store.FeedbackIn(trace_id=traces[0], kind="thumbs_up")
    with pytest.raises(ValueError, match="share an idempotency key"):
        store.record_feedback_group(conn, [(item, "k"), (item, "k")])
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 0


def test_feedback_for_unknown_trace_is_not_found(conn, traces):
    with pytest.raises(NotFoundError, match="unknown trace_id"):
        store.record_feedback(conn, store.FeedbackIn(trace_id=uuid.uuid4(), kind="thumbs_up"))
    for commit in (True, False):  # under a new key: the insert stores nothing, and the key names nothing
        with pytest.raises(NotFoundError, match="unknown trace_id"):
            store.record_keyed_feedback(
                conn, store.FeedbackIn(trace_id=uuid.uuid4(), kind="thumbs_up"), "k-new", commit=commit
            )
        conn.rollback()


def test_database_constraints_reject_inconsistent_feedback(conn, traces):
    with pytest.raises(psycopg.errors.CheckViolation):
        store.record_feedback(conn, store.FeedbackIn(trace_id=traces[0], kind="rating", rating=9))


def test_read_feedback_for_an_interval(conn, traces):
    for i, trace in enumerate(traces):
        store.record_feedback(conn, store.FeedbackIn(trace_id=trace, kind="thumbs_up", user_id=f"u{i}"))
    conn.execute("UPDATE feedback SET created_at = created_at - interval '2 hours' WHERE user_id = 'u0'")
    now = datetime.now(UTC)
    recent = store.read_feedback(conn, now - timedelta(hours=1), now + timedelta(minutes=1), "toy")
    assert sorted(r["user_id"] for r in recent) == ["u1", "u2", "u3", "u4"]
    assert store.read_feedback(conn, now - timedelta(hours=1), now, "other") == []


def test_queue_review_items_is_idempotent_per_trace_and_reason(conn, traces):
    requests = [
        store.ReviewRequest(trace_id=t, reason="low_confidence", priority=1 - i / 10)
        for i, t in enumerate(traces[:3])
    ]
    created = store.queue_review_items(conn, requests, assigned_reviewers=["alice"])
    assert len(created) == 3
    assert store.queue_review_items(conn, requests) == []
    queued = store.review_items(conn, "toy", "queued")
    assert [str(r["trace_id"]) for r in queued] == [str(t) for t in traces[:3]]
    assert queued[0]["assigned_reviewers"] == ["alice"]


# Hashes stored in deployed databases were computed this way; a change here would turn every retry of an
# event stored before into a 409. The literals were computed before the hash code was last rewritten.
PINNED_HASHES = [
    (
        store.FeedbackIn(
            trace_id=uuid.UUID("7b0c8a8e-5a3e-4cc4-9a59-0b4f2f7f1e11"), kind="rating", rating=2,
            comment='It read my 7 as a 1 "quoted" \u00e9 \U0001f642', user_id="u-123", source="api",
            priority="urgent", failure_mode="wrong_output",
        ),
        "b0b4773844e94cf13129e310829aba564a595fcae4dae0cb0b1c3a36a406e3c8",
    ),
    (
        store.FeedbackIn(
            trace_id=uuid.UUID("00000000-0000-4000-8000-000000000001"), kind="correction", label="7",
            source="review", review_item_id=42, latency_seconds=12.5,
        ),
        "4a70d2e550e1fd06aa48dbcd16e9e93bb7abf6927da5eeeb6c4a9757747c778a",
    ),
    (
        store.FeedbackIn(
            trace_id=uuid.UUID("00000000-0000-4000-8000-000000000002"), kind="implicit", signal="retried",
            source="implicit",
        ),
        "9be84f14b6943640b42aa9fca1a993ee92801222103e119a47a559aaab231460",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("item", "expected"), PINNED_HASHES)
def test_request_hashes_stay_byte_identical_to_the_stored_ones(item, expected):
    assert item.request_hash() == expected


def _copy_row(feedback_id: int, trace: uuid.UUID, key: str | None, kind: str = "thumbs_up") -> tuple:
    item = store.FeedbackIn(trace_id=trace, kind=kind)
    digest = None if key is None else item.request_hash()
    return (
        feedback_id,
        str(trace),
        "toy",
        1,
        kind,
        None,
        None,
        None,
        None,
        None,
        "api",
        "normal",
        None,
        key,
        digest,
    )


def test_copy_feedback_writes_streamed_rows_with_reserved_ids(conn, traces):
    trace_ids = [str(traces[1]), str(uuid.uuid4()), str(traces[0])]
    assert store.models_of_traces(conn, trace_ids) == [("toy", 1), None, ("toy", 1)]
    models, ids = store.models_and_ids(conn, trace_ids, 3)
    assert models == [("toy", 1), None, ("toy", 1)]
    assert len(set(ids)) == 3 and ids == sorted(ids)  # rising: a batch's rows get ids in item order
    rows = (_copy_row(i, t, k) for i, t, k in zip(ids, traces, ["k-1", None, "k-3"], strict=False))
    assert store.copy_feedback(conn, rows) == 3
    stored = conn.execute("SELECT id, idempotency_key FROM feedback ORDER BY id").fetchall()
    assert [(r["id"], r["idempotency_key"]) for r in stored] == list(
        zip(ids, ["k-1", None, "k-3"], strict=True)
    )
    hashes = store.stored_request_hashes(conn, ["k-1", "k-2", "k-3"])
    assert hashes == {
        "k-1": (ids[0], store.FeedbackIn(trace_id=traces[0], kind="thumbs_up").request_hash()),
        "k-3": (ids[2], store.FeedbackIn(trace_id=traces[2], kind="thumbs_up").request_hash()),
    }


def test_copy_feedback_fails_whole_on_a_stored_key(conn, traces):
    first = store.reserve_feedback_ids(conn, 1)[0]
    store.copy_feedback(conn, [_copy_row(first, traces[0], "k-1")])
    conn.commit()
    ids = store.reserve_feedback_ids(conn, 2)
    with pytest.raises(psycopg.errors.UniqueViolation) as raised:
        store.copy_feedback(conn, [_copy_row(ids[0], traces[1], "k-2"), _copy_row(ids[1], traces[2], "k-1")])
    assert raised.value.diag.constraint_name == store.IDEMPOTENCY_KEY_CONSTRAINT
    conn.rollback()
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 1
