"""The dashboard mounted by our plugin in the real Airflow API app: Airflow's own auth (bearer token or the
UI's `_token` cookie), the nav entry, and the page's numbers against the stored rollups."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from feedback_loop.monitoring import aggregation
from feedback_loop.registry import versions as registry

from ..support.aggregation import HOUR, T0, Replayer, event_stream, register_profiled, settings_for
from ..support.api import airflow_app, auth_env, bearer, init_airflow_db, token

pytestmark = pytest.mark.integration

PREFIX = "/feedback-dashboard"
MODEL, SLICE = "digits", "writer_group"


@pytest.fixture(scope="module")
def airflow(db_url, tmp_path_factory):
    env = auth_env(tmp_path_factory.mktemp("dashboard-auth"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        init_airflow_db()
        with TestClient(airflow_app()) as client:
            yield SimpleNamespace(client=client, reader=token(client, "reader"), admin=token(client, "admin"))


@pytest.fixture
def rolled_up(conn):
    settings = settings_for(MODEL, SLICE)
    for seed in (0, 1):
        register_profiled(conn, settings, MODEL, SLICE, seed=seed)
    registry.promote(conn, MODEL, 1, actor="alice", reason="first model")
    registry.promote(conn, MODEL, 2, actor="bob", reason="retrained on corrections")
    conn.commit()
    Replayer(conn).until(event_stream(MODEL, [1, 2], hours=3, slice_column=SLICE), T0 + 3 * HOUR)
    for start, end in aggregation.intervals(T0, T0 + 3 * HOUR, HOUR):
        aggregation.aggregate_interval(conn, settings.model(MODEL), settings, start, end)


def test_without_a_token_the_dashboard_is_401(airflow):
    response = airflow.client.get(f"{PREFIX}/", cookies={})
    assert response.status_code == 401
    assert airflow.client.get(f"{PREFIX}/api/rollups").status_code == 401


def test_a_forged_token_is_refused(airflow):
    response = airflow.client.get(f"{PREFIX}/", headers=bearer("not.a.jwt"))
    assert response.status_code in (401, 403)


def test_a_viewer_sees_the_page_with_a_bearer_token_or_the_ui_cookie(airflow, rolled_up, conn):
    by_header = airflow.client.get(f"{PREFIX}/", params={"model": MODEL}, headers=bearer(airflow.reader))
    assert by_header.status_code == 200, by_header.text
    assert "Feedback dashboard: digits" in by_header.text

    airflow.client.cookies.set("_token", airflow.reader)
    try:
        by_cookie = airflow.client.get(f"{PREFIX}/api/rollups", params={"model": MODEL})
    finally:
        airflow.client.cookies.clear()
    assert by_cookie.status_code == 200, by_cookie.text
    body = by_cookie.json()
    stored = conn.execute(
        "SELECT count(*) AS n, sum(n_feedback) AS fb FROM feedback_rollups WHERE model_name = %s", (MODEL,)
    ).fetchone()
    assert len(body["rollups"]) == stored["n"] == 6
    assert sum(r["n_feedback"] for r in body["rollups"]) == stored["fb"]
    assert [e["version"] for e in body["alias_history"]] == [1, 2]


def test_unknown_model_is_a_404_naming_it(airflow):
    response = airflow.client.get(f"{PREFIX}/", params={"model": "nope"}, headers=bearer(airflow.reader))
    assert response.status_code == 404
    assert "nope" in response.text


def test_the_dashboard_is_listed_for_the_airflow_ui_nav(airflow):
    response = airflow.client.get("/api/v2/plugins", headers=bearer(airflow.admin))
    assert response.status_code == 200, response.text
    (plugin,) = [p for p in response.json()["plugins"] if p["name"] == "feedback_dashboard"]
    (view,) = plugin["external_views"]
    assert view["href"] == f"{PREFIX}/"
    assert view["destination"] == "nav"
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == [PREFIX]


def test_a_model_without_rollups_says_when_the_next_one_runs_and_how_to_run_one_now(airflow, conn):
    """A first run: a model is registered, nothing has been aggregated yet (hourly by default)."""
    import re
    from datetime import UTC, datetime

    from feedback_loop.core import schedules

    from ..support.helpers import register_toy

    register_toy(conn, model_name=MODEL)
    conn.commit()
    page = airflow.client.get(f"{PREFIX}/", params={"model": MODEL}, headers=bearer(airflow.reader)).text
    assert f"No rollups yet for {MODEL}" in page
    due = re.search(r"next run is due at <strong>(.*?) UTC</strong>", page).group(1)
    expected = schedules.next_fire("@hourly", datetime.now(UTC))
    assert due in (f"{expected:%Y-%m-%d %H:%M}", f"{schedules.next_fire('@hourly', expected):%Y-%m-%d %H:%M}")
    assert "airflow dags trigger feedback_aggregation" in page
