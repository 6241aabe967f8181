"""How deep decoded JSON nests, measured without recursion: input from outside may be nested thousands of levels
deep, and both the event parser and the outbox decoder must refuse it without following it down."""

from __future__ import annotations

from typing import Any, Iterable

# Decoded JSON holds dicts and lists only; concrete types keep the check a C-level test (an isinstance against
# typing.Mapping goes through the ABC machinery, several times slower on every field of every event).
_CONTAINERS = (dict, list, tuple)


def nested_deeper_than(values: Iterable[Any], limit: int, *, level: int = 2) -> bool:
    """True when an object or array among `values` (which sit at `level`), or inside them, lies deeper than
    `limit`. Scalars cost nothing: a flat event is one pass over its values and no allocation."""
    stack = [(value, level) for value in values if isinstance(value, _CONTAINERS)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return False
