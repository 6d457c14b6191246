"""Rendering a template in the sandbox: static refusals before anything runs, then a budgeted render
(security code: the checks here and in :mod:`catalog.templating.sandbox` go together)."""

from __future__ import annotations

import collections
import hashlib
import threading
import traceback
from collections.abc import Mapping
from typing import Any

from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from catalog.templating.base import (
    _DICT_ATTRIBUTES,
    _INTERNAL_ATTRIBUTES,
    MAX_OUTPUT_CHARS,
    MAX_TEMPLATE_CHARS,
    TemplateError,
    _truncate,
)
from catalog.templating.sandbox import _LimitError, _Sandbox

_REFUSED_TAGS = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}
_BUDGETED_BODIES = (nodes.For, nodes.Macro, nodes.CallBlock)


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"line {exc.lineno}: syntax error: {exc.message}"


_ATTRIBUTE_FILTERS = frozenset({"attr", "selectattr", "rejectattr", "groupby"})  # attribute as 1st argument


def _attribute_arguments(node: nodes.Node) -> list[Any]:
    """Attribute names a node reads: ``x.a``, ``x['a']``, ``|attr('a')``, ``|map(attribute='a.b')``."""
    if isinstance(node, nodes.Getattr):
        return [node.attr]
    if isinstance(node, nodes.Getitem):
        return [node.arg.value] if isinstance(node.arg, nodes.Const) else []
    names = []
    if isinstance(node, (nodes.Filter, nodes.Test)):
        if node.name in _ATTRIBUTE_FILTERS and node.args and isinstance(node.args[0], nodes.Const):
            names.append(node.args[0].value)
        for keyword in node.kwargs:
            if keyword.key == "attribute" and isinstance(keyword.value, nodes.Const):
                names.append(keyword.value.value)
        names = [part for name in names if isinstance(name, str) for part in name.split(".")]
    return names


def _static_problems(ast: nodes.Template) -> list[str]:
    """Sandbox escapes that can be seen without running the template."""
    problems: list[tuple[int, str]] = []
    for node in ast.find_all(tuple(_REFUSED_TAGS)):
        tag = _REFUSED_TAGS[type(node)]
        problems.append((node.lineno, f"{{% {tag} %}} is not allowed: a template is self-contained"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test)):
        for attribute in _attribute_arguments(node):
            if isinstance(attribute, str) and (
                attribute.startswith("_") or attribute in _INTERNAL_ATTRIBUTES
            ):
                message = f"access to the attribute '{attribute}' is not allowed (sandbox)"
                problems.append((node.lineno, message))
    return [f"line {line}: {message}" for line, message in sorted(set(problems))]


def _assigned_names(ast: nodes.Template) -> set[str]:
    names = {node.name for node in ast.find_all(nodes.Name) if node.ctx in ("store", "param")}
    names |= {node.name for node in ast.find_all(nodes.NSRef)}
    names |= {node.name for node in ast.find_all(nodes.Macro)}
    return names


def _name_problems(ast: nodes.Template, context: Mapping[str, Any], env: _Sandbox) -> list[str]:
    """Undefined top-level names, and unknown keys of inputs/instance/profile, in every branch."""
    assigned = _assigned_names(ast)
    known = set(context) | set(env.globals) | {"action"}
    problems: list[tuple[int, str]] = []
    loads: dict[str, int] = {}
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load":
            loads[node.name] = min(loads.get(node.name, node.lineno), node.lineno)
    for name in sorted(meta.find_undeclared_variables(ast) - known - assigned):
        problems.append((loads.get(name, 1), f"'{name}' is undefined"))
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        base = node.node
        if not isinstance(base, nodes.Name) or base.ctx != "load":
            continue
        if base.name not in ("inputs", "instance", "profile"):
            continue
        if base.name in assigned or not isinstance(context.get(base.name), Mapping):
            continue
        key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(key, str) and key not in context[base.name] and key not in _DICT_ATTRIBUTES:
            noun = "a declared input" if base.name == "inputs" else f"a key of {base.name}"
            problems.append((node.lineno, f"'{base.name}.{key}' is undefined: '{key}' is not {noun}"))
    return [f"line {line}: {message}" for line, message in sorted(set(problems))]


def _literal_chars(body: list[nodes.Node]) -> int:
    """Template text directly in ``body`` (nested loops and macros count their own)."""
    total, stack = 0, list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, _BUDGETED_BODIES):
            stack.extend(node.iter_child_nodes())
    return total


def _hook(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None)
    return call.set_lineno(lineno)


def _instrument(node: nodes.Node) -> nodes.Node:
    """Rewrite the template so that loops, macros, literals and ``~`` go through the budget."""
    for field in node.fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            value = [_instrument(item) if isinstance(item, nodes.Node) else item for item in value]
            setattr(node, field, value)
        elif isinstance(value, nodes.Node):
            setattr(node, field, _instrument(value))
    lineno = node.lineno or 1
    if isinstance(node, _BUDGETED_BODIES):
        tick = nodes.ExprStmt(_hook("paas_tick", [nodes.Const(_literal_chars(node.body))], lineno))
        node.body = [tick.set_lineno(lineno), *node.body]
        if isinstance(node, nodes.For) and node.test is not None:
            node.test = nodes.And(_hook("paas_tick_true", [], lineno), node.test).set_lineno(lineno)
        return node
    if isinstance(node, nodes.Concat):
        return _hook("paas_concat", list(node.nodes), lineno)
    if isinstance(node, (nodes.List, nodes.Dict)) or (isinstance(node, nodes.Tuple) and node.ctx == "load"):
        return _hook("paas_check", [node], lineno)
    return node


