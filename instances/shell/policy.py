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


# --- refusals with a name: the escapes ------------------------------------------------------------------

_POINT_ELSEWHERE = "the shell is already configured for this instance; it cannot be pointed elsewhere"
DENIED_FLAGS = {
    # where kubectl connects and as whom
    "server": ("server", _POINT_ELSEWHERE),
    "token": ("token", _POINT_ELSEWHERE),
    "kubeconfig": ("kubeconfig", _POINT_ELSEWHERE),
    "context": ("context", _POINT_ELSEWHERE),
    "cluster": ("context", _POINT_ELSEWHERE),
    "user": ("context", _POINT_ELSEWHERE),
    "username": ("token", _POINT_ELSEWHERE),
    "password": ("token", _POINT_ELSEWHERE),
    "certificate-authority": ("tls", _POINT_ELSEWHERE),
    "client-certificate": ("tls", _POINT_ELSEWHERE),
    "client-key": ("tls", _POINT_ELSEWHERE),
    "insecure-skip-tls-verify": ("tls", _POINT_ELSEWHERE),
    "tls-server-name": ("tls", _POINT_ELSEWHERE),
    "as": ("impersonation", "impersonation is not allowed: you act as yourself in this instance"),
    "as-group": ("impersonation", "impersonation is not allowed: you act as yourself in this instance"),
    "as-uid": ("impersonation", "impersonation is not allowed: you act as yourself in this instance"),
    "kuberc": ("local_file", "kubectl reads no local files in the web shell"),
    # local files read or written
    "filename": (
        "local_file",
        "kubectl reads no local files in the web shell (-f): use the downloaded kubeconfig",
    ),
    "kustomize": (
        "local_file",
        "kubectl reads no local files in the web shell (-k): use the downloaded kubeconfig",
    ),
    "from-file": (
        "local_file",
        "kubectl reads no local files in the web shell (--from-file): use --from-literal",
    ),
    "from-env-file": (
        "local_file",
        "kubectl reads no local files in the web shell (--from-env-file): use --from-literal",
    ),
    "env-file": ("local_file", "kubectl reads no local files in the web shell (--env-file)"),
    "cert": ("local_file", "kubectl reads no local files in the web shell (--cert)"),
    "key": ("local_file", "kubectl reads no local files in the web shell (--key)"),
    "cache-dir": ("local_file", "kubectl writes no files outside its cache in the web shell"),
    "log-file": ("local_file", "kubectl writes no files in the web shell"),
    "log-dir": ("local_file", "kubectl writes no files in the web shell"),
    "profile": ("local_file", "kubectl writes no files in the web shell"),
    "profile-output": ("local_file", "kubectl writes no files in the web shell"),
    "output-directory": ("local_file", "kubectl writes no files in the web shell"),
    # interactive
    "stdin": (
        "interactive",
        "interactive sessions (-i, -t) are not available in the web shell: run a command "
        "(kubectl exec POD -- CMD) or use the downloaded kubeconfig",
    ),
    "tty": (
        "interactive",
        "interactive sessions (-i, -t) are not available in the web shell: run a command "
        "(kubectl exec POD -- CMD) or use the downloaded kubeconfig",
    ),
    "attach": ("interactive", "interactive sessions are not available in the web shell"),
    "rm": ("interactive", "--rm needs an interactive session, which the web shell does not have"),
    "editor": ("edit", "no editor runs in the web shell"),
}

