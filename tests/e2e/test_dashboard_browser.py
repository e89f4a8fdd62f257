"""The dashboard rendered by a real headless Chromium (Debian's package), served by the real Airflow API
app on 127.0.0.1 with our plugin mounted, from rollups in the test database.

Chromium is a prerequisite of `make test` (installed with apt when missing and running as root). If it
cannot be found, this test fails with the reason: it is never skipped.
Screenshots are kept in .local/test-artifacts/ (dashboard.png: the page; dashboard-in-airflow-ui.png: the
page inside Airflow's own UI through the plugin's nav entry) for people to look at.
"""

from __future__ import annotations

import re

import pytest

from feedback_loop.monitoring import aggregation
from feedback_loop.registry import versions as registry

from ..conftest import ROOT
from ..support.aggregation import HOUR, T0, Replayer, event_stream, register_profiled, settings_for
from ..support.api import init_airflow_db
from ..support.browser import airflow_api_server, chromium, chromium_binary, png_size

pytestmark = pytest.mark.e2e

MODEL, SLICE = "digits", "writer_group"
HOURS = 12
DRIFTED_HOURS = 4
ARTIFACTS = ROOT / ".local" / "test-artifacts"


@pytest.fixture(scope="module")
def server(db_url):
    """The real Airflow API app (core + plugins) served by uvicorn on a free loopback port."""
    init_airflow_db()
    with airflow_api_server() as url:
        yield url


@pytest.fixture
def a_day_of_rollups(conn):
    """Two versions, v2 champion; 12 hourly rollups; in the last 4 h only v2 serves and input f1 drifts.

    Enough predictions per interval (>= alerts.min_drift_rows) for PSI to be shown."""
    settings = settings_for(MODEL, SLICE)
    for seed in (0, 1):
        register_profiled(conn, settings, MODEL, SLICE, seed=seed)
    registry.promote(conn, MODEL, 1, actor="alice", reason="first model")
    registry.promote(conn, MODEL, 2, actor="bob", reason="retrained on corrections")
    conn.commit()
    estimator, _ = registry.load(conn, MODEL, 2)
    events = [
        *event_stream(
            MODEL, [1, 2], hours=HOURS - DRIFTED_HOURS, slice_column=SLICE, per_hour=110, estimator=estimator
        ),
        *event_stream(
            MODEL,
            [2],
            hours=DRIFTED_HOURS,
            slice_column=SLICE,
            per_hour=150,
            estimator=estimator,
            shift={"f1": 2.0},
            start=T0 + (HOURS - DRIFTED_HOURS) * HOUR,
            seed=5,
        ),
    ]
    events.sort(key=lambda e: (e.at, e.kind, str(e.data.get("trace_id"))))
    Replayer(conn).until(events, T0 + (HOURS + 6) * HOUR)
    audit_answers(conn)
    for start, end in aggregation.intervals(T0, T0 + HOURS * HOUR, HOUR):
        aggregation.aggregate_interval(conn, settings.model(MODEL), settings, start, end)
    return conn


def audit_answers(conn) -> None:
    """Twelve of v2's predictions audited, through the same code the review tasks run: on three alice
    slips and bob and carol set it right; on three alice and bob agree the model was wrong; on six alice
    confirms the prediction. The version's audited accuracy is therefore 9/12."""
    from datetime import UTC, datetime

    from feedback_loop.inference import review, reviews

    rows = conn.execute(
        "SELECT trace_id, output_label FROM predictions p WHERE model_version = 2 "
        "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.trace_id = p.trace_id) ORDER BY created_at, trace_id "
        "LIMIT 12"
    ).fetchall()
    for i, row in enumerate(rows):
        right, other = row["output_label"], ("b" if row["output_label"] == "a" else "a")
        if i < 3:
            answers = [("alice", other), ("bob", right), ("carol", right)]
        elif i < 6:
            answers = [("alice", other), ("bob", other)]
        else:
            answers = [("alice", right)]
        for n, (reviewer, label) in enumerate(answers):
            reason = "audit" if n == 0 else "second_opinion"  # a follow-up may already be queued
            conn.execute(
                "INSERT INTO review_items (trace_id, model_name, model_version, reason) VALUES (%s, %s, 2, %s) "
                "ON CONFLICT (trace_id, reason) WHERE status IN ('queued', 'open') DO NOTHING",
                (row["trace_id"], MODEL, reason),
            )
            item = conn.execute(
                "UPDATE review_items SET status = 'open', opened_at = now() "
                "WHERE trace_id = %s AND reason = %s AND status = 'queued' RETURNING id",
                (row["trace_id"], reason),
            ).fetchone()["id"]
            conn.commit()
            reviews.record_answer(conn, item, review.Answer([label], {}, datetime.now(UTC), {"id": reviewer}))


