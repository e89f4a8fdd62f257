"""The API's service layer without HTTP: the batch hash shortcut and races between batch retries."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from feedback_loop.api import batch_body
from feedback_loop.api import service as service_module
from feedback_loop.api.pool import ConnectionPool
from feedback_loop.api.problems import Invalid, NotFound
from feedback_loop.api.schemas import FeedbackBody
from feedback_loop.api.service import FeedbackService
from feedback_loop.core import store
from feedback_loop.core.errors import DatabaseUnavailableError

from ..support.helpers import CONFIG, make_predictions, register_toy
from ..support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def _toy_traces(conn, n: int) -> list[uuid.UUID]:
    """`n` logged predictions of a registered toy model v1, committed."""
    register_toy(conn)
    conn.commit()
    traces = make_predictions(conn, "toy", 1, n)
    conn.commit()
    return traces


def _all_at_once(threads: list[threading.Thread]) -> None:
    """Start the threads (each waits on a shared barrier) and wait for all of them."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize(
    "values",
    [
        {"kind": "thumbs_up"},
        {"kind": "rating", "rating": 2, "comment": 'say "hi"\\n\ttab', "user_id": "u-ü"},
        {"kind": "correction", "label": "7", "comment": "émoji 🙂 and \u2028 separators", "source": "api"},
        {"kind": "implicit", "signal": "retried", "source": "implicit", "user_id": None},
    ],
)
def test_batch_hash_equals_the_store_request_hash(values):
    trace = uuid.uuid4()
    item = store.FeedbackIn(trace_id=trace, **values)
    fields = {"source": "api", **values}
    # What the batch hashes: the trace id as the string it parsed, and the body's fields.
    batch = store.request_hash(
        str(trace), fields["kind"], fields.get("rating"), fields.get("label"), fields.get("signal"),
        fields.get("comment"), fields.get("user_id"), fields["source"],
    )  # fmt: skip
    assert batch == item.request_hash()
    # ... and both are the JSON form the stored hashes were made from.
    body = {k: v for k, v in dataclasses.asdict(item).items() if k not in ("priority", "failure_mode")}
    expected = json.dumps(body, separators=(",", ":"), default=str, allow_nan=False)
    assert batch == hashlib.sha256(expected.encode()).hexdigest()


def test_a_single_event_retried_inside_a_batch_is_recognised(conn):
    trace = _toy_traces(conn, 1)[0]
    service = FeedbackService(CONFIG)
    try:
        body = FeedbackBody(
            trace_id=trace, kind="rating", rating=4, comment="ok, mail a@b.io", client_event_id="e-1"
        )
        single = service.submit(body)
        batch = service.submit_batch([body])
    finally:
        service.close()
    assert batch["items"] == [{"id": single.row["id"], "created": False}]


