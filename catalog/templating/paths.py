"""Output ``field`` paths (``spec.rules[0].host``): parsing them and reading them from an object."""

from __future__ import annotations

import json
import re
from typing import Any

_PATH_KEY_RE = re.compile(r"[^.\[\]\"']+")
_PATH_BRACKET_RE = re.compile(r"""\[(?:(\d+)|"([^"]*)"|'([^']*)')\]""")


def _parse_path(path: Any) -> list[str | int]:
    """``spec.rules[0].host`` -> ``["spec", "rules", 0, "host"]``; ``a["b.c/d"]`` for odd keys."""
    if not isinstance(path, str) or not path:
        raise ValueError("path must be a non-empty string such as spec.rules[0].host")
    parts: list[str | int] = []
    position = 0
    while position < len(path):
        if path[position] == "[":
            match = _PATH_BRACKET_RE.match(path, position)
            if not match:
                raise ValueError(f"invalid path {path!r} at position {position + 1}")
            index, double, single = match.groups()
            parts.append(int(index) if index is not None else double if double is not None else single)
        else:
            if parts:
                if path[position] != ".":
                    raise ValueError(f"invalid path {path!r} at position {position + 1}")
                position += 1
            match = _PATH_KEY_RE.match(path, position)
            if not match:
                raise ValueError(f"invalid path {path!r} at position {position + 1}")
            parts.append(match.group())
        position = match.end()
    return parts


def read_path(obj: Any, path: str) -> Any:
    """The value at ``path`` in ``obj`` (e.g. ``spec.rules[0].host``), or ``None`` if absent."""
    value = obj
    for part in _parse_path(path):
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return None
            value = value[part]
        else:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
    return value


def _join_path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"
