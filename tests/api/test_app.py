"""The feedback API mounted by our plugin in the real Airflow API app (create_app), with Airflow's own
tokens from POST /auth/token, against real PostgreSQL. Real server processes: tests/e2e/test_api_server.py.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import uuid
from types import SimpleNamespace
from unittest.mock import ANY

import pytest
from fastapi.testclient import TestClient

from feedback_loop.api import service as feedback_service

from ..support.api import (
    WEBHOOK_ENV,
    WebhookRecorder,
    airflow_app,
    auth_env,
    bearer,
    init_airflow_db,
    token,
    write_config,
)
from ..support.helpers import make_predictions, register_toy

pytestmark = pytest.mark.integration

PREFIX = "/feedback-api"
MAX_BODY = 100_000
MAX_BATCH = 50


@pytest.fixture(scope="module")
def api(db_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    env = auth_env(tmp)
    env["FEEDBACK_LOOP_CONFIG"] = str(
        write_config(tmp, low_rating_requires_comment=True, max_batch_size=MAX_BATCH, max_body_bytes=MAX_BODY)
    )
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv(WEBHOOK_ENV, raising=False)
        init_airflow_db()
        with TestClient(airflow_app()) as client:
            yield SimpleNamespace(
                client=client,
                writer=bearer(token(client, "writer")),
                reader=bearer(token(client, "reader")),
                clicker=bearer(token(client, "clicker")),
            )


def plugin_service(api):
    """The FeedbackService of the mounted plugin app (to wait for webhook deliveries)."""
    for route in api.client.app.routes:
        if getattr(route, "path", None) == PREFIX:
            return route.app.state.feedback_service
    raise AssertionError("feedback API is not mounted at /feedback-api")


@pytest.fixture
def traces(conn):
    register_toy(conn)
    conn.commit()
    found = make_predictions(conn, "toy", 1, 12)
    conn.commit()
    return found


def count(conn, table: str = "feedback") -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]  # noqa: S608 - fixed names


def post(api, body, headers=None, path="/feedback", **kwargs):
    return api.client.post(f"{PREFIX}{path}", json=body, headers={**api.writer, **(headers or {})}, **kwargs)


# ---- mounting, OpenAPI, auth ---------------------------------------------------------------------


def test_openapi_document_is_served_under_the_plugin_prefix(api):
    response = api.client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert set(document["paths"]) >= {
        "/feedback",
        "/feedback/batch",
        "/feedback/{feedback_id}",
        "/predictions/{trace_id}",
        "/models/{name}/versions",
        "/healthz",
    }
    post_feedback = document["paths"]["/feedback"]["post"]
    assert post_feedback["security"], "write routes must declare Airflow's bearer security"
    assert "security" not in document["paths"]["/healthz"]["get"]
    assert {"401", "403", "409", "422"} <= set(post_feedback["responses"])
    batch_body = document["paths"]["/feedback/batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch_body["schema"] == {"$ref": "#/components/schemas/BatchBody"}
    schemas = document["components"]["schemas"]
    assert schemas["BatchBody"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/FeedbackBody"
    }
    assert schemas["FeedbackBody"]["properties"]["rating"]["anyOf"][0] == {
        "maximum": 5,
        "minimum": 1,
        "type": "integer",
    }


def referenced_urls(html: str) -> list[str]:
    """Every URL an HTML page makes the browser load: src, href, and the document Swagger UI fetches."""
    return re.findall(r'(?:src|href)="([^"]*)"', html) + re.findall(r"url: '([^']*)'", html)


def test_api_docs_load_their_assets_from_the_api_itself_without_a_token(api):
    response = api.client.get(f"{PREFIX}/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = referenced_urls(response.text)
    # Only paths under the plugin's own prefix: nothing from a CDN.
    assert sorted(urls) == [
        f"{PREFIX}/docs-assets/favicon.png",
        f"{PREFIX}/docs-assets/swagger-ui-bundle.js",
        f"{PREFIX}/docs-assets/swagger-ui.css",
        f"{PREFIX}/openapi.json",
    ]
    assert "https:" not in response.text and "//cdn" not in response.text
    types = {}
    for url in urls:
        asset = api.client.get(url)
        assert asset.status_code == 200, url
        types[url.rsplit(".", 1)[-1]] = asset.headers["content-type"]
    assert types["png"] == "image/png" and types["json"] == "application/json"
    assert types["css"].startswith("text/css")
    assert types["js"].startswith(("text/javascript", "application/javascript"))
    # ReDoc is not served: its bundle always loads its vendor's logo from the vendor's CDN.
    assert api.client.get(f"{PREFIX}/redoc").status_code == 404


def test_swagger_ui_sends_the_document_to_no_online_validator(api):
    assert '"validatorUrl": null' in api.client.get(f"{PREFIX}/docs").text


def test_standalone_the_docs_assets_are_at_the_root():
    from feedback_loop.adapters.airflow_auth import airflow_access
    from feedback_loop.api.app import create_app

    client = TestClient(create_app(airflow_access()))  # no lifespan: nothing connects
    html = client.get("/docs").text
    urls = referenced_urls(html)
    assert sorted(urls) == [
        "/docs-assets/favicon.png",
        "/docs-assets/swagger-ui-bundle.js",
        "/docs-assets/swagger-ui.css",
        "/openapi.json",
    ]
    assert client.get("/docs-assets/swagger-ui-bundle.js").text.startswith("/*! For license information")


def test_healthz_needs_no_token(api):
    response = api.client.get(f"{PREFIX}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "pool": ANY}
    pool = response.json()["pool"]
    assert pool["pool_max"] == 16 and pool["pool_size"] >= 1 and pool["requests_waiting"] == 0


def test_without_a_token_every_route_is_401_and_nothing_is_stored(api, conn, traces):
    body = {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    assert api.client.post(f"{PREFIX}/feedback", json=body).status_code == 401
    assert api.client.post(f"{PREFIX}/feedback/batch", json={"items": [body]}).status_code == 401
    for path in ("/feedback/1", f"/predictions/{traces[0]}", "/models/toy/versions"):
        response = api.client.get(f"{PREFIX}{path}")
        assert response.status_code == 401, path
        assert response.json() == {"detail": "Not authenticated"}
    assert count(conn) == 0


def test_roles_without_write_permission_get_403_and_may_read(api, conn, traces):
    body = {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    for user_headers in (api.reader, api.clicker):
        response = api.client.post(f"{PREFIX}/feedback", json=body, headers=user_headers)
        assert response.status_code == 403
    assert count(conn) == 0
    stored = post(api, body)
    assert stored.status_code == 201
    read = api.client.get(f"{PREFIX}/feedback/{stored.json()['id']}", headers=api.reader)
    assert read.status_code == 200 and read.json()["kind"] == "thumbs_up"


def test_a_tampered_token_is_refused_by_airflows_check(api, conn, traces):
    header, payload, signature = api.writer["Authorization"].removeprefix("Bearer ").split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    response = api.client.post(
        f"{PREFIX}/feedback",
        json={"trace_id": str(traces[0]), "kind": "thumbs_up"},
        headers=bearer(forged),
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid JWT token"}
    assert count(conn) == 0


def test_a_revoked_token_is_refused_at_most_the_stated_bound_later(api, conn, traces, monkeypatch):
    from airflow.api_fastapi.app import get_auth_manager

    from feedback_loop.adapters import airflow_tokens

    fresh = token(api.client, "writer")
    body = {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    first = api.client.post(f"{PREFIX}/feedback", json=body, headers=bearer(fresh))
    assert first.status_code == 201
    get_auth_manager().revoke_token(fresh)
    later = airflow_tokens._now() + airflow_tokens.REVOCATION_BOUND_SECONDS + 0.5
    monkeypatch.setattr(airflow_tokens, "_now", lambda: later)
    refused = api.client.post(f"{PREFIX}/feedback", json=body, headers=bearer(fresh))
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Invalid JWT token"}
    assert count(conn) == 1
    # Another user's token is unaffected.
    assert post(api, body).status_code == 201


def test_the_same_token_works_on_airflows_own_rest_api(api):
    assert api.client.get("/api/v2/assets", headers=api.reader).status_code == 200


# ---- writes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "priority", "failure_mode", "negative"),
    [
        ({"kind": "thumbs_up"}, "low", None, False),
        ({"kind": "thumbs_down"}, "high", "unspecified", True),
        ({"kind": "thumbs_down", "comment": "this answer is wrong"}, "urgent", "wrong_output", True),
        ({"kind": "rating", "rating": 5}, "low", None, False),
        ({"kind": "rating", "rating": 1, "comment": "far too slow to be useful"}, "urgent", "latency", True),
        ({"kind": "correction", "label": "b"}, "high", "wrong_label", True),
        ({"kind": "comment", "comment": "a bit confusing layout"}, "normal", "confusing", False),
        ({"kind": "implicit", "signal": "accepted"}, "low", None, False),
        ({"kind": "implicit", "signal": "escalated"}, "urgent", "user_escalated", True),
    ],
)
def test_each_kind_is_stored_with_its_triage(api, conn, traces, extra, priority, failure_mode, negative):
    response = post(api, {"trace_id": str(traces[1]), "user_id": "u-1", **extra})
    assert response.status_code == 201, response.text
    row = response.json()
    assert (row["priority"], row["failure_mode"], row["is_negative"]) == (priority, failure_mode, negative)
    assert row["model_name"] == "toy" and row["model_version"] == 1
    assert row["source"] == ("implicit" if extra["kind"] == "implicit" else "api")
    stored = conn.execute("SELECT kind, priority FROM feedback WHERE id = %s", (row["id"],)).fetchone()
    assert stored == {"kind": extra["kind"], "priority": priority}


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"kind": "rating", "rating": 7}, "rating", "must be between 1 and 5"),
        ({"kind": "rating", "rating": "five"}, "rating", "must be an integer"),
        ({"kind": "rating", "rating": 4.5}, "rating", "must be an integer"),
        ({"kind": "meh"}, "kind", "must be one of 'thumbs_up'"),
        ({"kind": "thumbs_up", "trace_id": "not-a-uuid"}, "trace_id", "must be a UUID"),
        ({"kind": "thumbs_up", "trace_id": None}, "trace_id", "must be a UUID"),
        ({"kind": "thumbs_up", "colour": "red"}, "colour", "is not a known field"),
        # a name the reader could not see or find in their request is shown JSON-quoted
        ({"kind": "thumbs_up", "\t": 1}, '["\\t"]', "is not a known field"),
        ({"kind": "thumbs_up", "": 1}, '[""]', "is not a known field"),
        ({"kind": "thumbs_up", "a.b": 1}, '["a.b"]', "is not a known field"),
        ({"kind": "rating"}, "rating", "is required when kind is 'rating'"),
        ({"kind": "correction"}, "label", "is required when kind is 'correction'"),
        ({"kind": "implicit", "signal": "bored"}, "signal", "must be one of 'accepted'"),
        ({"kind": "thumbs_up", "rating": 3}, "rating", "only allowed when kind is 'rating'"),
        ({"kind": "comment", "comment": "x" * 4001}, "comment", "at most 4000 characters"),
        ({"kind": "rating", "rating": 2}, "comment", "a rating of 2 needs a comment of at least 10"),
        ({"kind": "rating", "rating": 1, "comment": "bad"}, "comment", "at least 10 characters"),
        ({"kind": "thumbs_up", "client_event_id": " padded"}, "client_event_id", "printable text"),
        ({"kind": "comment", "comment": "nul\u0000byte"}, "comment", "must not contain NUL"),
    ],
)
def test_malformed_feedback_is_422_naming_the_field_and_stores_nothing(
    api, conn, traces, body, field, reason
):
    payload = {"trace_id": str(traces[0]), **body}
    response = post(api, payload)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(p["field"] == field and reason in p["reason"] for p in problems), problems
    assert count(conn) == 0


def test_missing_field_and_broken_json_are_422(api, conn, traces):
    response = post(api, {"kind": "thumbs_up"})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"field": "trace_id", "reason": "is required"}]
    broken = api.client.post(
        f"{PREFIX}/feedback",
        content=b'{"trace_id": "x", "kind": ',
        headers={**api.writer, "Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["field"] == "body"
    assert "not valid JSON" in broken.json()["detail"][0]["reason"]
    assert count(conn) == 0


def test_unknown_trace_is_404_and_stores_nothing(api, conn, traces):
    unknown = uuid.uuid4()
    response = post(api, {"trace_id": str(unknown), "kind": "thumbs_up"}, {"Idempotency-Key": "k-404"})
    assert response.status_code == 404
    assert response.json()["detail"] == [
        {"field": "trace_id", "reason": f"no prediction was logged with trace_id {unknown}"}
    ]
    assert count(conn) == 0


def test_oversize_body_is_413_naming_the_limit(api, conn, traces):
    body = {"trace_id": str(traces[0]), "kind": "comment", "comment": "y" * (MAX_BODY + 10)}
    response = post(api, body)
    assert response.status_code == 413
    assert response.json()["detail"] == [
        {"field": "body", "reason": f"request body is larger than the limit of {MAX_BODY} bytes"}
    ]
    assert count(conn) == 0


def test_retry_with_the_same_key_returns_the_original_and_other_body_is_409(api, conn, traces):
    body = {"trace_id": str(traces[0]), "kind": "rating", "rating": 4, "user_id": "u-9"}
    first = post(api, body, {"Idempotency-Key": "evt-1"})
    again = post(api, body, {"Idempotency-Key": "evt-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    conflict = post(api, {**body, "rating": 5}, {"Idempotency-Key": "evt-1"})
    assert conflict.status_code == 409
    assert conflict.json()["detail"][0]["field"] == "Idempotency-Key"
    # client_event_id in the body is the same key as the header.
    via_body = post(api, {**body, "client_event_id": "evt-1"})
    assert via_body.status_code == 200 and via_body.json()["id"] == first.json()["id"]
    mismatch = post(api, {**body, "client_event_id": "evt-2"}, {"Idempotency-Key": "evt-1"})
    assert mismatch.status_code == 422 and mismatch.json()["detail"][0]["field"] == "Idempotency-Key"
    assert count(conn) == 1


def test_personal_data_in_comments_is_masked_before_it_is_stored(api, conn, traces):
    secrets = ["jane.doe@example.org", "+44 20 7946 0958", "4111 1111 1111 1111"]
    comment = f"wrong again, mail {secrets[0]} or call {secrets[1]}; I paid with {secrets[2]}"
    response = post(api, {"trace_id": str(traces[2]), "kind": "thumbs_down", "comment": comment})
    assert response.status_code == 201
    assert response.json()["comment"] == "wrong again, mail [email] or call [phone]; I paid with [card]"
    everything = json.dumps(
        [
            conn.execute("SELECT to_jsonb(f) AS r FROM feedback f").fetchall(),
            conn.execute("SELECT to_jsonb(n) AS r FROM notifications n").fetchall(),
        ],
        default=str,
    )
    for secret in secrets:
        assert secret not in everything
    assert count(conn, "notifications") == 1  # urgent: thumbs-down with a comment


HOSTILE_PII = [
    "4111 1111 1111 1111 12/28",
    "4111-1111-1111-1111/12/28",
    "+49 30 1234567 / 0171 5550199",
    "DE89 3704 0044 0532 0130 00",
    "GB29NWBK60161331926819",
    "jürgen.müller@bücher.de",
    "192.168.1.20",
    "2001:db8::8a2e:370:7334",
]


def test_hostile_personal_data_never_reaches_the_store_the_outbox_or_the_webhook(
    api, conn, traces, monkeypatch
):
    """Issue 14: formats the masker missed, and a user id that is an e-mail address, on the single and the
    batch path; the urgent notification is captured at a local webhook."""
    comment = "wrong! " + "; ".join(HOSTILE_PII)
    user_id = "jane.doe@example.org"
    with WebhookRecorder() as hook:
        monkeypatch.setenv(WEBHOOK_ENV, hook.url)
        single = post(
            api, {"trace_id": str(traces[5]), "kind": "thumbs_down", "comment": comment, "user_id": user_id}
        )
        batch = post(
            api,
            {
                "items": [
                    {
                        "trace_id": str(traces[6]),
                        "kind": "thumbs_down",
                        "comment": comment,
                        "user_id": user_id,
                    }
                ]
            },
            path="/feedback/batch",
        )
        assert single.status_code == 201 and batch.status_code == 201, (single.text, batch.text)
        assert plugin_service(api).wait_for_deliveries(10)
    assert len(hook.received) == 2
    rows = conn.execute("SELECT comment, user_id FROM feedback ORDER BY id").fetchall()
    assert rows[0] == rows[1]
    assert rows[0]["user_id"] != user_id and rows[0]["user_id"] == single.json()["user_id"]
    everything = json.dumps(
        [
            single.json(),
            batch.json(),
            conn.execute("SELECT to_jsonb(f) AS r FROM feedback f").fetchall(),
            conn.execute("SELECT to_jsonb(n) AS r FROM notifications n").fetchall(),
            hook.received,
        ],
        default=str,
        ensure_ascii=False,
    )
    for secret in [
        *HOSTILE_PII,
        user_id,
        "4111",
        "1234567",
        "5550199",
        "0532",
        "60161331",
        "bücher",
        "370:7334",
    ]:
        assert secret not in everything, secret
    assert re.search(r"\d{4}", rows[0]["comment"]) is None, rows[0]["comment"]


# ---- batch -----------------------------------------------------------------------------------------


def batch_items(traces, n=20, prefix="b"):
    return [
        {
            "trace_id": str(traces[i % len(traces)]),
            "kind": "rating",
            "rating": 3 + i % 3,
            "client_event_id": f"{prefix}-{i}",
        }
        for i in range(n)
    ]


def test_the_collector_stays_on_for_every_request_and_the_start_up_heap_is_frozen(api, traces, monkeypatch):
    """No process-wide switching of the collector inside Airflow's api-server: a batch, our other routes and
    Airflow's own all run with it on; what was alive when the server started is frozen instead."""
    assert gc.get_freeze_count() > 0, "the plugin app's start-up froze the heap"
    service = plugin_service(api)
    submit, seen = service.submit_batch, []

    def watched(*args, **kwargs):
        seen.append(gc.isenabled())
        return submit(*args, **kwargs)

    monkeypatch.setattr(service, "submit_batch", watched)
    items = [
        {"trace_id": str(traces[0]), "kind": "thumbs_up", "client_event_id": f"gc-{i}"} for i in range(20)
    ]
    assert post(api, {"items": items}, path="/feedback/batch").status_code == 201
    assert api.client.get("/api/v2/monitor/health").status_code == 200  # Airflow's own route
    assert seen == [True] and gc.isenabled()


