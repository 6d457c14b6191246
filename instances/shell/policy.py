"""What the web shell runs: each command line parsed (``shlex``, never a shell) and checked against an
allow-list of kubectl subcommands and flags (and helm's read-only subcommands).

The shell is hostile ground. kubectl alone can read files (``create configmap
--from-file=/proc/self/environ``, ``-f``, ``-o go-template-file=``), open ports (``proxy``,
``port-forward``), write files (``cp``), start an editor (``edit``), run plugins (``kubectl-*``) and
point itself elsewhere (``--server``, ``--token``, ``--kubeconfig``, ``--context``, ``--as``); helm can
fetch any URL (``repo add``, ``install https://...``). Each of those is a named refusal here, and
whatever is not on the allow-list is refused too. The sandbox (:mod:`instances.shell.sandbox`) is the
second wall: even a command this module wrongly let through runs with nothing of the platform in
reach and no network but the relay to the proxy.

``exec`` is allowed only non-interactively (``kubectl exec pod -- ls``): the shell edits lines on the
server, so an interactive session (``-i``/``-t``), ``attach`` and ``debug`` are refused (use the
downloaded kubeconfig for those).
"""

import shlex
from dataclasses import dataclass, field

from instances.shell.rules import (
    ALLOWED_FLAGS,
    ALLOWED_SUBCOMMANDS,
    CREATE_DENIED,
    DENIED_FLAGS,
    DENIED_SUBCOMMANDS,
    FILE_OUTPUTS,
    HELM_ALLOWED,
    HELM_DENIED_FLAGS,
    HELM_GET,
    HELM_SHORT,
    MAX_VERBOSITY,
    SECOND_WORDS,
    SHELL_OPERATORS,
    SHORT,
    SHORT_BY_SUBCOMMAND,
    SHORT_WITH_VALUE,
)

PROGRAMS = ("kubectl", "helm")
MAX_LINE = 4096


