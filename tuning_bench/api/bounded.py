"""Bounds on structures read from users' YAML files: their expanded size, and their repr in messages.

YAML aliases let a few hundred bytes name a structure of billions of values (an "alias bomb"): loading
it is cheap, because aliases share one object, but anything that walks it (``repr`` for an error
message, ``json.dumps`` for a fingerprint) runs out of memory. Files are checked once, right after
loading, and messages quote values through ``brief_repr``.
"""

from __future__ import annotations

import reprlib
from typing import Any

MAX_REPR = 160  # characters of a value quoted in an error message
MAX_VALUES = 100_000  # far beyond any task or suite file; an alias bomb passes it after a few levels

_brief = reprlib.Repr()
_brief.maxlevel = 2
_brief.maxstring = 60
_brief.maxother = 60
_brief.maxlist = _brief.maxtuple = _brief.maxdict = _brief.maxset = 5


def brief_repr(value: Any) -> str:
    """``repr`` cut to a few elements and levels, safe for any structure a user can write."""
    text = _brief.repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 1] + "…"


def expanded_size(value: Any, limit: int = MAX_VALUES) -> int:
    """How many values ``value`` holds once aliases are expanded, counting up to just past ``limit``."""
    count = 0
    stack = [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


def too_large(value: Any, limit: int = MAX_VALUES) -> bool:
    """Whether a loaded YAML document expands to more than ``limit`` values (an alias bomb)."""
    return expanded_size(value, limit) > limit
