import pytest

from feedback_loop.core.field_paths import dotted

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("items", 3, "rating"), "items[3].rating"),
        (("Idempotency-Key",), "Idempotency-Key"),
        (("review", "max_reviews_per_item"), "review.max_reviews_per_item"),
        (("\t",), '["\\t"]'),
        (("extra", " "), 'extra[" "]'),
        (("models", "iris.v1", "threshold"), 'models["iris.v1"].threshold'),
        (("", 0), '[""][0]'),
        (("items", 0, "input", "temp\u00e9rature"), "items[0].input.temp\u00e9rature"),
        (("caf\u00e9 cr\u00e8me",), '["caf\u00e9 cr\u00e8me"]'),
        (("a\u200bb",), '["a\\u200bb"]'),
        ((), ""),
    ],
)
def test_a_field_is_named_so_the_reader_can_find_it(parts, expected):
    assert dotted(parts) == expected


def test_every_key_is_named_visibly():
    for key in ["\t", "\n", "", " ", "\u200b", "\x00", '"', "a b"]:
        name = dotted(["extra", key])
        assert name.strip() and name != "extra", repr(key)
        assert name.isprintable(), repr(name)