def _concurrent_single_events(service: FeedbackService, bodies: list[FeedbackBody]) -> list[object]:
    """Each body submitted from a thread of its own, all at once; each thread's outcome or exception."""
    outcomes: list[object] = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def send(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = service.submit(bodies[n])
        except Exception as exc:  # the test looks at what each request got
            outcomes[n] = exc

    _all_at_once([threading.Thread(target=send, args=(n,)) for n in range(len(bodies))])
    return outcomes


def test_concurrent_single_events_share_commits_and_each_gets_its_own_answer_and_effects(conn):
    traces = _toy_traces(conn, 40)
    bodies = [
        FeedbackBody(trace_id=t, kind="rating", rating=4 + n % 2, comment=f"n{n}", client_event_id=f"e-{n}")
        for n, t in enumerate(traces)
    ]
    bodies += [FeedbackBody(trace_id=traces[0], kind="thumbs_up")]  # no key
    bodies += [FeedbackBody(trace_id=uuid.uuid4(), kind="thumbs_up", client_event_id="e-unknown")]
    bodies += [bodies[5]]  # a retry racing its first attempt
    bodies += [FeedbackBody(trace_id=traces[6], kind="thumbs_up", client_event_id="e-6")]  # e-6 reused
    # Then negative ones, two of them urgent: more than 30 % of the last 10 are negative, a review opens.
    negative_bodies = [
        FeedbackBody(trace_id=t, kind="thumbs_down", client_event_id=f"n-{n}")
        for n, t in enumerate(traces[:4])
    ]
    negative_bodies += [
        FeedbackBody(trace_id=t, kind="thumbs_down", comment="it is wrong", client_event_id=f"u-{n}")
        for n, t in enumerate(traces[4:6])
    ]
    service = FeedbackService(CONFIG)
    try:
        outcomes = _concurrent_single_events(service, bodies)
        outcomes += _concurrent_single_events(service, negative_bodies)
        grouped = service._single_events
    finally:
        service.close()
    for n, body in enumerate(bodies[:41]):
        if n == 6:  # its key is reused below: which of the two wins is a race
            continue
        outcome = outcomes[n]
        assert isinstance(outcome, service_module.Submitted), (n, outcome)
        assert outcome.row["idempotency_key"] == body.client_event_id
        assert outcome.row["comment"] == body.comment and outcome.row["trace_id"] == body.trace_id
    assert isinstance(outcomes[41], NotFound)
    retry, reused = outcomes[42], outcomes[43]
    first_of_5 = outcomes[5]
    assert isinstance(retry, service_module.Submitted) and isinstance(first_of_5, service_module.Submitted)
    assert retry.row["id"] == first_of_5.row["id"] and [retry.created, first_of_5.created].count(True) == 1
    # e-6 went to whichever arrived first; the other body under it is refused as a reused key.
    assert sorted(type(o).__name__ for o in (outcomes[6], reused)) == ["Conflict", "Submitted"]
    negative = outcomes[44:]
    assert all(
        isinstance(o, service_module.Submitted) and o.created and o.row["is_negative"] for o in negative
    )
    assert [o.row["priority"] for o in negative[4:]] == ["urgent", "urgent"]
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 47
    urgent = [
        r["text"]
        for r in conn.execute(
            "SELECT payload::text AS text FROM notifications WHERE topic = 'urgent_feedback'"
        )
    ]
    assert len(urgent) == 2, "one notification per urgent event"
    for outcome in negative[4:]:
        assert any(str(outcome.row["trace_id"]) in text for text in urgent)
    opened = conn.execute(
        "SELECT count(*) AS n FROM review_items WHERE reason = 'negative_feedback'"
    ).fetchone()
    assert opened["n"] >= 1
    assert grouped.items >= 49  # all went through the group writes (how they grouped is up to the threads)


def test_an_event_whose_key_is_locked_elsewhere_waits_alone_and_never_holds_up_the_others(conn, db_url):
    traces = _toy_traces(conn, 3)
    service = FeedbackService(CONFIG)
    outcome: list[object] = []
    try:
        with psycopg.connect(db_url) as holder:  # a batch under the key would hold its lock like this
            holder.execute("SELECT pg_advisory_xact_lock(hashtext('idempotency:k-held'))")
            waiting = threading.Thread(
                target=lambda: outcome.append(
                    service.submit(
                        FeedbackBody(trace_id=traces[0], kind="thumbs_up", client_event_id="k-held")
                    )
                )
            )
            waiting.start()
            for n in (1, 2):  # written while the held key's event waits for its lock
                body = FeedbackBody(trace_id=traces[n], kind="thumbs_up", client_event_id=f"k-{n}")
                assert service.submit(body).created
            assert outcome == [] and waiting.is_alive()
            holder.rollback()  # the lock is released
            waiting.join(10)
        (held,) = outcome
        assert isinstance(held, service_module.Submitted) and held.created
    finally:
        service.close()
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 3
    # At shutdown a request still running is written alone.
    late = service.prepared_event(FeedbackBody(trace_id=traces[0], kind="thumbs_up"))
    assert late is not None and service.write_event(late).result(0) is None


def test_an_event_waiting_on_an_uncommitted_row_under_its_key_is_written_alone(conn, db_url):
    traces = _toy_traces(conn, 2)
    body = FeedbackBody(trace_id=traces[0], kind="thumbs_up", client_event_id="k-copying")
    service = FeedbackService(CONFIG)
    outcome: list[object] = []
    try:
        with psycopg.connect(db_url) as holder:  # a batch's COPY holds its items' rows like this, unlocked
            store.record_feedback(holder, FeedbackService._prepared(body), idempotency_key="k-copying")
            waiting = threading.Thread(target=lambda: outcome.append(service.submit(body)))
            waiting.start()
            other = FeedbackBody(trace_id=traces[1], kind="thumbs_up", client_event_id="k-other")
            assert service.submit(other).created  # the waiting event's group gave up after 100 ms
            assert waiting.is_alive()
            holder.commit()
            waiting.join(10)
    finally:
        service.close()
    (retry,) = outcome
    assert isinstance(retry, service_module.Submitted) and not retry.created, "the stored row is its answer"
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 2


def test_a_group_whose_triage_fails_is_written_one_by_one(conn, monkeypatch):
    traces = _toy_traces(conn, 4)
    service = FeedbackService(CONFIG)
    real, failures = service._after_group_write, []

    def fails_once(connection, rows):
        if not failures:
            failures.append(len(rows))
            raise RuntimeError("a fault in triage")
        return real(connection, rows)

    monkeypatch.setattr(service, "_after_group_write", fails_once)
    bodies = [
        FeedbackBody(trace_id=t, kind="thumbs_down", client_event_id=f"d-{n}") for n, t in enumerate(traces)
    ]
    try:
        outcomes = _concurrent_single_events(service, bodies)
    finally:
        service.close()
    assert failures, "a group write failed"
    assert all(isinstance(o, service_module.Submitted) and o.created for o in outcomes), outcomes
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 4


def test_a_group_the_database_refuses_is_written_one_by_one(conn):
    traces = _toy_traces(conn, 12)
    # A real refusal of the group's statement only: events written one by one pass.
    conn.execute(
        """CREATE FUNCTION refuse_groups() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF current_query() LIKE '%%jsonb_to_recordset%%' THEN
               RAISE EXCEPTION 'groups refused by this test';
             END IF;
             RETURN NEW;
           END $$"""
    )
    conn.execute(
        "CREATE TRIGGER refuse_groups BEFORE INSERT ON feedback FOR EACH ROW EXECUTE FUNCTION refuse_groups()"
    )
    conn.commit()
    try:
        bodies = [
            FeedbackBody(trace_id=t, kind="thumbs_up", client_event_id=f"e-{n}") for n, t in enumerate(traces)
        ]
        service = FeedbackService(CONFIG)
        try:
            outcomes = _concurrent_single_events(service, bodies)
        finally:
            service.close()
        assert all(isinstance(o, service_module.Submitted) and o.created for o in outcomes), outcomes
        assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 12
    finally:
        conn.rollback()
        conn.execute("DROP TRIGGER refuse_groups ON feedback")
        conn.execute("DROP FUNCTION refuse_groups()")
        conn.commit()


@pytest.mark.parametrize("head", [1000, 8], ids=["one model look-up", "two model look-ups"])
def test_concurrent_copies_of_one_batch_store_each_item_once(conn, head, monkeypatch):
    monkeypatch.setattr(service_module, "MODEL_LOOKUP_HEAD", head)  # 50 items: more than twice 8
    traces = _toy_traces(conn, 50)
    items = [
        FeedbackBody(trace_id=t, kind="thumbs_up", client_event_id=f"c-{i}") for i, t in enumerate(traces)
    ]
    service = FeedbackService(CONFIG)
    outcomes: list[dict] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        outcomes.append(service.submit_batch(items))

    try:
        _all_at_once([threading.Thread(target=send) for _ in range(8)])
    finally:
        service.close()
    assert len(outcomes) == 8
    assert len({tuple(item["id"] for item in outcome["items"]) for outcome in outcomes}) == 1
    assert sum(outcome["created"] for outcome in outcomes) == 50
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 50


def test_deliver_pending_command_retries_the_outbox(conn, monkeypatch, capsys):
    from feedback_loop import cli
    from feedback_loop.core import notify

    from ..support.api import WEBHOOK_ENV, WebhookRecorder

    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    monkeypatch.setenv("FEEDBACK_LOOP_WEBHOOK_URL", "")
    waiting = notify.notify(conn, "urgent_feedback", "Urgent feedback on toy v1", CONFIG.notify)
    assert waiting.status == "pending"
    with WebhookRecorder() as hook:
        monkeypatch.setenv("FEEDBACK_LOOP_WEBHOOK_URL", hook.url)
        assert cli.main(["api", "deliver-pending", "--json"]) == 0
    assert '"delivered": 1' in capsys.readouterr().out
    assert [payload["text"] for payload in hook.received] == ["Urgent feedback on toy v1"]


# sha256 of every problem found over the grid below (JSON, fields prefixed items[i].), computed with the
# two validators this one replaced; pins the reasons, their order and which items pass.
GRID_PROBLEMS_SHA256 = "0c229dd3ddc8786f4af77975ec6b315bd4285549814da14360737789b1ce50ad"


def test_the_validator_finds_the_same_problems_in_the_same_order_as_before():
    import itertools

    from feedback_loop.api.service import problems
    from feedback_loop.core.config import ApiConfig

    found, verdicts = [], []
    for low_rating_requires_comment in (True, False):
        api = ApiConfig(
            low_rating_requires_comment=low_rating_requires_comment,
            low_rating_comment_min_length=5,
            max_comment_length=20,
        )
        for i, (kind, rating, label, signal, comment, user_id) in enumerate(
            itertools.product(
                ["thumbs_up", "thumbs_down", "rating", "correction", "comment", "implicit"],
                [None, 1, 4],
                [None, "7", "  ", "a\x00"],
                [None, "accepted"],
                [None, "", "   ", "long enough", "x" * 21, "nul\x00"],
                [None, "u1", "u\x00"],
            )
        ):
            raw = {"trace_id": "7b0c8a8e-5a3e-4cc4-9a59-0b4f2f7f1e11", "kind": kind, "rating": rating}
            raw |= {"label": label, "signal": signal, "comment": comment, "user_id": user_id}
            item_problems = problems(FeedbackBody.model_validate(raw), api)
            found.append([{**p, "field": f"items[{i}].{p['field']}"} for p in item_problems])
            verdicts.append(not item_problems)
    assert len(verdicts) == 2 * 6 * 3 * 4 * 2 * 6 * 3 and any(verdicts) and not all(verdicts)
    assert sum(verdicts) == 94
    digest = hashlib.sha256(json.dumps(found, separators=(",", ":")).encode()).hexdigest()
    assert digest == GRID_PROBLEMS_SHA256


def test_problems_are_named_in_order():
    from feedback_loop.api.service import problems
    from feedback_loop.core.config import ApiConfig

    api = ApiConfig(low_rating_requires_comment=True, low_rating_comment_min_length=5, max_comment_length=20)
    body = FeedbackBody(trace_id=uuid.uuid4(), kind="rating", rating=1, label="7", comment="x" * 21 + "\x00")
    assert problems(body, api) == [
        {"field": "label", "reason": "is only allowed when kind is 'correction' (kind is 'rating')"},
        {"field": "comment", "reason": "must not contain NUL (\\u0000) characters"},
        {"field": "comment", "reason": "must be at most 20 characters (got 22)"},
    ]
    assert problems(FeedbackBody(trace_id=uuid.uuid4(), kind="rating", rating=2, comment="bad"), api) == [
        {
            "field": "comment",
            "reason": "a rating of 2 needs a comment of at least 5 characters saying what went wrong",
        }
    ]


# ---- the connection pool ------------------------------------------------------------------------------


def _backend_pids(pool: ConnectionPool, n: int) -> set[int]:
    """Use n connections at once, so the pool holds at least n; their server process ids."""
    with ExitStack() as stack:
        conns = [stack.enter_context(pool.connection()) for _ in range(n)]
        return {c.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"] for c in conns}


def test_the_pool_drops_connections_broken_behind_its_back(conn, db_url):
    pool = ConnectionPool(db_url, min_size=1, max_size=4)
    try:
        # Every connection the pool may hold: with fewer, a connection it grows in the background meanwhile
        # is not terminated, may be the one handed out next, and nothing is seen lost (flaky under load).
        pids = _backend_pids(pool, 4)
        # What a PostgreSQL restart does to idle pooled connections: their server processes end (waited
        # for, as a restart has ended them by the time a request comes; the pool reads the sockets).
        conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM unnest(%s::int[]) AS pid", (list(pids),))
        conn.commit()
        with pool.connection() as fresh:
            row = fresh.execute("SELECT pg_backend_pid() AS pid, 1 AS one").fetchone()
        assert row["one"] == 1 and row["pid"] not in pids
        assert pool.stats()["connections_lost"] >= 1
    finally:
        pool.close()


def test_the_pool_commits_on_success_and_rolls_back_on_error(conn, db_url):
    pool = ConnectionPool(db_url, min_size=1, max_size=2)
    try:
        with pool.connection() as c:
            c.execute("CREATE TABLE pool_probe (n int)")
            c.execute("INSERT INTO pool_probe VALUES (1)")
        with pytest.raises(RuntimeError), pool.connection() as c:
            c.execute("INSERT INTO pool_probe VALUES (2)")
            raise RuntimeError("the request failed")
        with pool.connection() as c:
            assert [r["n"] for r in c.execute("SELECT n FROM pool_probe").fetchall()] == [1]
            c.execute("DROP TABLE pool_probe")
    finally:
        pool.close()


def test_the_pool_works_again_after_close_and_reopen(conn, db_url):
    pool = ConnectionPool(db_url, min_size=1, max_size=2)
    try:
        assert pool.stats()["pool_size"] == 0  # nothing opened before the first use
        with pool.connection() as c:
            assert c.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        pool.close()
        with pool.connection() as c:  # closed: a connection of its own, closed after use
            assert c.execute("SELECT 2 AS two").fetchone() == {"two": 2}
        assert pool.stats()["pool_size"] == 0
        pool.reopen()
        with pool.connection() as c:
            assert c.execute("SELECT 3 AS three").fetchone() == {"three": 3}
        assert pool.stats()["pool_size"] >= 1
    finally:
        pool.close()


def test_a_pool_whose_connections_all_stay_busy_says_so(conn, db_url):
    pool = ConnectionPool(db_url, min_size=1, max_size=1, wait_seconds=1)
    try:
        with pool.connection(), pytest.raises(DatabaseUnavailableError) as raised, pool.connection():
            pass
        assert str(raised.value) == "all feedback database connections stayed busy for 1s"
        assert pool.stats()["requests_errors"] == 1
    finally:
        pool.close()


def test_a_connection_at_hand_is_an_idle_one_or_none_without_waiting(conn, db_url):
    pool = ConnectionPool(db_url, min_size=1, max_size=1, wait_seconds=30)
    try:
        with pool.connection() as c:  # opened, then idle in the pool
            c.execute("SELECT 1")
        with pool.connection_at_hand() as held:
            assert held is not None and held.execute("SELECT 1 AS one").fetchone() == {"one": 1}
            with pool.connection_at_hand() as other:  # the only one is taken: none, not a 30 s wait
                assert other is None
    finally:
        pool.close()
    with _unreachable_pool() as unreachable, unreachable.connection_at_hand() as none:
        assert none is None


def test_a_large_bad_batch_is_refused_by_its_parse_while_the_database_is_gone(conn, db_url, monkeypatch):
    """The look-ups asked before the parse need a live connection at hand; the pool's idle ones died with
    the server, so the body is parsed first and its problem (422) is reported at once, not the database's
    absence (503 after the pool's wait)."""
    monkeypatch.setattr(service_module, "MODEL_LOOKUP_HEAD", 4)
    items = [{"trace_id": str(uuid.uuid4()), "kind": "thumbs_up"} for _ in range(12)]
    items[7]["kind"] = "nope"
    raw = json.dumps({"items": items}).encode()
    real = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(real.get("host") or "127.0.0.1"), int(real.get("port") or 5432))
    pool = ConnectionPool(make_conninfo(db_url, host="127.0.0.1", port=proxy.port), wait_seconds=30)
    service = FeedbackService(CONFIG, pool=pool)
    try:
        with pool.connection() as c:  # idle in the pool, as after earlier requests
            c.execute("SELECT 1")
        proxy.cut()  # PostgreSQL "restarts": the idle connection is dead, new ones are refused
        with pytest.raises(batch_body.InvalidItems) as refused:
            service.submit_batch_body(raw, lambda: batch_body.parse(raw, 100))
    finally:
        service.close()
        proxy.close()
    assert refused.value.errors[0]["loc"] == ("items", 7, "kind")


def test_threads_finding_one_outages_dead_connections_log_one_warning(db_url, caplog):
    """Deliveries and requests check their pooled connections at the same moment; each found the outage
    and logged it (a flaky line count in test_delivery_outage). One warning, the others at debug level."""
    import logging

    import psycopg

    real = conninfo_to_dict(db_url)
    proxy = TcpProxy(str(real.get("host") or "127.0.0.1"), int(real.get("port") or 5432))
    url = make_conninfo(db_url, host="127.0.0.1", port=proxy.port)
    pool = ConnectionPool(url)
    dead = [psycopg.connect(url) for _ in range(4)]
    proxy.cut()  # every connection ended by the far side, as in a restart
    caplog.set_level(logging.DEBUG, logger="feedback_loop.api.pool")
    start = threading.Barrier(len(dead))
    failures: list[Exception] = []

    def check(conn: psycopg.Connection) -> None:
        start.wait()
        try:
            pool._check(conn)  # noqa: SLF001 - what psycopg_pool calls before handing a connection out
        except psycopg.Error as exc:
            failures.append(exc)

    try:
        _all_at_once([threading.Thread(target=check, args=(c,)) for c in dead])
    finally:
        for conn in dead:
            conn.close()
        proxy.close()
        pool.close()
    lines = [r for r in caplog.records if "dropping idle" in r.getMessage()]
    assert len(failures) == len(dead)  # every dead connection is still refused to its caller
    assert [r.levelname for r in lines].count("WARNING") == 1, [(r.levelname, r.getMessage()) for r in lines]
    assert len(lines) == len(dead)


@contextmanager
def _unreachable_pool() -> Iterator[ConnectionPool]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens once the socket is closed
    pool = ConnectionPool(f"postgresql://postgres@127.0.0.1:{closed_port}/x", wait_seconds=1)
    try:
        yield pool
    finally:
        pool.close()


def test_a_pool_that_cannot_connect_names_the_server_and_the_reason():
    with _unreachable_pool() as pool:
        with pytest.raises(DatabaseUnavailableError) as raised, pool.connection():
            pass
        assert str(raised.value).startswith("cannot connect to the feedback database at 127.0.0.1: ")


def test_a_refused_batch_leaves_no_look_up_waiting(conn, monkeypatch):
    """The rest's ids are reserved after the head's; a batch refused before that must still let the
    helper that looks up the rest finish (else it would hold a look-up thread for good)."""
    monkeypatch.setattr(service_module, "MODEL_LOOKUP_HEAD", 4)
    traces = _toy_traces(conn, 12)
    items = [FeedbackBody(trace_id=t, kind="thumbs_up") for t in traces]
    items[5] = FeedbackBody(trace_id=traces[5], kind="correction")  # no label: 422 before any look-up ends
    service = FeedbackService(CONFIG)
    try:
        with pytest.raises(Invalid):
            service.submit_batch(items)
        stopping = threading.Thread(target=service._lookups.shutdown, kwargs={"wait": True})
        stopping.start()
        stopping.join(timeout=10)
        assert not stopping.is_alive()
    finally:
        service.close()
    assert conn.execute("SELECT count(*) AS n FROM feedback").fetchone()["n"] == 0
