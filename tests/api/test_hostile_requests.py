"""Hostile input on the feedback API (issue 14): a broken config file, unpaired surrogates, a token with a
role Airflow does not know, absurdly nested JSON, bodies that are not UTF-8 JSON, odd Idempotency-Key
headers. Each is a clear 4xx/503 naming what is wrong, never a 500. Through the real Airflow API app with
our plugin mounted, Airflow's own tokens, real PostgreSQL.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from ..support.api import (
    WEBHOOK_ENV,
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
SURROGATE_REASON = "must be valid Unicode (an unpaired surrogate such as \\ud800 is not)"


@pytest.fixture(scope="module")
def api(db_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile-api")
    env = auth_env(tmp)
    config_path = write_config(tmp)
    env["FEEDBACK_LOOP_CONFIG"] = str(config_path)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv(WEBHOOK_ENV, raising=False)
        init_airflow_db()
        # raise_server_exceptions=False: a 500 is an answer these tests must see, not an exception.
        with TestClient(airflow_app(), raise_server_exceptions=False) as client:
            yield SimpleNamespace(
                client=client,
                config=config_path,
                writer=bearer(token(client, "writer")),
                reader=bearer(token(client, "reader")),
            )


@pytest.fixture
def traces(conn):
    register_toy(conn)
    conn.commit()
    found = make_predictions(conn, "toy", 1, 4)
    conn.commit()
    return found


def count(conn, table: str = "feedback") -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]  # noqa: S608 - fixed names


def send(api, path: str, raw: bytes | str, headers: dict[str, str] | None = None, auth=None):
    """POST raw bytes (a JSON text may hold escapes json= would never write) as application/json."""
    content = raw.encode() if isinstance(raw, str) else raw
    base = {"Content-Type": "application/json"}
    return api.client.post(
        f"{PREFIX}{path}", content=content, headers={**(auth or api.writer), **base, **(headers or {})}
    )


# ---- 5. a broken config file ------------------------------------------------------------------------


def test_a_broken_config_is_503_naming_the_file_on_every_route_until_it_is_fixed(api, conn, traces):
    good = api.config.read_text()
    feedback = json.dumps({"trace_id": str(traces[0]), "kind": "thumbs_up"})
    broken_files = {
        "api: [unclosed\n": "not valid YAML",
        good + "\nsurprise_key: 1\n": "surprise_key",
    }
    try:
        for text, what in broken_files.items():
            api.config.write_text(text)
            for method, path in (("GET", "/healthz"), ("GET", "/models/toy/versions"), ("POST", "/feedback")):
                response = api.client.request(
                    method, f"{PREFIX}{path}", content=feedback if method == "POST" else None,
                    headers={**api.writer, "Content-Type": "application/json"},
                )  # fmt: skip
                assert response.status_code == 503, (path, response.status_code, response.text)
                (problem,) = response.json()["detail"]
                assert problem["field"] == "config", problem
                assert str(api.config) in problem["reason"] and what in problem["reason"], problem
                assert "\n" not in problem["reason"]
    finally:
        api.config.write_text(good)
        stat = api.config.stat()  # a new mtime even when the rewrite lands in the same clock tick
        os.utime(api.config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    # Fixed: the same process answers again, no restart.
    assert api.client.get(f"{PREFIX}/healthz").status_code == 200
    assert send(api, "/feedback", feedback).status_code == 201
    assert count(conn) == 1


# ---- 6. unpaired surrogates in any string field ------------------------------------------------------


def surrogate_cases(trace: str) -> list[tuple[str, str, str]]:
    """(path, raw JSON with a \\ud800 escape, the field the 422 must name)."""
    lone = "x\\ud800y"
    one = f'{{"trace_id": "{trace}", '
    return [
        ("/feedback", one + f'"kind": "comment", "comment": "{lone}"}}', "comment"),
        ("/feedback", one + f'"kind": "correction", "label": "{lone}"}}', "label"),
        ("/feedback", one + f'"kind": "thumbs_up", "user_id": "{lone}"}}', "user_id"),
        ("/feedback", one + f'"kind": "thumbs_up", "client_event_id": "{lone}"}}', "client_event_id"),
        (
            "/feedback/batch",
            f'{{"items": [{one}"kind": "thumbs_up"}}, {one}"kind": "comment", "comment": "{lone}"}}]}}',
            "items[1].comment",
        ),
        ("/feedback/batch", f'{{"items": [{one}"kind": "correction", "label": "{lone}"}}]}}', "items[0].label"),
        (  # checked before its user id is pseudonymized (which would fail to encode it)
            "/feedback/batch",
            f'{{"items": [{one}"kind": "thumbs_up"}}, {one}"kind": "thumbs_up", "user_id": "{lone}"}}]}}',
            "items[1].user_id",
        ),
        ("/requests", f'{{"model_name": "{lone}", "items": [{{"request_id": "a", "input": {{}}}}]}}', "model_name"),
        (
            "/requests",
            f'{{"model_name": "toy", "items": [{{"request_id": "{lone}", "input": {{}}}}]}}',
            "items[0].request_id",
        ),
        ("/reviews/1/answer", f'{{"chosen_options": ["{lone}"]}}', "chosen_options[0]"),
        ("/reviews/1/answer", f'{{"chosen_options": ["a"], "params_input": {{"comment": "{lone}"}}}}', "params_input"),
        ("/reviews/1/answer", f'{{"chosen_options": ["a"], "params_input": {{"{lone}": "a"}}}}', "params_input"),
    ]  # fmt: skip


def test_an_unpaired_surrogate_is_422_naming_the_field_on_every_route(api, conn, traces):
    for path, raw, field in surrogate_cases(str(traces[0])):
        response = send(api, path, raw)
        assert response.status_code == 422, (path, field, response.status_code, response.text)
        problems = response.json()["detail"]
        assert any(p["field"] == field and SURROGATE_REASON in p["reason"] for p in problems), (
            field,
            problems,
        )
    assert count(conn) == 0 and count(conn, "inference_requests") == 0


# ---- 8a. a token with a role Airflow does not know ----------------------------------------------------


@pytest.mark.parametrize("role", ["hacker", 5])
def test_a_signed_token_with_an_unknown_role_is_403_naming_the_role(api, conn, traces, role):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    forged = bearer(get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="mallory", role=role)))
    body = json.dumps({"trace_id": str(traces[0]), "kind": "thumbs_up"})
    calls = [
        ("GET", "/models/toy/versions", None),
        ("GET", "/requests/toy/r-1", None),
        ("POST", "/feedback", body),
        ("POST", "/feedback/batch", f'{{"items": [{body}]}}'),
        ("POST", "/reviews/1/answer", '{"chosen_options": ["a"]}'),
    ]
    for method, path, content in calls:
        response = api.client.request(
            method, f"{PREFIX}{path}", content=content, headers={**forged, "Content-Type": "application/json"}
        )
        assert response.status_code == 403, (path, response.status_code, response.text)
        assert f"role {str(role)!r}" in response.text, response.text
    assert count(conn) == 0


# ---- 8b. absurdly nested JSON -------------------------------------------------------------------------


def test_deeply_nested_json_is_422_saying_so_and_naming_the_body(api, conn, traces):
    deep = "[" * 10_000 + "]" * 10_000
    one = f'{{"trace_id": "{traces[0]}", "kind": "comment", "comment": {deep}}}'
    for path, raw in (
        ("/feedback", one),
        ("/feedback/batch", f'{{"items": [{one}]}}'),
        ("/requests", f'{{"model_name": "toy", "items": [{{"request_id": "a", "input": {{"f": {deep}}}}}]}}'),
        ("/reviews/1/answer", f'{{"chosen_options": {deep}}}'),
    ):
        response = send(api, path, raw)
        assert response.status_code == 422, (path, response.status_code, response.text)
        (problem,) = response.json()["detail"]
        assert problem["field"] == "body" and "nested too deeply" in problem["reason"], (path, problem)
    assert count(conn) == 0


# ---- 8c. only UTF-8 JSON ------------------------------------------------------------------------------


def test_bodies_must_be_json_by_content_type_and_utf8(api, conn, traces):
    one = {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    for path, body in (("/feedback", one), ("/feedback/batch", {"items": [one]})):
        text = json.dumps(body)
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {**api.writer} if content_type is None else {**api.writer, "Content-Type": content_type}
            response = api.client.post(f"{PREFIX}{path}", content=text.encode(), headers=headers)
            assert response.status_code == 415, (path, content_type, response.text)
            (problem,) = response.json()["detail"]
            assert problem["field"] == "Content-Type" and "application/json" in problem["reason"], problem
        for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
            response = send(api, path, text.encode(encoding))
            assert response.status_code == 400, (path, encoding, response.text)
            (problem,) = response.json()["detail"]
            assert problem["field"] == "body" and "UTF-8" in problem["reason"], problem
        response = send(
            api, path, text.encode("utf-16"), {"Content-Type": "application/json; charset=utf-16"}
        )
        assert response.status_code == 415, (path, response.text)
        (problem,) = response.json()["detail"]
        assert problem["field"] == "Content-Type" and "utf-16" in problem["reason"], problem
        # UTF-8 JSON, with or without the charset spelled out, is still welcome.
        key = {"Idempotency-Key": f"utf8-{path}"}
        ok = send(api, path, text, {**key, "Content-Type": "application/json; charset=UTF-8"})
        assert ok.status_code == 201, ok.text
    assert count(conn) == 2


# ---- 8d. the Idempotency-Key header follows client_event_id's rule -------------------------------------


@pytest.mark.parametrize("key", ["tab\there", "del\x7f", " padded", "padded ", "x" * 201])
def test_an_idempotency_key_client_event_id_would_refuse_is_422_naming_the_header(api, conn, traces, key):
    one = {"trace_id": str(traces[0]), "kind": "thumbs_up"}
    for path, body in (("/feedback", one), ("/feedback/batch", {"items": [one]})):
        # client_event_id refuses the same text
        refused = send(
            api, path, json.dumps({**one, "client_event_id": key}) if path == "/feedback" else "{}"
        )
        assert refused.status_code == 422
        response = send(api, path, json.dumps(body), {"Idempotency-Key": key})
        assert response.status_code == 422, (path, repr(key), response.text)
        (problem,) = response.json()["detail"]
        assert problem["field"] == "Idempotency-Key", problem
    assert count(conn) == 0
