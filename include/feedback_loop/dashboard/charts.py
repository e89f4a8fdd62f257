"""Line charts rendered on the server as inline SVG: no JavaScript, no fonts or scripts fetched from
anywhere, readable in any browser and in a screenshot."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from html import escape

# Colour-blind-safe palette (Okabe-Ito), one colour per model version.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 30, 42

Point = tuple[datetime, float | None]


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _axis(value: float) -> tuple[float, float]:
    """(top, step) of a y axis with at most five round ticks (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0, 0.25
    raw = value / 4
    exponent = math.floor(math.log10(raw))
    step = next(m * 10**exponent for m in (1, 2, 5, 10) if m * 10**exponent >= raw)
    return step * math.ceil(value / step - 1e-9), step


def _segments(points: Sequence[Point]) -> list[list[tuple[datetime, float]]]:
    """Split a series at missing values so a gap shows as a gap, not as a line through it."""
    segments: list[list[tuple[datetime, float]]] = [[]]
    for at, value in points:
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((at, float(value)))
    return [s for s in segments if s]


def line_chart(
    title: str,
    series: Mapping[str, Sequence[Point]],
    *,
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
    y_max: float | None = None,
    threshold: float | None = None,
    threshold_label: str = "threshold",
    chart_id: str = "",
) -> str:
    """One SVG chart with a line per series (e.g. per model version) sharing a time axis."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    times = [at for points in series.values() for at, value in points if value is not None]
    values = [float(v) for points in series.values() for _, v in points if v is not None]
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f'<text x="{LEFT}" y="18" class="chart-title">{escape(title)}</text>',
    ]
    if not values:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">no data in this window</text>'
        )
        parts.append("</svg>")
        return "".join(parts)
    if y_max is not None:
        top, step = y_max, y_max / 4
    else:
        top, step = _axis(max(values + ([threshold] if threshold else [])))
    t0, t1 = min(times), max(times)
    span = (t1 - t0).total_seconds() or 1.0

    def x(at: datetime) -> float:
        return LEFT + plot_w * ((at - t0).total_seconds() / span if t1 > t0 else 0.5)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(max(value / top, 0.0), 1.05))

    for i in range(round(top / step) + 1):
        value = step * i
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(y_format(value))}</text>"
        )
    ticks = 5 if t1 > t0 else 1
    for i in range(ticks):
        at = t0 + (t1 - t0) * (i / max(ticks - 1, 1))
        anchor = "start" if i == 0 and ticks > 1 else "end" if i == ticks - 1 and ticks > 1 else "middle"
        parts.append(
            f'<text x="{x(at):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" class="tick">'
            f"{at:%m-%d %H:%M}</text>"
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" class="axis"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" class="axis"/>'
    )
    if threshold is not None:
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
            f'class="threshold"/><text x="{WIDTH - RIGHT}" y="{y(threshold) - 4:.1f}" text-anchor="end" '
            f'class="threshold-label">{escape(threshold_label)} {escape(y_format(threshold))}</text>'
        )
    for index, (name, points) in enumerate(series.items()):
        stroke = colour(index)
        for segment in _segments(points):
            coords = " ".join(f"{x(at):.1f},{y(v):.1f}" for at, v in segment)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-width="2"/>')
            for at, v in segment:
                parts.append(
                    f'<circle cx="{x(at):.1f}" cy="{y(v):.1f}" r="2.5" fill="{stroke}">'
                    f"<title>{escape(name)} {at:%Y-%m-%d %H:%M}: {escape(y_format(v))}</title></circle>"
                )
        legend_x = LEFT + 8 + index * 70
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" fill="{stroke}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
