"""The feedback API's documentation pages in headless Chromium, on a machine with no internet: the real
Airflow API app (our plugin mounted at /feedback-api) served on a loopback port, the page driven over the
DevTools protocol so that every URL it requested can be listed.

Swagger UI must render the operations without asking anything of another origin (FastAPI's default page
loads it from a CDN and is blank offline). The screenshot is kept as
.local/test-artifacts/feedback-api-docs.png.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from ..conftest import ROOT
from ..support.api import init_airflow_db
from ..support.browser import DevTools, airflow_api_server, chromium_binary, png_size

pytestmark = pytest.mark.e2e

PREFIX = "/feedback-api"
ARTIFACTS = ROOT / ".local" / "test-artifacts"
# Each operation Swagger UI rendered: its method and path.
OPERATIONS = """Array.from(document.querySelectorAll('.swagger-ui .opblock-summary')).map(o => [
  o.querySelector('.opblock-summary-method').innerText,
  o.querySelector('.opblock-summary-path').getAttribute('data-path')])"""


@pytest.fixture(scope="module")
def server(db_url):
    init_airflow_db()
    with airflow_api_server() as url:
        yield url


def foreign(requested: list[str], origin: str) -> list[str]:
    """The requested URLs that left the server's origin (data: URIs in the CSS are not requests)."""
    return [url for url in requested if not url.startswith(("data:", "blob:")) and _origin(url) != origin]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_swagger_ui_renders_the_operations_from_local_assets(server, tmp_path):
    with DevTools(chromium_binary(), tmp_path / "profile") as page:
        page.open(f"{server}{PREFIX}/docs")
        page.wait_for("document.querySelectorAll('.swagger-ui .opblock').length >= 6")
        operations = page.evaluate(OPERATIONS)
        title = page.evaluate("document.querySelector('.swagger-ui .info .title').innerText")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "feedback-api-docs.png"
        shot.unlink(missing_ok=True)
        page.screenshot(shot, 1280, 1400)
        requested = list(page.requested)

    assert title.startswith("Feedback API")
    assert {("POST", "/feedback"), ("POST", "/feedback/batch"), ("GET", "/healthz")} <= {
        (method, path) for method, path in operations
    }, operations
    assert f"{server}{PREFIX}/docs-assets/swagger-ui-bundle.js" in requested
    assert f"{server}{PREFIX}/openapi.json" in requested
    assert foreign(requested, server) == [], requested
    assert png_size(shot) == (1280, 1400)
