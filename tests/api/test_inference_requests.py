"""Apps enqueue inference requests under their own request ids through the feedback API, the requests are
scored by the library code the feedback_inference DAG runs, and the app reads back trace ids, predictions
and confidences by its ids: the real Airflow API app with our plugin, Airflow tokens, real PostgreSQL.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from feedback_loop.core import config
from feedback_loop.inference import scoring
from feedback_loop.registry import versions as registry

from ..support.api import (
    WEBHOOK_ENV,
    airflow_app,
    auth_env,
    bearer,
    init_airflow_db,
    token,
    write_config,
)
from ..support.helpers import register_toy

pytestmark = pytest.mark.integration

PREFIX = "/feedback-api"
MAX_REQUESTS = 12


@pytest.fixture(scope="module")
def api(db_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api-requests")
    env = auth_env(tmp)
    env["FEEDBACK_LOOP_CONFIG"] = str(write_config(tmp, max_request_batch_size=MAX_REQUESTS))
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


def item(request_id: str, f0: float = 0.5, f1: float = 0.0, **extra) -> dict:
    return {"request_id": request_id, "input": {"f0": f0, "f1": f1}, **extra}


def enqueue(api, items: list[dict], model_name: str = "digits", headers=None):
    body = {"model_name": model_name, "items": items}
    return api.client.post(f"{PREFIX}/requests", json=body, headers=headers or api.writer)


def read_many(api, ids: list[str], model_name: str = "digits"):
    return api.client.get(f"{PREFIX}/requests/{model_name}", params={"request_id": ids}, headers=api.reader)


def read_one(api, request_id: str, model_name: str = "digits"):
    return api.client.get(f"{PREFIX}/requests/{model_name}/{request_id}", headers=api.reader)


def score(conn) -> scoring.BatchResult:
    """One scoring round exactly as the feedback_inference DAG's score_requests task runs it."""
    result = scoring.score_batch(conn, config.load().model("digits"), threshold=0.8, batch_size=100)
    conn.commit()
    return result


def stored(conn) -> list[dict]:
    conn.commit()
    return conn.execute("SELECT request_id, input, slice FROM inference_requests ORDER BY id").fetchall()


# ---- the loop an app runs ---------------------------------------------------------------------------


def test_an_app_enqueues_ten_requests_and_reads_back_their_traces_predictions_and_confidences(
    api, conn, digits_champion
):
    ids = [f"order-{1040 + i}" for i in range(10)]
    sent = enqueue(
        api, [item(rid, f0=-2.0 + 0.45 * i, slice={"channel": "web"}) for i, rid in enumerate(ids)]
    )
    assert sent.status_code == 201, sent.text
    outcome = sent.json()
    assert (outcome["model_name"], outcome["created"], outcome["existing"]) == ("digits", 10, 0)
    assert [(r["request_id"], r["status"], r["created"], r["trace_id"]) for r in outcome["items"]] == [
        (rid, "pending", True, None) for rid in ids
    ]
    # Accepted means committed: another connection sees every request at once.
    assert [r["request_id"] for r in stored(conn)] == ids
    before = read_many(api, ids)
    assert before.status_code == 200
    assert {r["status"] for r in before.json()["items"]} == {"pending"}

    assert score(conn).scored == 10

    one_by_one = []
    for rid in ids:
        response = read_one(api, rid)
        assert response.status_code == 200, response.text
        one_by_one.append(response.json())
    together = read_many(api, ids).json()
    assert (together["known"], together["unknown"]) == (10, 0)
    assert together["items"] == one_by_one
    traces = [r["trace_id"] for r in one_by_one]
    assert len(set(traces)) == 10
    predictions = {
        str(p["trace_id"]): p
        for p in conn.execute(
            "SELECT trace_id, output_label, confidence, model_version, slice FROM predictions"
        )
    }
    assert set(predictions) == set(traces)
    for read, rid, internal in zip(one_by_one, ids, outcome["items"], strict=True):
        logged = predictions[read["trace_id"]]
        assert (read["request_id"], read["id"], read["status"], read["error"]) == (
            rid,
            internal["id"],
            "scored",
            None,
        )
        assert read["prediction"] == logged["output_label"] and read["prediction"] in {"a", "b"}
        assert read["confidence"] == pytest.approx(logged["confidence"]) and 0.5 <= read["confidence"] <= 1
        assert read["model_version"] == digits_champion.version == logged["model_version"]
        assert read["scored_at"] is not None and logged["slice"] == {"channel": "web"}

    # ... and the app can now attach feedback to the request it enqueued.
    feedback = api.client.post(
        f"{PREFIX}/feedback", json={"trace_id": traces[3], "kind": "thumbs_down"}, headers=api.writer
    )
    assert feedback.status_code == 201, feedback.text
    assert feedback.json()["model_version"] == digits_champion.version