DENIED_SUBCOMMANDS = {
    "proxy": (
        "proxy",
        "kubectl proxy opens a local port: not in the web shell (use the downloaded kubeconfig)",
    ),
    "port-forward": (
        "port_forward",
        "kubectl port-forward opens a local port: not in the web shell (use the downloaded kubeconfig)",
    ),
    "cp": ("cp", "kubectl cp reads and writes local files: not in the web shell"),
    "edit": ("edit", "kubectl edit starts an editor: not in the web shell (use kubectl patch or set)"),
    "plugin": ("plugin", "kubectl plugins do not run in the web shell"),
    "attach": (
        "interactive",
        "kubectl attach is interactive: not in the web shell (use the downloaded kubeconfig)",
    ),
    "debug": ("debug", "kubectl debug starts interactive (and node-level) containers: not in the web shell"),
    "config": (
        "config",
        "the shell is already configured for this instance; kubectl config is not available",
    ),
    "apply": (
        "local_file",
        "kubectl apply reads manifest files, which the web shell has none of: use the downloaded kubeconfig",
    ),
    "replace": ("local_file", "kubectl replace reads manifest files: use the downloaded kubeconfig"),
    "diff": ("local_file", "kubectl diff reads manifest files and runs a diff program: not in the web shell"),
    "kustomize": ("local_file", "kubectl kustomize reads local files: not in the web shell"),
    "convert": ("local_file", "kubectl convert reads local files: not in the web shell"),
    "completion": ("not_allowed", "completion scripts are of no use in the web shell"),
    "alpha": ("not_allowed", "alpha commands are not available in the web shell"),
    "certificate": ("not_allowed", "certificate requests are not handled in the web shell"),
    "drain": ("not_allowed", "node commands are not available in the web shell"),
}

# kubectl subcommands that run (their second word restricted where it matters).
ALLOWED_SUBCOMMANDS = {
    "get",
    "describe",
    "logs",
    "explain",
    "api-resources",
    "api-versions",
    "version",
    "top",
    "events",
    "auth",
    "create",
    "delete",
    "scale",
    "label",
    "annotate",
    "rollout",
    "run",
    "expose",
    "set",
    "patch",
    "autoscale",
    "wait",
    "exec",
    "cluster-info",
    "help",
}
SECOND_WORDS = {
    "auth": {"can-i", "whoami"},
    "rollout": {"history", "pause", "restart", "resume", "status", "undo"},
    "set": {"env", "image", "resources", "selector", "serviceaccount", "subject"},
    "top": {"pod", "pods", "po", "node", "nodes", "no"},
    "create": {
        "configmap",
        "cm",
        "secret",
        "deployment",
        "deploy",
        "job",
        "cronjob",
        "cj",
        "service",
        "svc",
        "serviceaccount",
        "sa",
        "role",
        "rolebinding",
        "quota",
        "resourcequota",
        "poddisruptionbudget",
        "pdb",
        "ingress",
        "ing",
        "priorityclass",
        "pc",
        "namespace",
        "ns",
        "clusterrole",
        "clusterrolebinding",
    },
}
CREATE_DENIED = {
    "token": (
        "token",
        "kubectl create token mints a cluster token that would bypass the platform: not allowed",
    ),
}

