"""The dashboard page: one self-contained HTML document (inline CSS and SVG, nothing fetched)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from urllib.parse import urlencode

from feedback_loop.core.config import AlertConfig
from feedback_loop.dashboard import charts
from feedback_loop.dashboard.data import ModelView

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1a202c; background: #f7f8fa; }
header { background: #fff; border-bottom: 1px solid #e2e8f0; padding: 14px 24px; }
h1 { font-size: 20px; margin: 0 0 6px 0; } h2 { font-size: 16px; margin: 22px 0 10px 0; }
main { padding: 8px 24px 32px 24px; }
nav a { margin-right: 12px; color: #2b6cb0; text-decoration: none; } nav a.current { font-weight: 700; }
.muted { color: #4a5568; font-size: 13px; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; padding: 8px; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; text-align: right; }
th { background: #edf2f7; } td.text, th.text { text-align: left; }
svg .chart-title { font-size: 13px; font-weight: 600; fill: #1a202c; }
svg .tick, svg .legend { font-size: 10px; fill: #4a5568; }
svg .grid { stroke: #edf2f7; } svg .axis { stroke: #a0aec0; }
svg .threshold { stroke: #c53030; stroke-dasharray: 4 3; } svg .threshold-label { font-size: 10px; fill: #c53030; }
svg .empty { font-size: 12px; fill: #718096; }
.alert { color: #c53030; font-weight: 600; }
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _models_nav(models: Sequence[str], current: str, days: int) -> str:
    links = []
    for name in models:
        css = ' class="current"' if name == current else ""
        href = "?" + urlencode({"model": name, "days": days})
        links.append(f'<a{css} href="{escape(href)}">{escape(name)}</a>')
    return "<nav>Models: " + "".join(links) + "</nav>"


def _summary(view: ModelView, alerts: AlertConfig) -> str:
    latest, totals = view.latest(), view.totals()
    head = (
        '<tr><th class="text">version</th><th>predictions</th><th>feedback</th><th>negative rate</th>'
        "<th>agrees with labelled feedback*</th><th>review latency p50 / p95</th><th>backlog</th>"
        '<th class="text">max PSI (latest interval)</th></tr>'
    )
    rows = []
    for version, row in latest.items():
        total = totals[version]
        negative = total["negative_rate"]
        psi = row["max_psi"]
        rows.append(
            "<tr>"
            f'<td class="text">v{version}{" (champion)" if version == view.champion else ""}</td>'
            f"<td>{_num(total['n_predictions'])}</td><td>{_num(total['n_feedback'])}</td>"
            f'<td class="{"alert" if negative is not None and negative > alerts.negative_rate else ""}">'
            f"{_pct(negative)}</td>"
            f"<td>{_pct(total['accuracy'])} ({total['n_labelled']})</td>"
            f"<td>{_seconds(row['review_latency_p50_s'])} / {_seconds(row['review_latency_p95_s'])}</td>"
            f"<td>{row['backlog_size']}</td>"
            f'<td class="text {"alert" if psi is not None and psi > alerts.psi else ""}">'
            f"{_num(psi, '{:.3f}')} {escape(row['max_psi_feature'] or '')}</td>"
            "</tr>"
        )
    note = (
        '<p class="muted">* Share of labelled feedback (reviews, corrections) that agrees with the prediction. '
        "Reviews go to the predictions the model doubts most, so this is not the model's accuracy: see the "
        "audited accuracy below.</p>"
    )
    return f'<table id="summary">{head}{"".join(rows)}</table>{note}'


def _interval(bounds: tuple[float, float] | None) -> str:
    return "" if bounds is None else f' <span class="muted">({bounds[0]:.0%}–{bounds[1]:.0%})</span>'


def _accuracy(view: ModelView) -> str:
    """Audited accuracy (a uniform sample, with its 95% Wilson interval) beside the label-free estimate."""
    body = []
    for version, t in view.totals().items():
        error = t["estimate_error"]
        body.append(
            f'<tr><td class="text">v{version}{" (champion)" if version == view.champion else ""}</td>'
            f"<td>{_pct(t['audited_accuracy'])}{_interval(t['audited_interval'])}</td>"
            f"<td>{t['audited_n']}</td><td>{_pct(t['estimated_accuracy'])}</td>"
            f"<td>{'–' if error is None else f'{error:+.1%}'}</td></tr>"
        )
    head = (
        '<tr><th class="text">version</th><th>audited accuracy (95% interval)</th><th>audited</th>'
        "<th>estimated from confidence</th><th>estimate - audited</th></tr>"
    )
    note = (
        '<p class="muted">Audited: reviewers\' consensus on a uniform random sample of the predictions '
        "(review.audit_share of each run's budget). Estimated: the version's confidence, calibrated on its "
        "holdout at training time (in the manner of CBPE), needs no labels.</p>"
    )
    return f'<table id="accuracy">{head}{"".join(body)}</table>{note}'


def _reviewers(view: ModelView) -> str:
    found = view.reviewers or {}
    people = found.get("reviewers") or []
    alpha = found.get("krippendorff_alpha")
    header = (
        f'<p id="agreement">Agreement between reviewers (Krippendorff\'s alpha): '
        f"<strong>{'–' if alpha is None else f'{alpha:.2f}'}</strong> over "
        f"{found.get('traces_with_several_answers', 0)} trace(s) answered by several people · "
        f"{found.get('second_opinions_waiting', 0)} second opinion(s) waiting</p>"
    )
    if not people:
        return header + '<p class="muted">No reviewer has answered yet.</p>'

    def share(s: dict) -> str:
        if not s["of"]:
            return "–"
        low, high = s["interval"]
        return f'{s["share"]:.0%} of {s["of"]} <span class="muted">({low:.0%}–{high:.0%})</span>'

    def estimate(r: dict) -> str:
        low, high = r.get("accuracy_lower"), r.get("accuracy_upper")
        if low is None or high is None:
            return _pct(r["estimated_accuracy"])
        return f'{_pct(r["estimated_accuracy"])} <span class="muted">({low:.0%}–{high:.0%})</span>'

    body = "".join(
        f'<tr><td class="text {"alert" if r["below_threshold"] else ""}">{escape(r["reviewer"])}</td>'
        f"<td>{r['answers']}</td><td>{estimate(r)}</td>"
        f"<td>{share(r['gold'])}</td><td>{share(r['agreement'])}</td></tr>"
        for r in people
    )
    head = (
        '<tr><th class="text">reviewer</th><th>answers</th><th>estimated accuracy</th>'
        "<th>gold questions right</th><th>agrees with the others</th></tr>"
    )
    return f'{header}<table id="reviewers">{head}{body}</table>'


def _charts(view: ModelView, alerts: AlertConfig) -> str:
    specs = [
        (
            "feedback-volume",
            "Feedback volume per interval",
            "n_feedback",
            {"y_format": lambda v: f"{v:,.0f}"},
        ),
        (
            "negative-rate",
            "Negative rate",
            "negative_rate",
            {"y_format": lambda v: f"{v:.0%}", "y_max": 1.0, "threshold": alerts.negative_rate},
        ),
        (
            "accuracy",
            "Estimated accuracy (from calibrated confidence)",
            "estimated_accuracy",
            {"y_format": lambda v: f"{v:.0%}", "y_max": 1.0},
        ),
        (
            "review-latency",
            "Review latency p50 (hours)",
            "review_latency_p50_h",
            {"y_format": lambda v: f"{v:g} h"},
        ),
        (
            "drift",
            "Drift: highest PSI over inputs and confidence",
            "max_psi",
            {"y_format": lambda v: f"{v:.2f}", "threshold": alerts.psi, "threshold_label": "alert at"},
        ),
    ]
    cards = [
        f'<div class="card">{charts.line_chart(title, view.series(column), chart_id=chart_id, **options)}</div>'
        for chart_id, title, column, options in specs
    ]
    return f'<div class="grid">{"".join(cards)}</div>'


def _slices(view: ModelView) -> str:
    rows = view.slice_totals()
    if not rows:
        return '<p class="muted">No slice attributes configured or seen in this window.</p>'
    body = "".join(
        f'<tr><td class="text">v{r["model_version"]}</td><td class="text">{escape(r["column"])}</td>'
        f'<td class="text">{escape(r["value"])}</td><td>{_num(r["n_predictions"])}</td>'
        f"<td>{_pct(r['negative_rate'])}</td><td>{_pct(r['accuracy'])} ({r['n_labelled']})</td></tr>"
        for r in rows
    )
    head = (
        '<tr><th class="text">version</th><th class="text">slice</th><th class="text">value</th>'
        "<th>predictions</th><th>negative rate</th><th>accuracy (labelled)</th></tr>"
    )
    return f'<table id="slices">{head}{body}</table>'


def _aliases(view: ModelView) -> str:
    if not view.aliases:
        return '<p class="muted">No version has been promoted yet.</p>'
    body = "".join(
        f'<tr><td class="text">{e.created_at:%Y-%m-%d %H:%M}</td><td class="text">{escape(e.action)}</td>'
        f"<td>v{e.version}</td><td>{'v' + str(e.previous_version) if e.previous_version else '–'}</td>"
        f'<td class="text">{escape(e.actor)}</td><td class="text">{escape(e.reason)}</td></tr>'
        for e in reversed(view.aliases)
    )
    head = (
        '<tr><th class="text">when (UTC)</th><th class="text">action</th><th>champion</th><th>replaced</th>'
        '<th class="text">by</th><th class="text">reason</th></tr>'
    )
    return f'<table id="alias-history">{head}{body}</table>'


def _no_rollups_yet(view: ModelView) -> str:
    """What an empty dashboard tells: when the next rollup comes, and how to have one now."""
    name = escape(view.model_name)
    if view.next_rollup is not None:
        when = (
            f"The scheduler rolls up each interval of its aggregation schedule "
            f"<code>{escape(view.aggregation_schedule or '')}</code> (UTC); the next run is due at "
            f"<strong>{view.next_rollup:%Y-%m-%d %H:%M} UTC</strong>, if the feedback_aggregation DAG is unpaused."
        )
    else:
        when = "Its config sets no aggregation schedule (<code>schedules.aggregation</code>): it is rolled up by hand."
    return (
        f'<p class="muted">No rollups yet for {name}. {when} To roll up the last complete interval now, '
        "trigger <strong>feedback_aggregation</strong> in the Airflow UI (DAGs, feedback_aggregation, Trigger) "
        "or run <code>airflow dags trigger feedback_aggregation</code>.</p>"
    )


def render(view: ModelView | None, models: Sequence[str], days: int, alerts: AlertConfig) -> str:
    if view is None:
        content = '<p class="muted">No model is configured or registered yet.</p>'
        title = "Feedback dashboard"
    else:
        title = f"Feedback dashboard: {view.model_name}"
        if not view.rows:
            window = _no_rollups_yet(view)
        else:
            window = (
                f'<p class="muted">{days} days up to the newest rollup: {view.since:%Y-%m-%d %H:%M} – '
                f"{view.until:%Y-%m-%d %H:%M} UTC · {len(view.rows)} rollups · versions "
                f"{', '.join(f'v{v}' for v in view.versions)} · champion "
                f"{'v' + str(view.champion) if view.champion else 'none'}</p>"
            )
        content = (
            f"{window}<h2>Per version over the window</h2>{_summary(view, alerts)}"
            f"<h2>Accuracy per version: audited and estimated</h2>{_accuracy(view)}"
            f"<h2>Reviewers</h2>{_reviewers(view)}"
            f"<h2>Over time</h2>{_charts(view, alerts)}"
            f"<h2>Slices (bias audit)</h2>{_slices(view)}"
            f"<h2>Champion alias history</h2>{_aliases(view)}"
        )
    current = view.model_name if view else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>{_models_nav(models, current, days)}</header>"
        f"<main>{content}</main></body></html>"
    )
