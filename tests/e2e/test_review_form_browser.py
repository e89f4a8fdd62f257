"""What a reviewer of the bundled digits model sees: Airflow's own UI page of a waiting review task (the
React UI served by the real API app with our plugins, rendered by headless Chromium and driven over the
DevTools protocol), while feedback_inference waits for the answer under dag.test().

The body's markdown goes through the same react-markdown as in production: the digit's picture must load
from our dashboard plugin (a relative URL on the UI's origin, with the UI's own login) and the hostile text
an application put into the input must stay text. The page is kept as
.local/test-artifacts/review-form-digits.png for people to look at.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import pytest

from feedback_loop.core import config
from feedback_loop.inference import review, review_image
from feedback_loop.inference import scoring as inference
from feedback_loop.retrain import baseline, datasets

from ..conftest import ROOT
from ..support.browser import DevTools, airflow_api_server, chromium_binary, png_size

pytestmark = pytest.mark.e2e

DAG_ID = "feedback_inference"
HOSTILE = (
    "[click](http://evil.example) www.evil.example mail@evil.example <b>bold</b> <img src=x onerror=alert(1)>"
)
SHOT = ROOT / ".local" / "test-artifacts" / "review-form-digits.png"
# The review pictures on the page: where they point, whether they loaded, and their natural size.
PICTURES = """Array.from(document.images)
  .filter(img => img.src.includes('/feedback-dashboard/review-images/'))
  .map(img => ({src: img.src, alt: img.alt, complete: img.complete, width: img.naturalWidth,
                height: img.naturalHeight}))"""
LOADED = f"(() => {{ const p = {PICTURES}; return p.length && p.every(i => i.complete && i.width > 0) ? p : null; }})()"


def bearer(username: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role="admin"))
    return {"Authorization": f"Bearer {jwt}"}


class LookThenSkip(threading.Thread):
    """Waits for the review task, looks at its page in Chromium, then answers Skip so the run ends."""

    def __init__(self, tmp_path) -> None:
        super().__init__(daemon=True)
        self.tmp_path = tmp_path
        self.seen: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        client = TestClient(create_app(apps="core"))
        detail = None
        try:
            detail = self._wait_for_review(client)
            self._look(detail)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            if detail is not None:
                ti = detail["task_instance"]
                client.patch(
                    f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/"
                    f"{ti['task_id']}/{ti['map_index']}/hitlDetails",
                    json={"chosen_options": [review.SKIP], "params_input": {}},
                    headers=bearer("alice"),
                )

    def _wait_for_review(self, client, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = client.get(
                f"/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails",
                params={"response_received": "false", "state": ["deferred", "awaiting_input"]},
                headers=bearer("alice"),
            )
            assert response.status_code == 200, response.text
            details = response.json()["hitl_details"]
            if details:
                return details[0]
            time.sleep(0.3)
        raise AssertionError("no review task waited for an answer")

    def _look(self, detail: dict[str, Any]) -> None:
        ti = detail["task_instance"]
        self.seen["detail"] = detail
        with airflow_api_server() as url, DevTools(chromium_binary(), self.tmp_path / "profile") as page:
            page.open(
                f"{url}/dags/{DAG_ID}/runs/{quote(ti['dag_run_id'], safe='')}/tasks/{ti['task_id']}"
                f"/mapped/{ti['map_index']}/required_actions"
            )
            self.seen["origin"] = url
            self.seen["pictures"] = page.wait_for(LOADED, timeout=120)
            # The form around the body: the subject, the options, the table of values under the picture.
            self.seen["text"] = page.wait_for(
                "document.body.innerText.includes('pixel_63') && document.body.innerText"
            )
            self.seen["links"] = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
            self.seen["injected"] = page.evaluate(
                'document.querySelectorAll(\'b, img[src="x"], img:not([src*="review-images"])[alt=""]\').length'
            )
            self.seen["requested"] = list(page.requested)
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            SHOT.unlink(missing_ok=True)
            page.screenshot(SHOT, 1400, 1600)


@pytest.fixture
def digits_v1(conn):
    """The bundled digits model as config/feedback_loop.yaml describes it (shown as an 8x8 picture),
    trained on its 120 base rows and promoted."""
    model = config.load().model("digits")
    baseline.train_and_register(conn, model, created_by="test", promote=True)
    conn.commit()
    return model


@pytest.mark.timeout(400)
def test_a_digits_review_shows_the_digit_as_a_picture_in_airflows_ui(
    airflow_db, dagbag, conn, digits_v1, tmp_path
):
    frame = datasets.digits()
    rows = frame.drop(columns=["label", "writer_group"]).iloc[1500:1506].to_dict("records")
    inference.enqueue_requests(conn, "digits", [({**row, "note": HOSTILE}, {}) for row in rows])
    conn.commit()

    helper = LookThenSkip(tmp_path)
    helper.start()
    try:
        # A threshold of 1: every prediction short of certainty is a question; one review task.
        dag_run = dagbag.dags[DAG_ID].test(
            run_conf={"model_name": "digits", "confidence_threshold": 1.0, "review_budget": 1}
        )
    finally:
        helper.join(timeout=60)
    assert helper.error is None, helper.error
    assert dag_run.state == "success"

    detail, pictures = helper.seen["detail"], helper.seen["pictures"]
    trace = conn.execute("SELECT trace_id FROM review_items WHERE status = 'answered'").fetchone()["trace_id"]
    assert f"({review_image.url(trace)})" in detail["body"]
    (picture,) = pictures
    assert picture["src"] == f"{helper.seen['origin']}/{review_image.url(trace)}"
    assert (picture["width"], picture["height"]) == (128, 128)
    assert picture["alt"] == "the input drawn as a picture of 8 x 8 pixels"
    # The values stay under the picture, and the application's text stays text.
    assert "pixel_0" in helper.seen["text"] and "pixel_63" in helper.seen["text"]
    shown = helper.seen["text"].replace(review.LINK_BREAKER, "")
    assert HOSTILE[:80] in shown, shown
    assert not [link for link in helper.seen["links"] if "evil.example" in link], helper.seen["links"]
    assert helper.seen["injected"] == 0
    assert not [u for u in helper.seen["requested"] if "evil.example" in u or u.endswith("/x")]
    assert png_size(SHOT) == (1400, 1600)