# Long flags kubectl runs with in the shell (anything else is refused as unknown).
ALLOWED_FLAGS = {
    "namespace",
    "all-namespaces",
    "output",
    "selector",
    "field-selector",
    "label-columns",
    "show-labels",
    "show-kind",
    "sort-by",
    "watch",
    "watch-only",
    "output-watch-events",
    "chunk-size",
    "no-headers",
    "ignore-not-found",
    "raw",
    "container",
    "follow",
    "previous",
    "since",
    "since-time",
    "tail",
    "timestamps",
    "prefix",
    "all-containers",
    "max-log-requests",
    "limit-bytes",
    "pod-running-timeout",
    "ignore-errors",
    "recursive",
    "api-version",
    "subresource",
    "replicas",
    "current-replicas",
    "resource-version",
    "timeout",
    "image",
    "port",
    "labels",
    "env",
    "restart",
    "command",
    "overrides",
    "dry-run",
    "from-literal",
    "type",
    "cascade",
    "grace-period",
    "force",
    "now",
    "wait",
    "all",
    "overwrite",
    "list",
    "local",
    "record",
    "save-config",
    "validate",
    "field-manager",
    "patch",
    "to-revision",
    "revision",
    "containers",
    "use-protocol-buffers",
    "quiet",
    "request-timeout",
    "warnings-as-errors",
    "show-managed-fields",
    "template",
    "allow-missing-template-keys",
    "show-events",
    "for",
    "types",
    "schedule",
    "from",
    "tcp",
    "target-port",
    "protocol",
    "name",
    "external-ip",
    "cluster-ip",
    "min",
    "max",
    "cpu-percent",
    "limits",
    "requests",
    "keys",
    "serviceaccount",
    "image-pull-policy",
    "expose",
    "annotations",
    "hard",
    "scopes",
    "verb",
    "resource",
    "resource-name",
    "role",
    "clusterrole",
    "group",
    "min-available",
    "max-unavailable",
    "rule",
    "class",
    "default-backend",
    "docker-server",
    "docker-username",
    "docker-password",
    "docker-email",
    "append-hash",
    "output-version",
    "v",
    "help",
    "match-server-version",
    "disable-compression",
    "filter",
    "history",
    "short",
    "date",
    "reverse",
    "offset",
    "deployed",
    "failed",
    "pending",
    "superseded",
    "uninstalled",
    "uninstalling",
    "time-format",
    "max-col-width",
    "show-resources",
    "show-desc",
    "hooks",
    "deletion-propagation",
    "privileged",
    "pod-template-hash",
    "kubelet-port",
}
# Single-letter flags: what they stand for (per subcommand where kubectl differs), and whether a value
# follows them (pflag reads ``-nfoo`` as ``-n foo``).
SHORT = {
    "n": "namespace",
    "o": "output",
    "l": "selector",
    "A": "all-namespaces",
    "w": "watch",
    "c": "container",
    "L": "label-columns",
    "e": "env",
    "h": "help",
    "q": "quiet",
    "i": "stdin",
    "t": "tty",
    "s": "server",
    "k": "kustomize",
    "f": "filename",
    "v": "v",
    "a": "all",
    "p": "patch",
    "r": "reverse",
    "m": "max",
    "d": "date",
}
SHORT_BY_SUBCOMMAND = {"logs": {"f": "follow", "p": "previous"}, "exec": {"c": "container"}}
SHORT_WITH_VALUE = {
    "namespace",
    "output",
    "selector",
    "container",
    "label-columns",
    "env",
    "server",
    "kustomize",
    "filename",
    "v",
    "patch",
    "max",
}
SHELL_OPERATORS = {
    "|",
    "||",
    "&",
    "&&",
    ";",
    ";;",
    ">",
    ">>",
    "<",
    "<<",
    "2>",
    "2>&1",
    "&>",
    "$(",
    "`",
    "(",
    ")",
    ">&",
    "<&",
    "|&",
}
FILE_OUTPUTS = ("go-template-file", "jsonpath-file", "template-file")
MAX_VERBOSITY = 6  # from 7 on, kubectl logs request headers

# helm: read-only subcommands only.
HELM_ALLOWED = {"list", "ls", "status", "get", "history", "hist", "version", "help"}
HELM_GET = {"all", "hooks", "manifest", "metadata", "notes", "values"}
HELM_DENIED_FLAGS = {
    name: ("helm_elsewhere", _POINT_ELSEWHERE)
    for name in (
        "kubeconfig",
        "kube-context",
        "kube-token",
        "kube-apiserver",
        "kube-as-user",
        "kube-as-group",
        "kube-ca-file",
        "kube-insecure-skip-tls-verify",
        "kube-tls-server-name",
        "registry-config",
        "repository-config",
        "repository-cache",
        "burst-limit",
        "qps",
        "content-cache",
    )
}
HELM_SHORT = {
    "n": "namespace",
    "o": "output",
    "a": "all",
    "A": "all-namespaces",
    "q": "short",
    "m": "max",
    "d": "date",
    "r": "reverse",
    "f": "filter",
    "h": "help",
}


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