def test_sending_the_same_ids_and_inputs_again_returns_the_stored_requests(api, conn, digits_champion):
    items = [item("a", 1.0), item("b", -1.0, slice={"region": "north"}), item("c", 0.2)]
    first = enqueue(api, items)
    assert first.status_code == 201
    again = enqueue(api, items)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert (again.json()["created"], again.json()["existing"]) == (0, 3)
    assert again.json()["items"] == [{**r, "created": False} for r in first.json()["items"]]
    score(conn)
    # A retry after scoring returns the request as it is now; a batch mixing old and new stores the new.
    later = enqueue(api, [item("b", -1.0, slice={"region": "north"}), item("d", 0.7)])
    assert later.status_code == 201
    old, new = later.json()["items"]
    assert (old["status"], old["created"], new["status"], new["created"]) == (
        "scored",
        False,
        "pending",
        True,
    )
    assert uuid.UUID(old["trace_id"])
    assert [r["request_id"] for r in stored(conn)] == ["a", "b", "c", "d"]


def test_a_known_id_with_another_input_is_409_naming_it_and_nothing_of_the_batch_is_stored(
    api, conn, digits_champion
):
    assert enqueue(api, [item("a", 1.0), item("b", 2.0)]).status_code == 201
    response = enqueue(api, [item("new", 0.1), item("b", 2.5), item("a", 1.0, slice={"region": "x"})])
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == [
        {
            "field": "items[1].request_id",
            "reason": "'b' was already enqueued for digits with a different input; use a new request_id for a "
            "new input",
        },
        {
            "field": "items[2].request_id",
            "reason": "'a' was already enqueued for digits with a different input; use a new request_id for a "
            "new input",
        },
    ]
    assert [r["request_id"] for r in stored(conn)] == ["a", "b"]


# ---- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_id", "reason"),
    [
        ("", "must be at least 1 character(s) long"),
        ("x" * 201, "must be at most 200 characters"),
        ("line\nbreak", "printable text without control characters"),
        ("bell\x07", "printable text without control characters"),
        (" padded", "must not start or end with spaces"),
        (42, "must be a string"),
        (None, "must be a string"),
    ],
)
def test_bad_request_ids_are_422_naming_request_id_and_store_nothing(
    api, conn, digits_champion, request_id, reason
):
    response = enqueue(api, [item("fine"), item(request_id)])
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["field"] == "items[1].request_id" and reason in problem["reason"], problem
    missing = enqueue(api, [{"input": {"f0": 1.0, "f1": 2.0}}])
    assert missing.json()["detail"] == [{"field": "items[0].request_id", "reason": "is required"}]
    assert stored(conn) == []


