"""PII masking of comments: what is masked, what is left alone, and that the original never survives."""

from __future__ import annotations

import pytest

from feedback_loop.api import privacy

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at john.doe+tag@example.co.uk please", "mail me at [email] please"),
        ("two: a@b.io, c_d@sub.example.org.", "two: [email], [email]."),
        ("call +1 (555) 123-4567 now", "call [phone] now"),
        ("call (555) 123-4567", "call [phone]"),
        ("my number is 0171.234.5678", "my number is [phone]"),
        ("ring 030 1234567, thanks", "ring [phone], thanks"),
        ("card 4111 1111 1111 1111 expired", "card [card] expired"),
        ("card 4111-1111-1111-1111.", "card [card]."),
        ("not luhn-valid but card-like: 1234567812345678", "not luhn-valid but card-like: [card]"),
        ("amex 3782 822463 10005", "amex [card]"),
    ],
)
def test_personal_data_is_replaced_by_placeholders(text, expected):
    assert privacy.mask(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "on 2026-11-25 at 12:30 the model said 7",
        "it happened 25.11.2026 around noon",
        "it failed on 25/11/2026 14:30 and again on 2026-11-25 09:15",
        "logged at 2026-11-25T14:30:05Z",
        "confidence 0.87234 was too high",
        "order42 and ticket 12345 are fine",
        "I tried 3 times in 2 days",
        "pi is 3.14159265358979",
        "",
    ],
)
def test_ordinary_text_numbers_and_dates_are_left_alone(text):
    masked = privacy.mask(text)
    assert masked.text == text
    assert not masked.changed


def test_counts_say_what_was_masked():
    masked = privacy.mask("x@y.com, +49 30 1234567 and 4111 1111 1111 1111; also z@w.org")
    assert (masked.emails, masked.phones, masked.cards) == (2, 1, 1)
    assert masked.changed


def test_none_passes_through_and_no_original_digit_run_survives():
    assert privacy.mask_text(None) is None
    original = "reach me: +44 20 7946 0958 / jane@example.org / 5500 0000 0000 0004"
    masked = privacy.mask_text(original)
    for secret in ("7946", "0958", "jane", "example.org", "5500", "0004"):
        assert secret not in masked
