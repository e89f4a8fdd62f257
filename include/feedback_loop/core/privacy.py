"""What the product promises to mask in free text, and how a user id that is personal data is replaced.

Masked (each replaced by its placeholder; docs/reliability.md "What the masker promises"):
- `[email]`: local@domain, with letters of any script on both sides and a dotted domain ("@" or the
  fullwidth "＠");
- `[iban]`: 2 letters, 2 digits and 11-30 letters or digits, compact or in groups of 4, any case, when it
  passes the mod-97 check or holds at least 8 digits;
- `[ip]`: IPv4 (four dotted numbers up to 255) and IPv6 addresses (anything `ipaddress` accepts);
- `[card]`, `[phone]`, `[number]`: a number of 7 or more digits. A number is a run of decimal digits of
  any script (ASCII, fullwidth, Arabic-Indic, Devanagari, ...) joined by up to 3 separator characters:
  spaces of any width, invisible joiners, dashes, dots, slashes, brackets. 13-19 digits, or a run that
  starts with a Luhn-valid 13-19 digit card number (a card followed by its expiry date), is a card, whether
  or not it passes the Luhn check: a mistyped card number is still somebody's card number. 7-15 digits is
  a phone number, as is a longer run that starts with "+" or "("; any other longer run (two phone numbers
  in a row, a long id) is `[number]`.

Left readable: dates (2026-12-06, 06.12.2026, 12/06/2026, with a time; not after "+" or a bracketed area
code: "+1 (100) 01.01.00" and "(030) 12.12.12" are phone numbers), decimals (0.87234, 3.14159),
UUIDs (trace ids), and every number of fewer than 7 digits (versions 3.11.7, order #12345, 15 minutes).
Not masked at all: names, postal addresses, passwords or other secrets typed as free text.

Every pass is a single left-to-right scan with no nested repetition, so masking costs time linear in the
length of the text (bench/privacy.py).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

EMAIL_TOKEN = "[email]"
PHONE_TOKEN = "[phone]"
CARD_TOKEN = "[card]"
IBAN_TOKEN = "[iban]"
IP_TOKEN = "[ip]"
NUMBER_TOKEN = "[number]"
TOKENS = (EMAIL_TOKEN, PHONE_TOKEN, CARD_TOKEN, IBAN_TOKEN, IP_TOKEN, NUMBER_TOKEN)

PSEUDONYM_KEY_ENV = "FEEDBACK_LOOP_PSEUDONYM_KEY"
PSEUDONYM_PREFIX = "pseudonym-"
# Letters only, so a pseudonym holds nothing the masker would touch: masking it again changes nothing.
_PSEUDONYM_ALPHABET = "bcdfghjkmnpqrstv"
_UNKEYED = b"feedback-loop: no FEEDBACK_LOOP_PSEUDONYM_KEY set"

MIN_DIGITS = 7  # fewer digits than a phone number: left alone

# What people and copy-paste put between the digits of one number: spaces of any width, invisible
# joiners and soft hyphens, dashes, dots, slashes and brackets, ASCII and fullwidth. Not line breaks and
# not commas (1,234,567 is a count).
_SEP = (
    r"[ \t\u00a0\u00ad\u1680\u2000-\u200d\u202f\u205f\u2060\u3000\ufeff"
    r"\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d./\uff0e\uff0f()\uff08\uff09]"
)
# A UUID (a trace id) is kept whole; any other run of digits and separators is a candidate number, also
# when glued to letters ("abc4111111111111111"). The repetitions are possessive and a separator is never a
# digit: no backtracking.
_NUMBERS = re.compile(
    r"(?P<uuid>(?<![0-9A-Za-z])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Za-z]))"
    rf"|(?P<run>(?:[+\uff0b]|[(\uff08][+\uff0b]?)?\d++(?:{_SEP}{{1,3}}+\d++)*+)"
)
_GROUP = re.compile(r"\d+")
_NOT_DIGIT = re.compile(r"\D+")
_ANY_DIGIT = re.compile(r"\d")
_DATE = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})|(\d{1,2})([-/.])(\d{1,2})\6(\d{4}|\d{2})")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# A decimal: one dot, one digit before it, or up to three and at most four after ("0171.2345678" is not one).
_DECIMAL = re.compile(r"[0-9]\.\d+|[1-9]\d{1,2}\.\d{1,4}")
_IBAN = re.compile(
    r"(?<![^\W_])[A-Za-z]{2}\d{2}(?:[ \u00a0-]?[A-Za-z0-9]{4}){2,7}(?:[ \u00a0-]?[A-Za-z0-9]{1,4})?(?![^\W_])"
)
# Hex digits, colons and dots with a colon, not starting inside a word: a candidate IPv6 address, checked
# by ipaddress. Possessive, and it cannot start inside a run: linear.
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f.]*+:[0-9A-Fa-f:.]*+")
# An e-mail address: a local part (letters and digits of any script and the punctuation RFC 5322 allows),
# "@" (or the fullwidth one) and dotted labels; checked by _is_domain. It only starts where a run of
# local-part characters starts (the lookbehind) and takes the run whole (possessive): each character is
# read once, however long a run without "@" is.
_LOCAL = r"[\w.!#$%&'*+/=?^`{|}~-]"
_EMAIL = re.compile(rf"(?<!{_LOCAL}){_LOCAL}++[@\uff20](?P<domain>[\w-]++(?:[.\uff0e\u3002\uff61][\w-]++)++)")
_MAYBE_PERSONAL = re.compile(r"[\d@\uff20:]")


@dataclass(frozen=True)
class Masked:
    text: str
    emails: int = 0
    phones: int = 0
    cards: int = 0
    ibans: int = 0
    ips: int = 0
    numbers: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.emails or self.phones or self.cards or self.ibans or self.ips or self.numbers)


def mask(text: str) -> Masked:
    """Replace e-mail addresses, IBANs, IP addresses, card and phone numbers and other long numbers in
    `text` by placeholders (module docstring)."""
    masked, counts = _masked(text)
    if counts is None:
        return Masked(text)
    return Masked(
        masked,
        emails=counts[EMAIL_TOKEN],
        phones=counts[PHONE_TOKEN],
        cards=counts[CARD_TOKEN],
        ibans=counts[IBAN_TOKEN],
        ips=counts[IP_TOKEN],
        numbers=counts[NUMBER_TOKEN],
    )


def mask_text(text: str | None) -> str | None:
    """`mask(text).text`, passing None through."""
    return None if text is None else _masked(text)[0]


def _masked(text: str) -> tuple[str, dict[str, int] | None]:
    """(the masked text, how many of each placeholder; None when nothing can be in it)."""
    if not _MAYBE_PERSONAL.search(text):  # no digit, "@" or ":": nothing to mask (the common case)
        return text, None
    counts = dict.fromkeys(TOKENS, 0)

    def replace(token: str) -> str:
        counts[token] += 1
        return token

    # Each pass runs only where its kind can be: a comment such as "it read my 7 as a 1" costs one count
    # instead of four regular-expression passes (batch ingest masks thousands of comments per request).
    digits = _digit_count(text)
    masked = _mask_emails(text, replace)
    if digits >= MIN_DIGITS:  # every IBAN holds more digits than that
        masked = _IBAN.sub(lambda m: replace(IBAN_TOKEN) if _is_iban(m.group()) else m.group(), masked)
    if masked.count(":") >= 2:
        masked = _IPV6.sub(lambda m: _ipv6(m.group(), replace), masked)
    if digits >= MIN_DIGITS or masked.count(".") + masked.count("\uff0e") >= 3:  # or a short IPv4
        masked = _NUMBERS.sub(lambda m: m.group() if m.group("uuid") else _number(m.group(), replace), masked)
    return masked, counts


def pseudonymize(user_id: str | None) -> str | None:
    """A user id in which the masker finds anything (an e-mail address, a phone number, ...) becomes a
    stable pseudonym: the same id (ignoring case and character width) always gives the same pseudonym, so
    per-user counts and de-duplication still work, and only someone with the key can recompute it. The key
    is FEEDBACK_LOOP_PSEUDONYM_KEY; without it the pseudonym is an unkeyed hash, which anyone holding a
    list of candidate addresses can confirm. Any other id is kept as it is."""
    return pseudonymizer()(user_id)


def pseudonymizer() -> Callable[[str | None], str | None]:
    """`pseudonymize` with the key read now, for many ids at once: batch ingest pseudonymizes up to 10,000
    ids per request, and reading the environment for each cost more than the pseudonyms (cached)."""
    secret = os.environ.get(PSEUDONYM_KEY_ENV, "")

    def pseudonymize_id(user_id: str | None) -> str | None:
        return None if user_id is None else _pseudonym(user_id, secret)

    return pseudonymize_id


def _may_hold_personal_data(text: str) -> bool:
    """False only when no rule of the masker can match: no "@", fewer than MIN_DIGITS digits, no IPv6 or
    IPv4 shape."""
    return (
        "@" in text
        or "\uff20" in text
        or text.count(":") >= 2
        or text.count(".") + text.count("\uff0e") >= 3
        or _digit_count(text) >= MIN_DIGITS
    )


@functools.lru_cache(maxsize=65536)  # a batch names the same users many times: one check per user
def _pseudonym(user_id: str, secret: str) -> str:
    if not _may_hold_personal_data(user_id) or not mask(user_id).changed:  # "user-123": most ids
        return user_id
    key = secret.encode()
    if not key:
        _warn_unkeyed()
        key = _UNKEYED
    normal = unicodedata.normalize("NFKC", user_id).strip().casefold()
    digest = hmac.new(key, normal.encode(), hashlib.sha256).digest()[:8]
    return PSEUDONYM_PREFIX + "".join(
        _PSEUDONYM_ALPHABET[b >> 4] + _PSEUDONYM_ALPHABET[b & 15] for b in digest
    )


_warned: list[bool] = []


def _warn_unkeyed() -> None:
    if not _warned:
        _warned.append(True)
        log.warning(
            "%s is not set: user ids holding personal data are replaced by an unkeyed hash; set a secret key",
            PSEUDONYM_KEY_ENV,
        )


# ---- e-mail addresses ------------------------------------------------------------------------------


def _mask_emails(text: str, replace: Callable[[str], str]) -> str:
    if "@" not in text and "\uff20" not in text:
        return text

    def email(match: re.Match[str]) -> str:
        domain = match.group("domain").rstrip("-_")
        if not _is_domain(domain):
            return match.group()
        return replace(EMAIL_TOKEN) + match.group("domain")[len(domain) :]

    return _EMAIL.sub(email, text)


def _is_domain(domain: str) -> bool:
    labels = re.split("[.\uff0e\u3002\uff61]", domain)
    return (
        len(labels) >= 2 and all(labels) and len(labels[-1]) >= 2 and any(ch.isalpha() for ch in labels[-1])
    )


# ---- IBANs and IP addresses ---------------------------------------------------------------------------


def _is_iban(candidate: str) -> bool:
    compact = re.sub(r"[ \u00a0-]", "", candidate).upper()
    if not 15 <= len(compact) <= 34:
        return False
    digits = sum(ch.isdecimal() for ch in compact[4:])
    if digits >= 8:
        return True
    if not digits or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ipv6(candidate: str, replace: Callable[[str], str]) -> str:
    if candidate.count(":") < 2:
        return candidate
    address = candidate.rstrip(".")
    if len(address) > 45:
        return candidate
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return candidate
    return replace(IP_TOKEN) + candidate[len(address) :]


# ---- numbers ---------------------------------------------------------------------------------------


def _digit_count(text: str) -> int:
    """The number of decimal digits of any script in `text`."""
    if text.isascii():
        return sum(map(text.count, "0123456789"))
    return len(_ANY_DIGIT.findall(text))


def _digits(text: str) -> str:
    """The decimal digits of `text` as ASCII, whatever their script."""
    if text.isascii():
        return _NOT_DIGIT.sub("", text)
    return "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())


def _is_ipv4(piece: str) -> bool:
    return all(int(part) <= 255 for part in piece.split("."))


def _is_date(match: re.Match[str]) -> bool:
    if match.group(1) is not None:
        year, month, day = int(match.group(1)), int(match.group(3)), int(match.group(4))
        return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31
    first, second, year_text = int(match.group(5)), int(match.group(7)), match.group(8)
    year = int(year_text)
    return (
        (len(year_text) == 2 or 1900 <= year <= 2099)
        and 1 <= first <= 31
        and 1 <= second <= 31
        and min(first, second) <= 12
    )


def _number(run: str, replace: Callable[[str], str]) -> str:
    """A run of digits and separators: left alone, masked whole, or with its IPv4 addresses masked."""
    digits = len(_digits(run))
    if _DECIMAL.fullmatch(run):
        return run
    if _IPV4.fullmatch(run) and _is_ipv4(run):
        return replace(IP_TOKEN)
    if digits < MIN_DIGITS:
        return run
    # Dates and IPv4 addresses inside the run, each set off by whitespace (or the run's ends) from the
    # rest; whatever digits are left decide. One pass over the run's digit groups.
    pieces: list[tuple[int, int, str]] = []  # (start, end, "date" | "ip") of the recognised parts
    other = 0
    pos = 0
    groups = _GROUP.finditer(run) if "-" in run or "/" in run or "." in run else ()
    if not groups:  # no date and no address without "-", "/" or "."
        other = digits
    # After an international prefix or a bracketed area code ("+1 (100) 01.01.00", "(030) 12.12.12") a
    # date-shaped group is the rest of a phone number. A run that opens with a date is no phone number:
    # "(2026-12-06)" and "(2026-12-01 - 2026-12-06)" stay dates, and so does "(3.11.7 2026-12-06)".
    prefixed = run[0] in "+\uff0b(\uff08"
    for n, group in enumerate(groups):
        if group.start() < pos:
            continue
        start = group.start()
        bounded_left = start == 0 or run[start - 1].isspace() or run[start - 1] in "+\uff0b(\uff08"
        found = None
        # A date or an address goes on with "-", "/" or "." right after its first group.
        if bounded_left and group.end() < len(run) and run[group.end()] in "-/.":
            date = _DATE.match(run, start)
            ip = _IPV4.match(run, start)
            for kind, match in (("date", date), ("ip", ip)):
                if match is None or (kind == "date" and prefixed and n > 0 and _phone_prefix(run, start)):
                    continue
                end = match.end()
                if end < len(run) and not run[end].isspace() and not (kind == "ip" and run[end] == "/"):
                    continue
                if kind == "date" and not _is_date(match):
                    continue
                if kind == "ip" and not _is_ipv4(match.group()):
                    continue
                found = (start, end, kind)
                break
        if found is None:
            other += group.end() - group.start()
            pos = group.end()
        else:
            pieces.append(found)
            pos = found[1]
            if n == 0:
                prefixed = False
    ips = any(kind == "ip" for _start, _end, kind in pieces)
    if other >= MIN_DIGITS or (ips and other):  # "+1 10.00.00.00" is a phone number, not an address
        return replace(_classify(run))
    out, done = [], 0
    for start, end, kind in pieces:
        if kind == "ip":
            out += [run[done:start], replace(IP_TOKEN)]
            done = end
    out.append(run[done:])
    return "".join(out)


def _phone_prefix(run: str, start: int) -> bool:
    """Whether what comes before `start` in the run reads as a phone number's prefix: it opens with "+",
    or with a bracket closed before `start` (an area code)."""
    return run[0] in "+\uff0b" or ")" in run[1:start] or "\uff09" in run[1:start]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _starts_with_card(run: str) -> bool:
    """Whether the run's first 13-19 digits, ending where a digit group ends, pass the Luhn check."""
    seen = ""
    for group in _GROUP.finditer(run):
        seen += _digits(group.group())
        if len(seen) > 19:
            return False
        if len(seen) >= 13 and seen[0] != "0" and _luhn(seen):
            return True
    return False


def _classify(run: str) -> str:
    digits = _digits(run)
    international = run[0] in "+\uff0b(\uff08" or digits.startswith("00")
    if 13 <= len(digits) <= 19 and not international and "(" not in run and digits[0] != "0":
        return CARD_TOKEN
    if len(digits) > 19 and not international and _starts_with_card(run):
        return CARD_TOKEN
    if len(digits) <= 15 or international:
        return PHONE_TOKEN
    return NUMBER_TOKEN
