"""The picture of a model input that is a pixel vector: which values, which URL, which PNG.

A review task's body is markdown that Airflow's UI renders with react-markdown, whose URL filter drops
`data:` URIs; so the body links a relative URL that the dashboard app (mounted on the same origin as the
UI) answers with the PNG drawn here. numpy and Pillow are imported only when a picture is drawn: DAG files
import this module at parse time.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Mapping
from typing import Any

from feedback_loop.core.config import ImageDisplay
from feedback_loop.core.errors import InvalidInputError

# Where the dashboard plugin mounts its app (plugins/feedback_dashboard_plugin.py takes it from here) and the
# image route inside it: the body's URL and the route must agree.
DASHBOARD_PREFIX = "/feedback-dashboard"
IMAGE_ROUTE = "/review-images/{trace_id}.png"
MEDIA_TYPE = "image/png"
MAX_NAMED = 5


def url(trace_id: uuid.UUID | str) -> str:
    """The picture's URL as the review body links it: relative to the Airflow UI's <base href> (the
    API server's base path), so it also works when Airflow is served under a sub-path."""
    path = DASHBOARD_PREFIX + IMAGE_ROUTE.format(trace_id=uuid.UUID(str(trace_id)))
    return path.lstrip("/")


def _named(columns: list[str]) -> str:
    shown = ", ".join(columns[:MAX_NAMED])
    return shown + (f" and {len(columns) - MAX_NAMED} more" if len(columns) > MAX_NAMED else "")


def pixel_values(values: Mapping[str, Any], display: ImageDisplay) -> list[float]:
    """The configured pixel columns of an input in row-major order; InvalidInputError names the columns
    that are missing or not finite numbers (inputs come from applications)."""
    columns = display.column_names()
    missing = [c for c in columns if c not in values]
    if missing:
        raise InvalidInputError(f"the input lacks pixel column(s) {_named(missing)}")
    pixels, bad = [], []
    for column in columns:
        value = values[column]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            bad.append(column)
        else:
            pixels.append(float(value))
    if bad:
        raise InvalidInputError(f"pixel column(s) {_named(bad)} are not finite numbers")
    return pixels


def render_png(values: Mapping[str, Any], display: ImageDisplay) -> bytes:
    """The input as a grey-scale PNG of width x height pixels, each drawn as a scale x scale square."""
    import numpy as np
    from PIL import Image

    grid = np.asarray(pixel_values(values, display), dtype=np.float64).reshape(display.height, display.width)
    low, high = display.value_range
    shade = np.clip((grid - low) / (high - low), 0.0, 1.0)
    if display.invert:
        shade = 1.0 - shade
    # Nearest-neighbour blocks keep every input pixel a sharp square, as the model saw it.
    blocks = np.kron(np.rint(shade * 255).astype(np.uint8), np.ones((display.scale, display.scale), np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(blocks).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
