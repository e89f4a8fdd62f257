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
        (("items", 0, "input", "temp\u00e9rature"), 'items[0].input["temp\u00e9rature"]'),
        (("caf\u00e9 cr\u00e8me",), '["caf\u00e9 cr\u00e8me"]'),
        (("a\u200bb",), '["a\\u200bb"]'),
        (("n\u0430me",), '["n\u0430me"]'),  # a Cyrillic a: quoted, never shown as the Latin name
        (("a\ua4f8b",), '["a\ua4f8b"]'),  # a letter that looks like a dot stays inside the quotes
        (("\u3164",), '["\\u3164"]'),  # a Hangul filler: a letter that shows as blank
        (("\u00a0",), '["\\u00a0"]'),
        (("a\U000e0041",), '["a\\udb40\\udc41"]'),  # unprintable above U+FFFF: a surrogate pair
        ((), ""),
    ],
)
def test_a_field_is_named_so_the_reader_can_find_it(parts, expected):
    assert dotted(parts) == expected


def test_every_key_is_named_visibly():
    for key in ["\t", "\n", "", " ", "\u200b", "\x00", '"', "a b", "\u3164", "\ufeff", "\U000e0001"]:
        name = dotted(["extra", key])
        assert name.strip() and name != "extra", repr(key)
        assert name.isprintable(), repr(name)
