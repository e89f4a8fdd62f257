"""The picture a review task shows, served by the dashboard app inside the real Airflow API app (our plugin
mounted at /feedback-dashboard) from predictions in the test database: Airflow's own auth, the PNG of the
stored input, and a reason for everything it cannot draw."""

from __future__ import annotations

import io
import uuid
from types import SimpleNamespace

import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from feedback_loop.core import store
from feedback_loop.inference import review_image
from feedback_loop.retrain import datasets

from ..conftest import ROOT
from ..support.api import airflow_app, auth_env, bearer, init_airflow_db, token
from ..support.helpers import register_toy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def airflow(db_url, tmp_path_factory):
    env = auth_env(tmp_path_factory.mktemp("review-images-auth"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        init_airflow_db()
        with TestClient(airflow_app()) as client:
            yield SimpleNamespace(client=client, reader=token(client, "reader"))


def log(conn, model_name: str, values: dict) -> uuid.UUID:
    trace = uuid.uuid4()
    store.log_predictions(
        conn, [store.Prediction(trace, model_name, 1, values, "3", 0.4, {"3": 0.4, "8": 0.35})]
    )
    conn.commit()
    return trace


@pytest.fixture
def traces(conn):
    """Predictions of the configured digits model (a real digit; one input without pixels) and of a model
    the configuration does not know."""
    for name in ("digits", "unconfigured"):
        register_toy(conn, model_name=name)
    conn.commit()
    frame = datasets.digits()
    digit = frame.drop(columns=["label"]).iloc[3].to_dict()
    return SimpleNamespace(
        digit=log(conn, "digits", digit),
        pixels=[digit[f"pixel_{i}"] for i in range(64)],
        no_pixels=log(conn, "digits", {"f0": 1.0, "f1": 2.0}),
        unconfigured=log(conn, "unconfigured", digit),
    )


def path(trace: uuid.UUID | str) -> str:
    return "/" + review_image.url(trace)


def test_without_a_login_the_picture_is_refused(airflow, traces):
    assert path(traces.digit) == f"/feedback-dashboard/review-images/{traces.digit}.png"
    response = airflow.client.get(path(traces.digit))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    forged = airflow.client.get(path(traces.digit), headers=bearer("not.a.jwt"))
    assert forged.status_code in (401, 403), forged.text
    assert forged.headers["content-type"] != review_image.MEDIA_TYPE


def test_a_ui_user_gets_the_stored_input_drawn_as_configured(airflow, traces):
    response = airflow.client.get(path(traces.digit), headers=bearer(airflow.reader))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == review_image.MEDIA_TYPE
    assert response.headers["cache-control"] == "no-store"
    picture = Image.open(io.BytesIO(response.content))
    assert (picture.format, picture.mode, picture.size) == ("PNG", "L", (128, 128))
    # config/feedback_loop.yaml: 8 x 8, values 0..16, high values dark, 16 screen pixels per pixel.
    for i, value in enumerate(traces.pixels):
        row, col = divmod(i, 8)
        shade = picture.getpixel((col * 16 + 8, row * 16 + 8))
        assert shade == round((1 - value / 16) * 255), (i, value, shade)


def test_the_ui_session_cookie_is_enough(airflow, traces):
    airflow.client.cookies.set("_token", airflow.reader)
    try:
        response = airflow.client.get(path(traces.digit))
    finally:
        airflow.client.cookies.clear()
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_traces_and_inputs_without_pixels_are_named(airflow, traces):
    unknown = uuid.uuid4()
    response = airflow.client.get(path(unknown), headers=bearer(airflow.reader))
    assert response.status_code == 404
    assert response.json()["detail"] == f"unknown trace_id {unknown}"

    response = airflow.client.get(path(traces.no_pixels), headers=bearer(airflow.reader))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert str(traces.no_pixels) in detail and "lacks pixel column(s) pixel_0, pixel_1" in detail

    response = airflow.client.get(
        "/feedback-dashboard/review-images/not-a-uuid.png", headers=bearer(airflow.reader)
    )
    assert response.status_code == 422


def test_a_model_not_shown_as_an_image_is_refused_with_the_reason(airflow, traces, tmp_path, monkeypatch):
    response = airflow.client.get(path(traces.unconfigured), headers=bearer(airflow.reader))
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "model 'unconfigured' is not in the configuration: it has no input_display"
    )

    settings = yaml.safe_load((ROOT / "config" / "feedback_loop.yaml").read_text(encoding="utf-8"))
    del settings["models"][0]["input_display"]
    table_config = tmp_path / "feedback_loop.yaml"
    table_config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(table_config))
    response = airflow.client.get(path(traces.digit), headers=bearer(airflow.reader))
    assert response.status_code == 409
    assert "model 'digits' shows its input as 'table', not as an image" in response.json()["detail"]