@pytest.fixture(params=["one look-up", "two look-ups", "asked before the parse"])
def model_lookups(request, monkeypatch):
    """A batch's models are looked up at once; or (as for a batch of over 2,000 items) all of them, and the
    ids, asked of PostgreSQL before the body is parsed; or, when that cannot be (trace ids written in
    another form), the head's first and the rest's while the head's rows are copied in. 4 items make these
    tests' batches take one of the last two ways."""
    if request.param != "one look-up":
        monkeypatch.setattr(feedback_service, "MODEL_LOOKUP_HEAD", 4)
    if request.param == "two look-ups":
        monkeypatch.setattr(feedback_service.batch_body, "trace_ids", lambda raw, limit: None)
    return request.param


def test_batch_is_stored_in_order_and_retries_store_nothing(api, conn, traces, model_lookups):
    items = batch_items(traces)
    first = post(api, {"items": items}, path="/feedback/batch")
    assert first.status_code == 201, first.text
    outcome = first.json()
    assert outcome["created"] == 20 and outcome["duplicates"] == 0
    ids = [r["id"] for r in outcome["items"]]
    stored = conn.execute("SELECT id, idempotency_key FROM feedback ORDER BY id").fetchall()
    assert [r["idempotency_key"] for r in stored] == [f"b-{i}" for i in range(20)]
    assert ids == [r["id"] for r in stored]
    retry = post(api, {"items": items}, path="/feedback/batch")
    assert retry.status_code == 200
    assert retry.json()["created"] == 0 and [r["id"] for r in retry.json()["items"]] == ids
    # A batch that overlaps an earlier one stores only the new items.
    overlap = post(api, {"items": items[10:] + batch_items(traces, 25)[20:]}, path="/feedback/batch")
    assert overlap.json()["created"] == 5 and overlap.json()["duplicates"] == 10
    assert count(conn) == 25


