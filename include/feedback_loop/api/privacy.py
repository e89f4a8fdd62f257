"""PII masking for free text (feedback comments) before it is stored.

Masked: e-mail addresses, card-like numbers (13-19 digits, with or without spaces or dashes) and phone
numbers (7-15 digits, optionally with +country code, brackets, spaces, dots or dashes). The original text is
never written anywhere: callers store only what `mask()` returns.

Card-like numbers are masked whether or not they pass the Luhn check: a mistyped card number is still
somebody's card number. Dates and times (2026-11-25, 25.11.2026, 12:30) are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EMAIL_TOKEN = "[email]"
PHONE_TOKEN = "[phone]"
CARD_TOKEN = "[card]"

_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
# A run of digits with the separators people type inside phone and card numbers; classified by its
# digit count below. Not preceded or followed by a word character, so ids like "order42" stay whole.
# The lookahead skips runs of fewer than 7 digits at once (most numbers in comments), before any classifying.
# Ids like "ORD-2026-000123" are still masked as phones: telling them from "tel-0171 555 0199" is not
# possible from the text, and a masked order id costs less than a leaked phone number.
_NUMBER_RUN = re.compile(r"(?<![\w+])(?:\+|\(\+?)?(?=\d(?:[ \t().\-/]*\d){6})\d(?:[\d \t().\-/]*\d)?(?!\w)")
# A date, optionally followed by the hour of a time ("25/11/2026 14" from "25/11/2026 14:30").
_DATE_LIKE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})(?:[ \tT]+\d{1,2})?$"
)
_DECIMAL = re.compile(r"^\d+\.\d+$")
_MAYBE_PERSONAL = re.compile(r"[@\d]")


@dataclass(frozen=True)
class Masked:
    text: str
    emails: int = 0
    phones: int = 0
    cards: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.emails or self.phones or self.cards)


def _classify(candidate: str) -> str | None:
    stripped = candidate.strip()
    if _DATE_LIKE.match(stripped) or _DECIMAL.match(stripped):
        return None
    digits = sum(ch.isdigit() for ch in stripped)
    if 13 <= digits <= 19 and not any(ch in "()+" for ch in stripped):
        return CARD_TOKEN
    if 7 <= digits <= 15:
        return PHONE_TOKEN
    return None


def mask(text: str) -> Masked:
    """Replace e-mail addresses, card-like numbers and phone numbers in `text` by placeholders."""
    if not _MAYBE_PERSONAL.search(text):  # no "@" and no digit: nothing to mask (the common case)
        return Masked(text)
    counts = {EMAIL_TOKEN: 0, PHONE_TOKEN: 0, CARD_TOKEN: 0}

    def email(_match: re.Match[str]) -> str:
        counts[EMAIL_TOKEN] += 1
        return EMAIL_TOKEN

    def number(match: re.Match[str]) -> str:
        candidate = match.group(0)
        token = _classify(candidate)
        if token is None:
            return candidate
        counts[token] += 1
        return token

    masked = _EMAIL.sub(email, text)
    masked = _NUMBER_RUN.sub(number, masked)
    return Masked(masked, counts[EMAIL_TOKEN], counts[PHONE_TOKEN], counts[CARD_TOKEN])


def mask_text(text: str | None) -> str | None:
    """`mask(text).text`, passing None through."""
    return None if text is None else mask(text).text