@pytest.mark.parametrize(
    ("items", "field", "reason"),
    [
        (
            [{"request_id": "a", "input": {"f0": 1.0}}],
            "items[0].input.f1",
            "is required: a feature column of digits",
        ),
        (
            [item("a"), item("b"), item("a", 3.0)],
            "items[2].request_id",
            "repeats the request_id 'a' of items[0]",
        ),
        (
            [{"request_id": "a", "input": {"f0": {"x": 1}, "f1": 1}}],
            "items[0].input",
            "f0: must be a number, string, boolean or null (got an object)",
        ),  # fmt: skip
        (
            [{"request_id": "a", "input": {"f0": "nul\u0000", "f1": 1}}],
            "items[0].input",
            "f0: must not contain NUL",
        ),
        ([{"request_id": "a", "input": [1, 2]}], "items[0].input", "must be a JSON object"),
        (
            [item("a", slice={"region": ["n"]})],
            "items[0].slice",
            "region: must be a number, string, boolean or null",
        ),
        ([item("a", colour="red")], "items[0].colour", "is not a known field"),
        ([], "items", "must contain at least one item"),
        (
            [item(f"r{i}") for i in range(MAX_REQUESTS + 1)],
            "items",
            f"at most {MAX_REQUESTS} items per request (got 13)",
        ),
    ],
)
def test_bad_batches_are_422_naming_the_field_and_store_nothing(
    api, conn, digits_champion, items, field, reason
):
    response = enqueue(api, items)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0] == {"field": field, "reason": response.json()["detail"][0]["reason"]}
    assert reason in response.json()["detail"][0]["reason"]
    assert stored(conn) == []