def test_dashboard_renders_in_headless_chromium(server, a_day_of_rollups, tmp_path):
    binary = chromium_binary()
    url = f"{server}/feedback-dashboard/?model={MODEL}&days=2"
    dom = chromium(binary, tmp_path / "profile-dom", "--virtual-time-budget=5000", "--dump-dom", url).stdout

    assert "<title>Feedback dashboard: digits</title>" in dom
    for chart in ("feedback-volume", "negative-rate", "accuracy", "review-latency", "drift"):
        svg = re.search(rf'<svg class="chart" id="{chart}".*?</svg>', dom, re.S)
        assert svg, f"chart {chart} missing from the rendered page"
        assert len(re.findall(r"<polyline", svg.group(0))) >= 2, f"chart {chart} should draw v1 and v2"
    summary = re.search(r'<table id="summary">.*?</table>', dom, re.S).group(0)
    assert "v2 (champion)" in summary and ">v1<" in summary
    stored = a_day_of_rollups.execute(
        "SELECT model_version, sum(n_feedback) AS fb FROM feedback_rollups WHERE model_name = %s "
        "GROUP BY 1 ORDER BY 1",
        (MODEL,),
    ).fetchall()
    for row in stored:
        assert f"<td>{row['fb']:,}</td>" in summary, f"v{row['model_version']} feedback total missing"
    assert re.search(r'class="text alert">[0-9.]+ f1<', summary), "v2's drift on f1 should be flagged"
    history = re.search(r'<table id="alias-history">.*?</table>', dom, re.S).group(0)
    assert "retrained on corrections" in history and "first model" in history
    slices = re.search(r'<table id="slices">.*?</table>', dom, re.S).group(0)
    assert "north" in slices and "south" in slices
    # The model's accuracy from the audit (a uniform sample, with its interval) beside the label-free
    # estimate; labelled feedback is marked as the biased sample it is.
    accuracy = re.search(r'<table id="accuracy">.*?</table>', dom, re.S).group(0)
    v2 = re.search(r"v2 \(champion\)</td>(.*?)</tr>", accuracy, re.S).group(1)
    audited, count, estimated, error = re.findall(r"<td>(.*?)</td>", v2, re.S)
    assert audited.startswith("75.0%") and "%–" in audited, audited  # 9 of 12 right, Wilson interval
    assert count == "12" and estimated.endswith("%") and error.endswith("%")
    assert "not the model's accuracy" in dom
    people = re.search(r'<table id="reviewers">.*?</table>', dom, re.S).group(0)
    assert ">alice<" in people and ">bob<" in people
    assert re.search(r">bob</td><td>6</td>", people) and re.search(r">carol</td><td>3</td>", people)
    agreement = re.search(r'<p id="agreement">.*?</p>', dom, re.S).group(0)
    assert "Krippendorff" in agreement and "over 6 trace(s)" in agreement

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(
        binary,
        tmp_path / "profile-shot",
        "--virtual-time-budget=5000",
        "--window-size=1280,1500",
        f"--screenshot={shot}",
        url,
    )
    width, height = png_size(shot)
    assert (width, height) == (1280, 1500)
    assert shot.stat().st_size > 50_000, "the screenshot looks blank"


def test_dashboard_shows_inside_the_airflow_ui(server, a_day_of_rollups, tmp_path):
    """The plugin's nav entry: Airflow's own React UI at /plugin/feedback-dashboard embeds our page."""
    binary = chromium_binary()
    ui = f"{server}/plugin/feedback-dashboard"
    # The UI is a single-page app that renders after its own API calls; the CLI browser cannot wait for an
    # element, so a slow render on a busy machine gets a longer (virtual) time budget instead of failing.
    for budget in (20_000, 40_000, 80_000):
        dom = chromium(
            binary, tmp_path / f"profile-ui-dom-{budget}", f"--virtual-time-budget={budget}", "--dump-dom", ui
        ).stdout
        iframe = re.search(r"<iframe[^>]*>", dom)
        if iframe:
            break
    assert iframe, f"the Airflow UI did not render the plugin view; page ends with: {dom[-1500:]}"
    assert 'src="/feedback-dashboard/"' in iframe.group(0)
    assert 'title="Feedback dashboard"' in iframe.group(0)
    assert 'aria-label="Browse"' in dom  # the Airflow UI's own navigation is around it

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-in-airflow-ui.png"
    shot.unlink(missing_ok=True)
    chromium(
        binary,
        tmp_path / "profile-ui-shot",
        f"--virtual-time-budget={budget}",  # the budget that rendered the DOM above
        "--window-size=1400,1000",
        f"--screenshot={shot}",
        ui,
    )
    assert png_size(shot) == (1400, 1000)
    assert shot.stat().st_size > 50_000, "the screenshot looks blank"
