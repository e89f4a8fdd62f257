"""How an error names the field it is about, for the API's 422 answers and the config file's errors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# Keys that read as themselves after a dot. Anything else (blank, spaces, tabs, dots, quotes, control
# characters) is shown JSON-quoted in brackets, so a field named "\t" is reported as ["\t"], not as an
# invisible name the reader cannot find in their request.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def dotted(parts: Iterable[object]) -> str:
    """('items', 3, 'rating') -> 'items[3].rating'; ('extra', '\\t') -> 'extra["\\t"]'."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(text := str(part)):
            out += ("." if out else "") + text
        else:
            out += f"[{json.dumps(text)}]"
    return out