def test_batch_header_key_makes_unkeyed_items_retry_safe(api, conn, traces, model_lookups):
    items = [{"trace_id": str(t), "kind": "thumbs_up"} for t in traces]
    first = post(api, {"items": items}, {"Idempotency-Key": "upload-7"}, path="/feedback/batch")
    again = post(api, {"items": items}, {"Idempotency-Key": "upload-7"}, path="/feedback/batch")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["items"] == [{**r, "created": False} for r in first.json()["items"]]
    ids = [r["id"] for r in first.json()["items"]]
    assert ids == sorted(ids)  # rising in item order, also when the rest's ids come from a helper
    unkeyed = post(api, {"items": items}, path="/feedback/batch")
    assert unkeyed.json()["created"] == 12
    assert count(conn) == 24


def test_a_large_new_batch_asks_postgresql_before_its_body_is_parsed(api, conn, traces, monkeypatch):
    """Every item's model and the ids are asked for first, from the trace ids found in the raw body, and
    PostgreSQL answers while the body is parsed."""
    monkeypatch.setattr(feedback_service, "MODEL_LOOKUP_HEAD", 4)  # 12 items: "large"
    steps: list[str] = []
    send, parse = feedback_service.store.send_models_and_ids, feedback_service.batch_body.parse

    def asked(*args):
        steps.append("asked")
        return send(*args)

    def parsed(*args):
        steps.append("parsed")
        return parse(*args)

    # A pooled connection is free (as in a server that has served requests): else the batch would not wait.
    assert (
        post(api, {"items": batch_items(traces, 1, prefix="warm")}, path="/feedback/batch").status_code == 201
    )
    monkeypatch.setattr(feedback_service.store, "send_models_and_ids", asked)
    monkeypatch.setattr(feedback_service.batch_body, "parse", parsed)
    items = batch_items(traces, 12, prefix="ahead")
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == 201, response.text
    assert steps == ["asked", "parsed"]
    ids = [r["id"] for r in response.json()["items"]]
    stored = conn.execute(
        "SELECT id, trace_id, idempotency_key FROM feedback WHERE idempotency_key LIKE 'ahead-%' ORDER BY id"
    ).fetchall()
    assert [r["id"] for r in stored] == ids  # rising in item order
    assert [(str(r["trace_id"]), r["idempotency_key"]) for r in stored] == [
        (item["trace_id"], item["client_event_id"]) for item in items
    ]