def test_infinite_numbers_and_unknown_models_are_refused_naming_the_field(api, conn, digits_champion):
    nan = api.client.post(
        f"{PREFIX}/requests",
        content=b'{"model_name": "digits", "items": [{"request_id": "a", "input": {"f0": NaN, "f1": 1}}]}',
        headers={**api.writer, "Content-Type": "application/json"},
    )
    assert nan.status_code == 422
    assert nan.json()["detail"] == [{"field": "items[0].input", "reason": "f0: must be a finite number"}]
    surrogate = api.client.post(
        f"{PREFIX}/requests",
        content=b'{"model_name": "digits", "items": [{"request_id": "a", "input": {"f0": 1, "f1": 2}, '
        b'"slice": {"region": "\\ud800"}}]}',
        headers={**api.writer, "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422
    assert surrogate.json()["detail"] == [
        {
            "field": "items[0].slice",
            "reason": "region: must be valid Unicode (an unpaired surrogate such as \\ud800 is not)",
        }
    ]
    unknown = enqueue(api, [item("a")], model_name="ghost")
    assert unknown.status_code == 404
    assert unknown.json()["detail"][0]["field"] == "model_name"
    assert "unknown model 'ghost'; configured models: digits" in unknown.json()["detail"][0]["reason"]
    assert stored(conn) == []


def test_without_a_champion_inputs_are_taken_as_sent_and_scoring_says_what_is_wrong(api, conn):
    # `feature_columns: all` and no champion yet: nothing to check the input against at enqueue time.
    response = enqueue(api, [{"request_id": "early", "input": {"f0": 1.0}}])
    assert response.status_code == 201, response.text
    registry.promote(conn, "digits", register_toy(conn, model_name="digits").version, actor="test")
    conn.commit()
    assert score(conn).failed == 1
    failed = read_one(api, "early").json()
    assert (failed["status"], failed["error"], failed["trace_id"]) == (
        "failed",
        "missing feature column(s): f1",
        None,
    )


# ---- reads ---------------------------------------------------------------------------------------------


def test_reads_list_unknown_ids_and_name_what_is_wrong(api, conn, digits_champion):
    assert enqueue(api, [item("a/b"), item("plain"), item("lots", f0="lots")]).status_code == 201
    score(conn)
    many = read_many(api, ["plain", "ghost", "a/b", "plain", "lots"])
    assert many.status_code == 200
    body = many.json()
    assert (body["known"], body["unknown"]) == (3, 1)
    assert [(r["request_id"], r["status"]) for r in body["items"]] == [
        ("plain", "scored"),
        ("ghost", "unknown"),
        ("a/b", "scored"),
        ("lots", "failed"),
    ]
    assert body["items"][1] == {
        "request_id": "ghost",
        "status": "unknown",
        "id": None,
        "error": None,
        "trace_id": None,
        "prediction": None,
        "confidence": None,
        "model_version": None,
        "created_at": None,
        "scored_at": None,
    }
    assert body["items"][3]["error"].startswith("model could not read the input")

    def problem(response):
        return response.status_code, response.json()["detail"][0]

    assert problem(read_many(api, ["ghost", "phantom"])) == (
        404,
        {"field": "request_id", "reason": "none of the 2 request id(s) was enqueued for digits"},
    )
    assert problem(read_many(api, [])) == (
        422,
        {"field": "request_id", "reason": "give at least one, e.g. ?request_id=a&request_id=b"},
    )
    assert problem(read_many(api, ["plain", "tab\there"]))[1]["field"] == "request_id[1]"
    assert problem(read_many(api, [f"r{i}" for i in range(MAX_REQUESTS + 1)])) == (
        422,
        {"field": "request_id", "reason": f"at most {MAX_REQUESTS} per request (got {MAX_REQUESTS + 1})"},
    )
    assert problem(read_one(api, "ghost")) == (
        404,
        {"field": "request_id", "reason": "no request 'ghost' was enqueued for digits"},
    )
    assert problem(read_one(api, "tab%09here")) == (
        422,
        {"field": "request_id", "reason": "must be printable text without control characters or line breaks"},
    )
    assert problem(read_one(api, "plain", model_name="ghost"))[1]["field"] == "model_name"
    # An id holding '/' is read with ?request_id=; the path form finds no route and says so.
    assert problem(read_one(api, "a%2Fb"))[1]["field"] == "path"
    wrong_method = api.client.delete(f"{PREFIX}/requests", headers=api.writer)
    assert wrong_method.status_code == 405 and wrong_method.json()["detail"][0]["field"] == "path"


def test_only_writers_enqueue_and_readers_read(api, conn, digits_champion):
    for headers in (api.reader, api.clicker):
        assert enqueue(api, [item("a")], headers=headers).status_code == 403
    assert stored(conn) == []
    assert enqueue(api, [item("a")]).status_code == 201
    assert read_one(api, "a").status_code == 200 and read_many(api, ["a"]).status_code == 200
    anonymous = api.client
    assert (
        anonymous.post(f"{PREFIX}/requests", json={"model_name": "digits", "items": [item("b")]}).status_code
        == 401
    )
    assert anonymous.get(f"{PREFIX}/requests/digits/a").status_code == 401
    assert anonymous.get(f"{PREFIX}/requests/digits", params={"request_id": "a"}).status_code == 401


def test_the_openapi_document_describes_the_request_routes(api):
    document = api.client.get(f"{PREFIX}/openapi.json").json()
    paths = document["paths"]
    assert {"/requests", "/requests/{model_name}", "/requests/{model_name}/{request_id}"} <= set(paths)
    post = paths["/requests"]["post"]
    assert post["security"] and {"201", "401", "403", "404", "409", "422"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RequestsBody"
    }
    (query,) = [p for p in paths["/requests/{model_name}"]["get"]["parameters"] if p["in"] == "query"]
    assert query["name"] == "request_id" and query["schema"]["anyOf"][0]["type"] == "array"
    schemas = document["components"]["schemas"]
    request_id = schemas["RequestItem"]["properties"]["request_id"]
    assert (request_id["minLength"], request_id["maxLength"]) == (1, 200)
    assert schemas["RequestItem"]["properties"]["input"]["additionalProperties"]["anyOf"][0] == {
        "type": "number"
    }
    assert set(schemas["RequestStatusOut"]["properties"]) >= {
        "status",
        "trace_id",
        "prediction",
        "confidence",
        "model_version",
        "error",
        "scored_at",
    }