def _template_line(exc: BaseException) -> int | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<template>":
            return frame.lineno
    return None


def _runtime_message(exc: BaseException) -> str:
    line = _template_line(exc)
    prefix = f"line {line}: " if line else ""
    if isinstance(exc, _LimitError):
        return f"{prefix}sandbox limit: {exc}"
    if isinstance(exc, SecurityError):
        return f"{prefix}refused by the sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return f"{prefix}undefined variable: {exc.message}"
    if isinstance(exc, TemplateSyntaxError):
        return _syntax_message(exc)
    if isinstance(exc, RecursionError):
        return f"{prefix}sandbox limit: recursion too deep"
    if isinstance(exc, MemoryError):
        return f"{prefix}sandbox limit: out of memory"
    return _truncate(f"{prefix}{type(exc).__name__}: {exc}", 300)


def _compile(source: Any, context: Mapping[str, Any] | None) -> tuple[Any, _Sandbox | None, list[str]]:
    """Parse, check statically and compile ``source``; ``context`` enables the name checks."""
    if not isinstance(source, str):
        return None, None, ["the template must be a string"]
    if len(source) > MAX_TEMPLATE_CHARS:
        return None, None, [f"the template is larger than {MAX_TEMPLATE_CHARS // 1024} KiB"]
    try:
        return _compile_checked(source, context)
    except RecursionError:
        # Jinja's parser, our AST checks and its compiler recurse once per nesting level: thousands
        # of "(" or nested blocks exhaust Python's stack. That is the author's error, said plainly.
        return None, None, ["the template is nested too deeply (brackets, expressions or blocks)"]


def _context_signature(context: Mapping[str, Any] | None) -> tuple | None:
    """What the name checks read of a context: its top-level names and the keys of the three mappings
    whose keys they check (two contexts with the same signature get the same answers)."""
    if context is None:
        return None
    nested = tuple(
        (name, tuple(sorted(map(str, value))) if isinstance(value, Mapping) else None)
        for name in ("inputs", "instance", "profile")
        for value in [context.get(name)]
    )
    return tuple(sorted(map(str, context))), nested


# Compiled templates by (source, context signature): the checks and Jinja's compiler take most of a
# render's time, and every launch renders the same few templates. What is kept is Python code (never a
# Template: its sandbox carries the budget of one render), bound to a fresh sandbox on each render.
_COMPILED: collections.OrderedDict[tuple, tuple[Any, list[str]]] = collections.OrderedDict()
_COMPILED_MAX = 128
_COMPILED_LOCK = threading.Lock()


def _compile_checked(
    source: str, context: Mapping[str, Any] | None
) -> tuple[Any, _Sandbox | None, list[str]]:
    key = (hashlib.sha256(source.encode()).digest(), _context_signature(context))
    with _COMPILED_LOCK:
        cached = _COMPILED.get(key)
        if cached is not None:
            _COMPILED.move_to_end(key)
    if cached is None:
        cached = _compile_code(source, context)
        with _COMPILED_LOCK:
            _COMPILED[key] = cached
            while len(_COMPILED) > _COMPILED_MAX:
                _COMPILED.popitem(last=False)
    code, problems = cached
    if problems:
        return None, None, problems
    env = _Sandbox()
    return env.template_class.from_code(env, code, env.make_globals(None), None), env, []


def _compile_code(source: str, context: Mapping[str, Any] | None) -> tuple[Any, list[str]]:
    """The checked, instrumented template compiled to Python code, or the problems that refuse it."""
    env = _Sandbox()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return None, [_syntax_message(exc)]
    problems = _static_problems(ast)
    if problems:
        return None, problems
    if context is not None:
        try:
            problems = _name_problems(ast, context, env)
        except TemplateSyntaxError as exc:  # e.g. an unknown filter (TemplateAssertionError)
            return None, [_syntax_message(exc)]
        if problems:
            return None, problems
    ast = _instrument(ast)
    ast.set_environment(env)
    try:
        return env.compile(ast), []
    except TemplateSyntaxError as exc:  # e.g. an unknown filter (TemplateAssertionError)
        return None, [_syntax_message(exc)]
    except Exception as exc:  # constant folding at compile time can hit a limit
        return None, [_runtime_message(exc)]


def _template_problems(source: str) -> list[str]:
    """Syntax and sandbox problems of a small template (output sources), without rendering."""
    return _compile(source, None)[2]


def render(manifests: str, context: Mapping[str, Any], *, field: str = "manifests") -> str:
    """Render ``manifests`` with ``context`` in the sandbox; errors are keyed by ``field``."""
    template, _env, problems = _compile(manifests, context)
    if problems:
        raise TemplateError({field: problems})
    chunks: list[str] = []
    total = 0
    try:
        for chunk in template.generate(dict(context)):
            total += len(chunk)
            if total > MAX_OUTPUT_CHARS:
                raise _LimitError(f"the rendered text is larger than {MAX_OUTPUT_CHARS // 1024} KiB")
            chunks.append(chunk)
    except Exception as exc:  # any failure of a user's template is the user's error
        raise TemplateError({field: [_runtime_message(exc)]}) from exc
    return "".join(chunks)
