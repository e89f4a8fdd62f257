"""How an error names the field it is about, for the API's 422 answers and the config file's errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# Keys that read as themselves after a dot: a letter or _, then letters, digits, _ or - (any script, so a
# column named température reads as itself). Anything else (blank, spaces, tabs, dots, quotes, invisible
# characters) is shown JSON-quoted in brackets, so a field named "\t" is reported as ["\t"], not as a
# name the reader cannot see or find in their request.
_PLAIN_KEY = re.compile(r"[^\W\d][\w-]*")


def _quoted(text: str) -> str:
    """JSON-quoted, readable characters kept as they are and unprintable ones (a zero-width space, ...)
    escaped, which json.dumps without ensure_ascii leaves as they are."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in json.dumps(text, ensure_ascii=False))


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
