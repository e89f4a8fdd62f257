"""The picture of a pixel-vector input: which values, in which order, drawn how (pure functions)."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from feedback_loop.core import config
from feedback_loop.core.errors import InvalidInputError
from feedback_loop.inference import review_image

pytestmark = pytest.mark.unit


def image(**fields) -> config.ImageDisplay:
    values = {"kind": "image", "width": 3, "height": 2, "columns": "p{i}", "value_range": [0, 10], **fields}
    return config.ImageDisplay.model_validate(values)


def decoded(png: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(png))
    assert picture.format == "PNG"
    return picture


ROW = {"p0": 0, "p1": 5.0, "p2": 10, "p3": -3.0, "p4": 12.5, "p5": 2.5, "label": "x"}


def test_pixels_come_in_row_major_order_from_a_pattern_or_a_list():
    assert review_image.pixel_values(ROW, image()) == [0.0, 5.0, 10.0, -3.0, 12.5, 2.5]
    listed = image(columns=["p5", "p4", "p3", "p2", "p1", "p0"])
    assert review_image.pixel_values(ROW, listed) == [2.5, 12.5, -3.0, 10.0, 5.0, 0.0]


def test_the_png_has_the_configured_shape_scaled_in_sharp_blocks():
    picture = decoded(review_image.render_png(ROW, image(scale=4)))
    assert picture.mode == "L"
    assert picture.size == (3 * 4, 2 * 4)
    # Each input pixel is a 4 x 4 block of one shade, scaled from [0, 10] to 0..255 and clipped outside.
    expected = [[0, 128, 255], [0, 255, 64]]
    for row in range(2):
        for col in range(3):
            block = {picture.getpixel((col * 4 + dx, row * 4 + dy)) for dx in range(4) for dy in range(4)}
            assert block == {expected[row][col]}, (row, col, block)


def test_invert_draws_high_values_dark():
    picture = decoded(review_image.render_png(ROW, image(scale=1, invert=True)))
    assert [picture.getpixel((x, 0)) for x in range(3)] == [255, 128, 0]


def test_the_bundled_digits_model_is_drawn_8_by_8_at_16_screen_pixels_each():
    digits = config.load(config.shipped_path()).model("digits").input_display
    assert isinstance(digits, config.ImageDisplay)
    assert (digits.width, digits.height, digits.value_range, digits.invert) == (8, 8, (0, 16), True)
    row = {f"pixel_{i}": float(i % 17) for i in range(64)}
    assert decoded(review_image.render_png(row, digits)).size == (128, 128)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"p0": 1}, r"lacks pixel column\(s\) p1, p2, p3, p4, p5$"),
        ({**ROW, "p2": "10"}, r"pixel column\(s\) p2 are not finite numbers"),
        ({**ROW, "p1": None, "p3": True, "p4": float("nan")}, r"p1, p3, p4 are not finite numbers"),
        ({"q": 1}, r"lacks pixel column\(s\) p0, p1, p2, p3, p4 and 1 more$"),
    ],
)
def test_an_input_that_is_not_a_pixel_vector_is_refused_naming_the_columns(row, reason):
    with pytest.raises(InvalidInputError, match=reason):
        review_image.render_png(row, image())


def test_the_url_is_relative_and_under_the_dashboard_mount():
    trace = uuid.UUID("00000000-0000-4000-8000-000000000042")
    assert (
        review_image.url(trace) == "feedback-dashboard/review-images/00000000-0000-4000-8000-000000000042.png"
    )
    assert "/" + review_image.url(
        str(trace)
    ) == review_image.DASHBOARD_PREFIX + review_image.IMAGE_ROUTE.format(trace_id=trace)
    with pytest.raises(ValueError):
        review_image.url("../../api/v2/dags")