def test_a_large_batch_the_parser_refuses_after_asking_early_is_422_and_stores_nothing(
    api, conn, traces, monkeypatch, caplog
):
    monkeypatch.setattr(feedback_service, "MODEL_LOOKUP_HEAD", 4)
    assert (
        post(api, {"items": batch_items(traces, 1, prefix="warm")}, path="/feedback/batch").status_code == 201
    )
    before = count(conn)
    asked: list[int] = []
    send = feedback_service.store.send_models_and_ids
    monkeypatch.setattr(
        feedback_service.store, "send_models_and_ids", lambda *args: asked.append(args[2]) or send(*args)
    )
    items = batch_items(traces, 12, prefix="refused")
    items[9]["kind"] = "nope"
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == 422, response.text
    assert asked == [12]
    assert response.json()["detail"][0]["field"] == "items[9].kind"
    assert count(conn) == before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "pipeline" in r.getMessage()]


@pytest.mark.parametrize("shape", ["a trace_id given twice in one item", "upper-case trace ids"])
def test_trace_ids_the_parsed_body_does_not_confirm_are_not_used(api, conn, traces, monkeypatch, shape):
    """The trace ids found in the raw body are a guess: where the parsed items say otherwise (JSON keeps
    the last of a repeated key) or they are not written as the parser writes them, the batch is stored
    from the parsed items alone."""
    monkeypatch.setattr(feedback_service, "MODEL_LOOKUP_HEAD", 4)
    assert (
        post(api, {"items": batch_items(traces, 1, prefix="warm")}, path="/feedback/batch").status_code == 201
    )
    asked: list[int] = []
    send = feedback_service.store.send_models_and_ids
    monkeypatch.setattr(
        feedback_service.store, "send_models_and_ids", lambda *args: asked.append(args[2]) or send(*args)
    )
    items = batch_items(traces, 12, prefix="guess")
    raw = json.dumps({"items": items})
    if shape == "upper-case trace ids":
        raw = raw.replace(items[3]["trace_id"], items[3]["trace_id"].upper())
    else:  # an unknown trace id first, the item's own last: the item is about its own
        raw = raw.replace('{"trace_id"', f'{{"trace_id": "{uuid.uuid4()}", "trace_id"', 1)
    response = api.client.post(
        f"{PREFIX}/feedback/batch", content=raw, headers={**api.writer, "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    # Asked for the 13 trace ids found (the repeated key's both), or not at all when one is not written
    # canonically; then the usual way asks for the head's 4.
    assert asked == ([13, 4] if shape == "a trace_id given twice in one item" else [4])
    stored = conn.execute(
        "SELECT trace_id, idempotency_key FROM feedback WHERE idempotency_key LIKE 'guess-%' ORDER BY id"
    ).fetchall()
    assert [(str(r["trace_id"]), r["idempotency_key"]) for r in stored] == [
        (item["trace_id"], item["client_event_id"]) for item in items
    ]


def test_a_batch_idempotency_key_reused_with_another_batch_is_409_and_stores_nothing(api, conn, traces):
    """Issue 14: the key named item keys `<key>:<i>`, so more items under a used key were stored
    (201 created 2, duplicates 3) and one item of the batch replayed as if it were the batch (200)."""
    items = [{"trace_id": str(t), "kind": "thumbs_up"} for t in traces[:5]]
    key = {"Idempotency-Key": "upload-9"}
    first = post(api, {"items": items[:3]}, key, path="/feedback/batch")
    assert first.status_code == 201 and first.json()["created"] == 3
    for other in (
        items,  # more items
        items[:1],  # fewer
        [items[0], items[1], {**items[2], "kind": "thumbs_down"}],  # one changed
        [items[1], items[0], items[2]],  # another order
        [items[0], items[1], {**items[2], "client_event_id": "own-2"}],  # an item's own id added
    ):
        response = post(api, {"items": other}, key, path="/feedback/batch")
        assert response.status_code == 409, response.text
        assert response.json()["detail"] == [
            {"field": "Idempotency-Key", "reason": "'upload-9' was already used with a different batch"}
        ]
    assert count(conn) == 3
    replay = post(api, {"items": items[:3]}, key, path="/feedback/batch")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["items"] == [{**r, "created": False} for r in first.json()["items"]]
    assert count(conn) == 3


def test_single_and_batch_idempotency_keys_never_collide(api, conn, traces):
    """A batch's items used to be stored under `<key>:<i>`: a single event sent with key `k:0` then made
    item 0 of a batch with key `k` a duplicate, or that batch's item 0 answered the single POST."""
    one = {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    single = post(api, one, {"Idempotency-Key": "up-1:0"})
    assert single.status_code == 201
    batch = post(api, {"items": [one, one]}, {"Idempotency-Key": "up-1"}, path="/feedback/batch")
    assert batch.status_code == 201 and batch.json()["created"] == 2, batch.text
    assert batch.json()["items"][0]["id"] != single.json()["id"]
    later = post(api, one, {"Idempotency-Key": "up-2:1"})  # as if item 1 of a batch sent later
    assert later.status_code == 201
    batch2 = post(api, {"items": [one, one]}, {"Idempotency-Key": "up-2"}, path="/feedback/batch")
    assert batch2.status_code == 201 and batch2.json()["created"] == 2
    # One key, one request: a key used by a single event is not a batch's key, nor the reverse.
    for response in (
        post(api, {"items": [one]}, {"Idempotency-Key": "up-1:0"}, path="/feedback/batch"),
        post(api, one, {"Idempotency-Key": "up-1"}),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["detail"][0]["field"] == "Idempotency-Key"
    assert count(conn) == 6


def test_batch_repeating_a_key_inside_the_batch(api, conn, traces):
    item = {"trace_id": str(traces[0]), "kind": "thumbs_up", "client_event_id": "dup"}
    same = post(api, {"items": [item, item]}, path="/feedback/batch")
    assert same.status_code == 201
    assert same.json()["items"][0]["id"] == same.json()["items"][1]["id"]
    assert same.json()["created"] == 1 and count(conn) == 1
    other = post(
        api,
        {
            "items": [
                {**item, "client_event_id": "d2"},
                {**item, "kind": "thumbs_down", "client_event_id": "d2"},
            ]
        },
        path="/feedback/batch",
    )
    assert other.status_code == 422
    assert other.json()["detail"][0] == {
        "field": "items[1].client_event_id",
        "reason": "repeats the key of items[0] with a different body",
    }
    assert count(conn) == 1


@pytest.mark.parametrize(
    ("bad_item", "status", "field", "reason"),
    [
        ({"kind": "rating", "rating": 9}, 422, "items[7].rating", "must be between 1 and 5"),
        ({"kind": "correction"}, 422, "items[7].label", "is required"),
        ({"kind": "thumbs_up", "trace_id": "UNKNOWN"}, 404, "items[7].trace_id", "no prediction was logged"),
        (
            {"kind": "rating", "rating": 5, "user_id": "x", "client_event_id": "b-3"},
            409,
            "items[7].client_event_id",
            "different body",
        ),
    ],
)
def test_batch_is_all_or_nothing(api, conn, traces, bad_item, status, field, reason, model_lookups):
    post(api, {"items": batch_items(traces, 5)}, path="/feedback/batch")  # b-0 .. b-4 stored before
    before = count(conn)
    items = batch_items(traces, 12, prefix="new")
    bad = {"trace_id": str(traces[0]), **bad_item}
    if bad.get("trace_id") == "UNKNOWN":
        bad["trace_id"] = str(uuid.uuid4())
    items[7] = bad
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == status, response.text
    first = response.json()["detail"][0]
    assert first["field"] == field and reason in first["reason"]
    assert count(conn) == before


def test_unknown_traces_are_all_named_wherever_they_are_in_the_batch(api, conn, traces, model_lookups):
    items = batch_items(traces, 12, prefix="unknown")
    for i in (1, 9):  # in the head and in the rest when looked up in two parts
        items[i] = {**items[i], "trace_id": str(uuid.uuid4())}
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == 404, response.text
    assert [p["field"] for p in response.json()["detail"]] == ["items[1].trace_id", "items[9].trace_id"]
    only_late = batch_items(traces, 12, prefix="late")
    only_late[11] = {**only_late[11], "trace_id": str(uuid.uuid4())}
    response = post(api, {"items": only_late}, path="/feedback/batch")
    assert response.status_code == 404, response.text
    assert [p["field"] for p in response.json()["detail"]] == ["items[11].trace_id"]
    assert count(conn) == 0


def test_an_items_own_problem_is_reported_before_any_other_wherever_it_is(api, conn, traces, model_lookups):
    stored = batch_items(traces, 3)
    post(api, {"items": stored}, path="/feedback/batch")  # b-0 .. b-2 stored before
    before = count(conn)
    items = batch_items(traces, 12, prefix="order")
    items[1] = {**items[1], "trace_id": str(uuid.uuid4())}  # unknown trace (404) in the head
    items[2] = {**stored[0], "rating": 5 if stored[0]["rating"] != 5 else 4}  # b-0 with another body (409)
    items[10] = {**items[10], "kind": "correction", "rating": None}  # no label (422), late in the batch
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"] == "items[10].label"
    items[1] = {**items[1], "trace_id": str(traces[1])}
    response = post(api, {"items": items}, path="/feedback/batch")  # the 409 and the 422: still 422
    assert response.status_code == 422, response.text
    assert count(conn) == before


def test_an_unknown_trace_is_reported_before_a_reused_key_wherever_it_is(api, conn, traces, model_lookups):
    """Traces were all looked up before keys were compared; with the rest's models arriving during the
    COPY, a trace unknown there must still come first (404), before a key repeated with another body
    (422) or one stored before with another body (409), whichever the attempt met first."""
    stored = batch_items(traces, 3)
    post(api, {"items": stored}, path="/feedback/batch")  # b-0 .. b-2 stored before
    before = count(conn)
    repeated = batch_items(traces, 12, prefix="rep")
    repeated[2] = {**repeated[1], "rating": 5 if repeated[1]["rating"] != 5 else 4}  # key of items[1]
    reused = batch_items(traces, 12, prefix="reuse")
    reused[2] = {**stored[0], "rating": 5 if stored[0]["rating"] != 5 else 4}  # b-0 with another body
    for items in (repeated, reused):
        items[10] = {**items[10], "trace_id": str(uuid.uuid4())}  # among the rest when looked up in parts
        response = post(api, {"items": items}, path="/feedback/batch")
        assert response.status_code == 404, response.text
        assert response.json()["detail"][0]["field"] == "items[10].trace_id"
    assert count(conn) == before


def test_batch_over_the_configured_size_is_422_naming_the_limit(api, conn, traces):
    response = post(api, {"items": batch_items(traces, MAX_BATCH + 1)}, path="/feedback/batch")
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "field": "items",
            "reason": f"at most {MAX_BATCH} items per batch (got {MAX_BATCH + 1}); split the batch",
        }
    ]
    assert post(api, {"items": []}, path="/feedback/batch").status_code == 422
    assert count(conn) == 0


@pytest.mark.parametrize("item", [{}, 0, []], ids=["empty_objects", "numbers", "empty_arrays"])
def test_an_over_long_batch_is_refused_by_its_length_before_any_item_is_validated(api, conn, item):
    """Issue 14: items were validated first, so 20,000 empty items meant 40,000 'is required' errors
    (and a million of them 2 GB of server memory; tests/reliability/test_hostile_input.py)."""
    n = 20_000  # 60-80 kB: under the body limit
    body = json.dumps({"items": [item] * n}, separators=(",", ":")).encode()
    headers = {**api.writer, "Content-Type": "application/json"}
    response = api.client.post(f"{PREFIX}/feedback/batch", content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"field": "items", "reason": f"at most {MAX_BATCH} items per batch (got {n}); split the batch"}
    ]
    assert count(conn) == 0


def test_bad_items_report_the_first_problems_across_items_and_no_more(api, conn, traces):
    item = {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    many_unknown = {**item, **{f"x{i}": i for i in range(500)}}
    items = [item, 0, {**item, "rating": 9}, many_unknown, {}, item]
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[:4] == [
        {"field": "items[1]", "reason": "must be a JSON object"},
        {"field": "items[2].rating", "reason": "must be between 1 and 5"},
        {"field": "items[3].x0", "reason": "is not a known field"},
        {"field": "items[3].x1", "reason": "is not a known field"},
    ]
    assert len(detail) == 20 and detail[-1] == {"field": "items[3].x17", "reason": "is not a known field"}
    assert count(conn) == 0


def test_a_batch_holding_far_more_values_than_its_items_can_is_refused_unparsed(api, conn, traces):
    deep = {"trace_id": str(traces[0]), "kind": "comment", "comment": "x", "user_id": "u"}
    wide = {**deep, "label": [[]] * 2000}  # far more than the 9 values of a full item, times 50 items
    nested = json.dumps({"items": [wide]})
    headers = {**api.writer, "Content-Type": "application/json"}
    response = api.client.post(f"{PREFIX}/feedback/batch", content=nested.encode(), headers=headers)
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["field"] == "items" and "JSON values" in problem["reason"]
    assert count(conn) == 0


# ---- triage side effects -----------------------------------------------------------------------------


def test_negative_share_over_threshold_opens_one_review_item(api, conn, traces):
    def send(kind, i):
        assert post(api, {"trace_id": str(traces[i]), "kind": kind}).status_code == 201

    for i in range(7):
        send("thumbs_up", i)
    for i in range(7, 10):
        send("thumbs_down", i)
    # 3 of the last 10 negative: 30% is not more than the 30% threshold.
    assert count(conn, "review_items") == 0
    send("thumbs_down", 10)
    items = conn.execute("SELECT trace_id, reason, priority, status FROM review_items").fetchall()
    assert items == [
        {
            "trace_id": traces[10],
            "reason": "negative_feedback",
            "priority": pytest.approx(0.4),
            "status": "queued",
        }
    ]
    topics = [r["topic"] for r in conn.execute("SELECT topic FROM notifications").fetchall()]
    assert topics == ["negative_feedback_rate"]


def test_urgent_feedback_is_delivered_to_the_webhook_after_the_commit(api, conn, traces, monkeypatch):
    with WebhookRecorder() as hook:
        monkeypatch.setenv(WEBHOOK_ENV, hook.url)
        response = post(
            api, {"trace_id": str(traces[3]), "kind": "rating", "rating": 1, "comment": "totally wrong digit"}
        )
        assert response.status_code == 201
        assert plugin_service(api).wait_for_deliveries(10)
    assert len(hook.received) == 1
    assert hook.received[0]["text"] == "Urgent feedback on toy v1: rating 1"
    assert "wrong_output" in hook.received[0]["blocks"][1]["text"]["text"]
    row = conn.execute("SELECT topic, status, attempts FROM notifications").fetchone()
    assert row == {"topic": "urgent_feedback", "status": "delivered", "attempts": 1}


def test_urgent_feedback_without_a_webhook_waits_in_the_outbox_and_no_delivery_reads_it(
    api, conn, traces, monkeypatch
):
    """With no webhook configured a delivery would only read the row to leave it pending: none is queued,
    and deliver-pending posts it once a webhook is set (test_deliver_pending_command_retries_the_outbox)."""
    from feedback_loop.core import notify

    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    read: list[int] = []
    real_stored = notify.stored

    def stored(connection, notification_id):
        read.append(notification_id)
        return real_stored(connection, notification_id)

    monkeypatch.setattr(notify, "stored", stored)
    response = post(
        api, {"trace_id": str(traces[3]), "kind": "rating", "rating": 1, "comment": "totally wrong digit"}
    )
    assert response.status_code == 201
    assert plugin_service(api).wait_for_deliveries(5)
    assert read == []
    row = conn.execute("SELECT topic, status, attempts FROM notifications").fetchone()
    assert row == {"topic": "urgent_feedback", "status": "pending", "attempts": 0}


# ---- reads -------------------------------------------------------------------------------------------


def test_reads_return_stored_feedback_predictions_and_versions(api, conn, traces):
    created = post(api, {"trace_id": str(traces[4]), "kind": "correction", "label": "b"}).json()
    one = api.client.get(f"{PREFIX}/feedback/{created['id']}", headers=api.reader)
    assert one.status_code == 200 and one.json() == created
    prediction = api.client.get(f"{PREFIX}/predictions/{traces[4]}", headers=api.reader).json()
    assert prediction["output_label"] == "a" and [f["id"] for f in prediction["feedback"]] == [created["id"]]
    versions = api.client.get(f"{PREFIX}/models/toy/versions", headers=api.reader)
    assert versions.status_code == 200
    assert [(v["version"], v["status"]) for v in versions.json()] == [(1, "registered")]
    assert api.client.get(f"{PREFIX}/feedback/999999", headers=api.reader).status_code == 404
    missing = api.client.get(f"{PREFIX}/predictions/{uuid.uuid4()}", headers=api.reader)
    assert missing.status_code == 404 and missing.json()["detail"][0]["field"] == "trace_id"
    unknown_model = api.client.get(f"{PREFIX}/models/nope/versions", headers=api.reader)
    assert (
        unknown_model.status_code == 404
        and "unknown model 'nope'" in unknown_model.json()["detail"][0]["reason"]
    )
    bad_id = api.client.get(f"{PREFIX}/feedback/abc", headers=api.reader)
    assert bad_id.status_code == 422 and bad_id.json()["detail"][0] == {
        "field": "feedback_id",
        "reason": "must be an integer",
    }


def test_batch_stores_text_with_backslashes_tabs_and_newlines_exactly(api, conn, traces):
    tricky = 'C:\\path\\N\tcol\nline2\r\nend "quoted" ünïcode 🙂 \\\\N'
    items = [
        {"trace_id": str(traces[0]), "kind": "comment", "comment": tricky, "user_id": "tab\there"},
        {"trace_id": str(traces[1]), "kind": "correction", "label": "back\\slash", "comment": None},
    ]
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == 201, response.text
    rows = conn.execute("SELECT comment, user_id, label FROM feedback ORDER BY id").fetchall()
    assert rows == [
        {"comment": tricky, "user_id": "tab\there", "label": None},
        {"comment": None, "user_id": None, "label": "back\\slash"},
    ]


def test_a_batch_that_tips_the_negative_share_opens_a_review_item(api, conn, traces):
    items = [{"trace_id": str(traces[i]), "kind": "thumbs_up"} for i in range(6)]
    items += [{"trace_id": str(traces[i]), "kind": "correction", "label": "b"} for i in range(6, 10)]
    response = post(api, {"items": items}, path="/feedback/batch")
    assert response.status_code == 201 and response.json()["review_items_opened"] == 1
    opened = conn.execute("SELECT trace_id, reason, priority FROM review_items").fetchall()
    # The newest negative item of the batch (the last one) tipped the share: 4 of 10 > 30%.
    assert opened == [{"trace_id": traces[9], "reason": "negative_feedback", "priority": pytest.approx(0.4)}]


def test_broken_or_undecodable_batch_bodies_name_the_body(api, conn, traces):
    headers = {**api.writer, "Content-Type": "application/json"}
    broken = api.client.post(f"{PREFIX}/feedback/batch", content=b'{"items": [', headers=headers)
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["field"] == "body"
    assert "not valid JSON" in broken.json()["detail"][0]["reason"]
    latin1 = api.client.post(
        f"{PREFIX}/feedback", content='{"kind": "ça"}'.encode("latin-1"), headers=headers
    )
    assert latin1.status_code in (400, 422)
    assert latin1.json()["detail"][0]["field"] == "body"
    assert count(conn) == 0
