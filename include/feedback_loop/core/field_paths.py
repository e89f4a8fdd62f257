"""How an error names the field it is about, for the API's 422 answers and the config file's errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# Keys that read as themselves after a dot: ASCII letters, digits, _ and -. Anything else is shown
# JSON-quoted in brackets, so the quotes themselves tell the reader the name is unusual: a field named
# "\t" is reported as ["\t"], not as a blank name, and a Cyrillic "а" in "nаme" never passes for Latin.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Letters that show as blank (Hangul fillers): escaped like spaces and control characters.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def _shown(char: str) -> str:
    """A character of a quoted name: as it is when it can be read, else its JSON escape (a surrogate pair
    above U+FFFF)."""
    if char.isascii() or (char.isprintable() and not char.isspace() and char not in _BLANK_LETTERS):
        return char
    return json.dumps(char)[1:-1]


def _quoted(text: str) -> str:
    return "".join(_shown(c) for c in json.dumps(text, ensure_ascii=False))


def dotted(parts: Iterable[object]) -> str:
    """('items', 3, 'rating') -> 'items[3].rating'; ('extra', '\\t') -> 'extra["\\t"]'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(text := str(part)):
            out += ("." if out else "") + text
        else:
            out += f"[{_quoted(text)}]"
    return out