class Refused(Exception):
    """A command line the shell will not run: ``code`` names the rule, ``message`` tells the user."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Command:
    program: str  # "kubectl" or "helm"
    args: list[str] = field(default_factory=list)  # after the program's name


def parse(line: str) -> list[str]:
    if len(line) > MAX_LINE:
        raise Refused("too_long", f"the line is longer than {MAX_LINE} characters")
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise Refused("syntax", f"cannot parse the line: {exc}") from None


def _operators(line: str) -> list[str]:
    """Unquoted shell punctuation (``;``, ``|``, ``>``, ``&``, ``(``) even when glued to a word."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return [token for token in lexer if token and set(token) <= set("();<>|&")]
    except ValueError:
        return []


def check(line: str, *, helm: bool = False) -> Command | None:
    """The command a line asks for, if the shell runs it; ``None`` for an empty line; raises
    :class:`Refused` (with the rule's name) otherwise."""
    words = parse(line)
    if not words:
        return None
    for word in [*words, *_operators(line)]:
        if word in SHELL_OPERATORS or word.startswith(("$(", "`")):
            raise Refused(
                "shell_syntax", "there is no shell here: pipes, redirections, ; and $( ) are not available"
            )
    program, args = words[0], words[1:]
    if program.startswith("kubectl-"):
        raise Refused("plugin", "kubectl plugins do not run in the web shell")
    if program == "kubectl":
        _check_kubectl(args)
        return Command("kubectl", args)
    if program == "helm":
        if not helm:
            raise Refused("not_allowed", "helm is not available on this platform")
        _check_helm(args)
        return Command("helm", args)
    raise Refused("not_allowed", f"{program}: only kubectl and helm run in this shell")


def _flags(args: list[str], short: dict, *, stop_at_dashdash: bool) -> list[tuple[str, str | None]]:
    """(long name, value or None) of each flag in ``args``; a short cluster (``-it``, ``-nfoo``) is read
    as pflag reads it. Words that are not flags are skipped (values of flags given apart included)."""
    found = []
    for arg in args:
        if arg == "--":
            if stop_at_dashdash:
                break
            continue
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            found.append((name, value if eq else None))
        elif arg.startswith("-") and len(arg) > 1:
            body = arg[1:]
            for i, letter in enumerate(body):
                name = short.get(letter)
                if name is None:
                    raise Refused("flag_not_allowed", f"-{letter}: this flag is not allowed in the web shell")
                if name in SHORT_WITH_VALUE and i + 1 < len(body):
                    found.append((name, body[i + 1 :].removeprefix("=")))
                    break
                found.append((name, None))
    return found


def _values_after(args: list[str], names: set[str]) -> list[str]:
    """Values of ``-o x`` / ``--output x`` given as a separate word."""
    values = []
    for arg, following in zip(args, [*args[1:], ""], strict=True):
        if arg in names:
            values.append(following)
    return values


def _first_word(args: list[str]) -> str:
    """The subcommand: the first word that is not a flag nor a flag's separate value."""
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("--"):
            name = arg[2:].partition("=")[0]
            skip = "=" not in arg and name in {
                "namespace",
                "context",
                "cluster",
                "user",
                "server",
                "token",
                "kubeconfig",
                "as",
                "request-timeout",
                "v",
                "cache-dir",
            }
            continue
        if arg.startswith("-") and len(arg) > 1:
            skip = len(arg) == 2 and SHORT.get(arg[1]) in SHORT_WITH_VALUE
            continue
        return arg
    return ""


def _check_kubectl(args: list[str]) -> None:
    sub = _first_word(args)
    short = SHORT | SHORT_BY_SUBCOMMAND.get(sub, {})
    flags = _flags(args, short, stop_at_dashdash=sub in ("exec", "run"))
    if sub in DENIED_SUBCOMMANDS:  # the named escapes first: the command, then its flags anywhere
        code, message = DENIED_SUBCOMMANDS[sub]
        raise Refused(code, message)
    for name, _ in flags:
        if name in DENIED_FLAGS:
            code, message = DENIED_FLAGS[name]
            raise Refused(code, f"--{name}: {message}")
    if not sub:
        if any(name == "help" for name, _ in flags) or not args:
            return
        raise Refused("not_allowed", "which kubectl command? (kubectl help lists them)")
    if sub not in ALLOWED_SUBCOMMANDS:
        raise Refused(
            "plugin",
            f"kubectl {sub}: not a command the web shell runs (kubectl plugins do not run here either)",
        )
    rest = args[args.index(sub) + 1 :]
    second = _first_word(rest)
    if sub == "create" and second in CREATE_DENIED:
        code, message = CREATE_DENIED[second]
        raise Refused(code, message)
    if sub in SECOND_WORDS and second and second not in SECOND_WORDS[sub] and not second.startswith("-"):
        raise Refused("not_allowed", f"kubectl {sub} {second}: not available in the web shell")
    for name, value in flags:
        if name not in ALLOWED_FLAGS:
            raise Refused("flag_not_allowed", f"--{name}: this flag is not allowed in the web shell")
        if name == "v" and value is not None and (not value.isdigit() or int(value) > MAX_VERBOSITY):
            raise Refused("verbosity", f"-v above {MAX_VERBOSITY} would print request headers")
    outputs = [v for n, v in flags if n in ("output", "template") and v] + _values_after(
        args, {"-o", "--output", "--template"}
    )
    for value in outputs:
        if value.startswith(FILE_OUTPUTS) or (value.startswith("@")):
            raise Refused(
                "local_file", f"-o {value.split('=')[0]}: kubectl reads no local files in the web shell"
            )
    verbosity = _values_after(args, {"-v", "--v"})
    for value in verbosity:
        if not value.isdigit() or int(value) > MAX_VERBOSITY:
            raise Refused("verbosity", f"-v above {MAX_VERBOSITY} would print request headers")


def _check_helm(args: list[str]) -> None:
    sub = _first_word(args)
    flags = _flags(args, HELM_SHORT, stop_at_dashdash=False)
    for name, _ in flags:
        if name in HELM_DENIED_FLAGS:
            code, message = HELM_DENIED_FLAGS[name]
            raise Refused(code, f"--{name}: {message}")
    if sub == "repo":
        raise Refused("helm_repo", "helm repo fetches from any URL: not in the web shell")
    if sub in (
        "install",
        "upgrade",
        "template",
        "pull",
        "fetch",
        "show",
        "inspect",
        "push",
        "dependency",
        "dep",
    ):
        where = next((a for a in args if "://" in a), None)
        if where:
            raise Refused("helm_url", f"helm {sub} {where}: helm fetches nothing from a URL in the web shell")
        raise Refused(
            "helm_write", f"helm {sub}: the web shell's helm is read-only (list, status, get, history)"
        )
    if sub in ("uninstall", "delete", "rollback", "test", "create", "package", "lint", "verify"):
        raise Refused(
            "helm_write", f"helm {sub}: the web shell's helm is read-only (list, status, get, history)"
        )
    if sub in ("plugin", "registry", "env", "completion", "search"):
        raise Refused(
            "helm_" + sub, f"helm {sub}: not in the web shell (read-only: list, status, get, history)"
        )
    if sub and sub not in HELM_ALLOWED:
        raise Refused(
            "plugin", f"helm {sub}: not a command the web shell runs (helm plugins do not run here)"
        )
    if sub == "get":
        second = _first_word(args[args.index(sub) + 1 :])
        if second and second not in HELM_GET:
            raise Refused("not_allowed", f"helm get {second}: not available in the web shell")
    for name, _ in flags:
        if name not in ALLOWED_FLAGS:
            raise Refused("flag_not_allowed", f"--{name}: this flag is not allowed in the web shell")
