"""How deep a JSON value is nested, measured without recursion (so it cannot exhaust the stack)."""

from typing import Any

# Kubernetes objects and our declarations stay far below this; Python's stack does not run out.
MAX_DEPTH = 100


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
