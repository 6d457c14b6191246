"""The Jinja2 sandbox of template rendering, with a per-render work budget (security code).

Every string, container and integer a template builds, every call, loop step and filter goes
through :class:`_Sandbox`; a limit that is hit raises :class:`_LimitError`."""

from __future__ import annotations

import collections
import functools
import re
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import StrictUndefined
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
)

from catalog.templating.base import (
    _SIZE_MEMORY,
    MAX_ALLOCATED,
    MAX_INT_BITS,
    MAX_JSON_INDENT,
    MAX_PRODUCED_CHARS,
    MAX_RANGE,
    MAX_RENDER_SECONDS,
    MAX_STEPS,
    MAX_VALUE_SIZE,
    _is_int,
)


class _LimitError(SecurityError):
    """A sandbox resource limit was hit."""


class _Budget:
    """Work done by one render: steps, text produced, data built, wall time."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.steps = 0
        self.produced = 0
        self.allocated = 0

    def tick(self, chars: int = 0) -> None:
        self.steps += 1
        self.produced += chars
        if self.steps > MAX_STEPS:
            raise _LimitError(
                f"the template does too much work (over {MAX_STEPS:,} loop iterations and calls)"
            )
        if self.produced > MAX_PRODUCED_CHARS:
            raise _LimitError(f"the template produces too much text (over {MAX_PRODUCED_CHARS:,} characters)")
        self.check_time()

    def allocate(self, size: int) -> None:
        self.allocated += size
        if self.allocated > MAX_ALLOCATED:
            raise _LimitError(f"the template builds too much data (over {MAX_ALLOCATED:,} characters/items)")

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _LimitError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


_CONTAINERS = (list, tuple, dict, set, frozenset)
_TEXTS = (str, bytes, bytearray)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _shallow(value: Any) -> int:
    return len(value) if isinstance(value, (*_TEXTS, *_CONTAINERS)) else 1


_PRINTF_SPEC_RE = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD_RE = re.compile(r"\{[^{}]*")
_NESTED_FORMAT_RE = re.compile(r"\{[^{}]*:[^{}]*\{")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus a per-render budget (one instance per render).

    Sizes are *deep* (characters + items reachable), so that sharing cannot hide a blow-up
    (``[s] * n``, ``[x, x]`` nested in a loop): every string or container built is checked
    before it is built where that is possible, and before it is turned into text.  The
    immutable sandbox forbids changing lists and dicts, so a container's size, once computed,
    stays true; recent ones are remembered to keep the checks cheap in loops.
    """

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self) -> None:
        self.budget = _Budget()
        self._sizes: collections.OrderedDict[int, tuple[Any, int]] = collections.OrderedDict()
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            finalize=self._finalize,
            cache_size=0,
            auto_reload=False,
        )
        self.globals.pop("lipsum", None)
        budget = self.budget

        def safe_range(*args: int) -> range:
            budget.tick()
            numbers = range(*args)
            try:
                size = len(numbers)
            except OverflowError:
                size = MAX_RANGE + 1
            if size > MAX_RANGE:
                raise _LimitError(f"range() of more than {MAX_RANGE:,} items is not allowed")
            return numbers

        self.globals["range"] = safe_range
        self.filters = {name: self._wrap_filter(name, func) for name, func in self.filters.items()}

    # -- sizes
    def _known_size(self, value: Any) -> int | None:
        entry = self._sizes.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def _remember(self, value: Any, size: int) -> None:
        if isinstance(value, _CONTAINERS):
            self._sizes[id(value)] = (value, size)
            self._sizes.move_to_end(id(value))
            while len(self._sizes) > _SIZE_MEMORY:
                self._sizes.popitem(last=False)

    def _size(self, value: Any) -> int:
        """Characters + items reachable from ``value`` (counting stops past the limit)."""
        if isinstance(value, (*_TEXTS, range)):
            return len(value)
        if not isinstance(value, _CONTAINERS):
            return 1
        known = self._known_size(value)
        if known is not None:
            return known
        total, stack, visited = 0, [value], 0
        while stack and total <= MAX_VALUE_SIZE:
            item = stack.pop()
            visited += 1
            if visited % 65536 == 0:
                self.budget.check_time()
            if isinstance(item, _CONTAINERS):
                known = None if item is value else self._known_size(item)
                if known is not None:
                    total += known
                    continue
                total += len(item) + 1
                if isinstance(item, dict):
                    stack.extend(item.keys())
                    stack.extend(item.values())
                else:
                    stack.extend(item)
            elif isinstance(item, (*_TEXTS, range)):
                total += len(item) + 1
            else:
                total += 1
        self._remember(value, total)
        return total

    @staticmethod
    def _check_estimate(estimate: int, what: str) -> None:
        if estimate > MAX_VALUE_SIZE:
            raise _LimitError(f"{what} would be larger than {MAX_VALUE_SIZE:,} characters/items")

    def _check_value(self, value: Any, what: str) -> None:
        self._check_estimate(self._size(value), what)

    def _built(self, value: Any, what: str) -> Any:
        """Account for a value just built by the template and check its size."""
        self._check_value(value, what)
        self.budget.allocate(_shallow(value))
        return value

    @staticmethod
    def _check_count(number: Any, what: str) -> None:
        if _is_int(number) and number > MAX_VALUE_SIZE:
            raise _LimitError(f"{what} {number} is over the sandbox limit of {MAX_VALUE_SIZE:,}")

    def _materialize(self, value: Any) -> Any:
        """Turn an iterator into a list (bounded), so that its size can be checked."""
        if isinstance(value, (*_TEXTS, *_CONTAINERS, range)):
            return value
        items = []
        for item in value:
            items.append(item)
            if len(items) > MAX_VALUE_SIZE:
                raise _LimitError(f"a sequence of more than {MAX_VALUE_SIZE:,} items is not allowed")
        return items

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail at once (Jinja returns an undefined that fails only when used)."""
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")

    # -- format strings
    def _check_printf(self, fmt: str, args: Any) -> None:
        star = False
        for match in _PRINTF_SPEC_RE.finditer(fmt):
            for group in match.groups():
                if group == "*":
                    star = True
                elif group and int(group) > MAX_VALUE_SIZE:
                    raise _LimitError(f"a format width of {group} is over the sandbox limit")
        values = args if isinstance(args, tuple) else (args,)
        for value in values:
            self._check_value(value, "a formatted value")
            if star:
                self._check_count(value, "a format width of")

    def _check_brace_format(self, fmt: str, args: tuple, kwargs: dict) -> None:
        for field in _FORMAT_FIELD_RE.findall(fmt):
            for digits in re.findall(r"\d+", field):
                if int(digits) > MAX_VALUE_SIZE:
                    raise _LimitError(f"a format width of {digits} is over the sandbox limit")
        values = list(args) + list(kwargs.values())
        if len(args) == 1 and isinstance(args[0], Mapping):
            values += list(args[0].values())
        nested = _NESTED_FORMAT_RE.search(fmt) is not None
        for value in values:
            self._check_value(value, "a formatted value")
            if nested:
                self._check_count(value, "a format width of")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__
        env = self

        def checked(*args: Any, **kwargs: Any) -> str:
            env._check_brace_format(fmt, args, kwargs)
            return env._built(wrapper(*args, **kwargs), "a formatted string")

        return checked

    # -- operators
    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.budget.tick()
        estimate = None
        if operator == "**":
            big = _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1
            if big and right * left.bit_length() > MAX_INT_BITS:
                raise _LimitError(f"the number {left} ** {right} is too large for the sandbox")
        elif operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                    estimate = max(count, 0) * self._size(sequence)
                    self._check_estimate(estimate, "a repeated string or list")
                    self.budget.allocate(max(count, 0) * len(sequence))
                    break
            else:
                if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise _LimitError("the product is too large a number for the sandbox")
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                estimate = self._size(left) + self._size(right)
                self._check_estimate(estimate, "a concatenated string or list")
                self.budget.allocate(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            self._check_printf(left, right)
        result = self.binop_table[operator](left, right)
        if estimate is not None:
            self._remember(result, estimate)
        elif operator == "%" and isinstance(result, str):
            self._built(result, "a formatted string")
        return result

    # -- calls and filters
    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.budget.tick()
        if getattr(obj, "__self__", None) is self:  # a budget hook (templates cannot name them)
            return obj(*args)
        args = self._precheck_call(obj, args, kwargs)
        return self._built(super().call(context, obj, *args, **kwargs), "the result of a call")

    def _precheck_call(self, obj: Any, args: tuple, kwargs: dict) -> tuple:
        if not isinstance(obj, types.BuiltinMethodType):
            return args
        owner, name = obj.__self__, obj.__name__
        if name in ("translate", "maketrans"):
            raise SecurityError(f"{name}() is not available in templates")
        if isinstance(owner, _TEXTS):
            if name in ("ljust", "rjust", "center", "zfill"):
                self._check_count(_arg(args, kwargs, 0, "width"), "a width of")
            elif name == "expandtabs":
                size = _arg(args, kwargs, 0, "tabsize", 8)
                if _is_int(size):
                    self._check_estimate(len(owner) * max(size, 1), "the expanded string")
            elif name == "replace":
                old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
                count = _arg(args, kwargs, 2, "count", -1)
                self._check_estimate(_replace_estimate(owner, old, new, count), "the replaced string")
            elif name == "join" and args:
                items = self._materialize(args[0])
                self._check_estimate(self._size(items) + len(owner) * len(items), "the joined string")
                args = (items, *args[1:])
        elif _is_int(owner) and name == "to_bytes":
            self._check_count(_arg(args, kwargs, 0, "length", 1), "a length of")
        return args

    def _wrap_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        env = self

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            env.budget.tick()
            if len(args) > skip:
                value = env._precheck_filter(name, args[skip], args[skip + 1 :], kwargs)
                args = (*args[:skip], value, *args[skip + 1 :])
            return env._built(func(*args, **kwargs), f"the result of the '{name}' filter")

        return wrapper

    def _precheck_filter(self, name: str, value: Any, args: tuple, kwargs: dict) -> Any:
        if name == "join":
            value = self._materialize(value)
        self._check_value(value, f"the value given to the '{name}' filter")
        text = value if isinstance(value, str) else None
        if name == "center":
            self._check_count(_arg(args, kwargs, 0, "width", 80), "a width of")
        elif name == "indent" and text is not None:
            width = _arg(args, kwargs, 0, "width", 4)
            per_line = len(width) if isinstance(width, str) else width if _is_int(width) else 0
            self._check_estimate(len(text) + per_line * (text.count("\n") + 1), "the indented string")
        elif name == "wordwrap" and text is not None:
            wrapstring = _arg(args, kwargs, 2, "wrapstring")
            if isinstance(wrapstring, str):
                self._check_estimate(len(text) + len(wrapstring) * (len(text) + 1), "the wrapped string")
        elif name in ("batch", "slice"):
            count = _arg(args, kwargs, 0, "linecount" if name == "batch" else "slices")
            self._check_count(count, "a count of")
        elif name == "format" and text is not None:
            self._check_printf(text, tuple(args) if args else kwargs)
        elif name == "replace" and text is not None:
            old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
            count = _arg(args, kwargs, 2, "count")
            self._check_estimate(
                _replace_estimate(text, old, new, -1 if count is None else count), "the replaced string"
            )
        elif name == "join":
            separator = _arg(args, kwargs, 0, "d", "")
            length = len(separator) if isinstance(separator, str) else 0
            self._check_estimate(self._size(value) + length * len(value), "the joined string")
        elif name == "tojson":
            indent = _arg(args, kwargs, 0, "indent")
            if (_is_int(indent) and indent > MAX_JSON_INDENT) or (
                isinstance(indent, str) and len(indent) > MAX_JSON_INDENT
            ):
                raise _LimitError(f"tojson indent is limited to {MAX_JSON_INDENT}")
        return value

    # -- hooks called by instrumented templates (see _instrument)
    def _finalize(self, value: Any) -> str:
        if not isinstance(value, str):
            self._check_value(value, "an output value")
            value = str(value)
        self.budget.tick(len(value))
        return value

    def paas_tick(self, chars: int = 0) -> None:
        self.budget.tick(chars)

    def paas_tick_true(self) -> bool:
        self.budget.tick()
        return True

    def paas_check(self, value: Any) -> Any:
        return self._built(value, "a list or dict literal")

    def paas_concat(self, *parts: Any) -> str:
        strings, total = [], 0
        for part in parts:
            if not isinstance(part, str):
                self._check_value(part, "a concatenated value")
                part = str(part)
            total += len(part)
            self._check_estimate(total, "a concatenated string")
            strings.append(part)
        return self._built("".join(strings), "a concatenated string")


def _replace_estimate(text: Any, old: Any, new: Any, count: Any) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    occurrences = len(text) + 1 if old == "" else text.count(old)
    if _is_int(count) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * max(len(new) - len(old), 0)
