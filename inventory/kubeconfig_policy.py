"""What a cluster kubeconfig may carry: credentials and addresses only, nothing that reaches the
platform's own host.

A kubeconfig is a program for the Kubernetes client as much as a credential: ``exec`` and
``auth-provider`` run commands or fetch tokens on the platform's host, file paths
(``tokenFile``, ``client-certificate``, ``client-key``, ``certificate-authority``) read its files,
``proxy-url`` sends the connection elsewhere and ``insecure-skip-tls-verify`` lets anyone answer. So
a registered kubeconfig may hold only embedded data (the ``-data`` variants, a token, a user name and
password) and ``tls-server-name``; only its current context is kept (the other contexts, clusters and
users are stripped before it is stored, so nothing unchecked is kept); its server address goes
through the outbound-address policy (:mod:`paas.outbound`). The same rules are checked again each
time the platform connects (``inventory.kube.api_client``), for kubeconfigs stored before them.

This module only reads parsed kubeconfigs (``inventory.kube.parse_kubeconfig``); it imports no client.
"""

import yaml

from paas import outbound

SERVER_PURPOSE = "cluster server"

USER_REFUSED = {
    "exec": "exec credentials (a command run on the platform's host)",
    "auth-provider": "auth-provider credentials (plugins run on the platform's host)",
    "tokenFile": "a token file path (use token)",
    "client-certificate": "a client certificate file path (use client-certificate-data)",
    "client-key": "a client key file path (use client-key-data)",
}
CLUSTER_REFUSED = {
    "certificate-authority": "a CA file path (use certificate-authority-data)",
    "proxy-url": "a proxy-url",
}


class KubeconfigRefused(ValueError):
    """The kubeconfig carries something the platform never uses (the message says what)."""


def _entries(data: dict, kind: str, key: str) -> dict[str, dict]:
    return {e.get("name"): e.get(key) or {} for e in data.get(kind) or [] if isinstance(e, dict)}


def current_entries(data: dict) -> tuple[str, dict, str, dict, str, dict]:
    """(context name, context, cluster name, cluster, user name, user) of the current context."""
    context_name = data["current-context"]
    context = _entries(data, "contexts", "context")[context_name]
    cluster_name, user_name = context.get("cluster"), context.get("user")
    cluster = _entries(data, "clusters", "cluster")[cluster_name]
    user = _entries(data, "users", "user")[user_name]
    return context_name, context, cluster_name, cluster, user_name, user


def refusals(data: dict) -> list[str]:
    """What the current context carries that is refused (empty when nothing is)."""
    _, _, cluster_name, cluster, user_name, user = current_entries(data)
    found = []
    if not isinstance(user, dict) or not isinstance(cluster, dict):
        return ["a cluster or user entry that is not a mapping"]
    for key, what in USER_REFUSED.items():
        if key in user:
            found.append(f"user {user_name!r} has {what}")
    for key, what in CLUSTER_REFUSED.items():
        if key in cluster:
            found.append(f"cluster {cluster_name!r} has {what}")
    if cluster.get("insecure-skip-tls-verify") not in (None, False):
        found.append(f"cluster {cluster_name!r} turns off TLS verification (insecure-skip-tls-verify)")
    return found


def current_only(data: dict) -> dict:
    """The kubeconfig reduced to its current context, cluster and user, after checking them.

    Raises :class:`KubeconfigRefused` naming everything refused.
    """
    found = refusals(data)
    if found:
        raise KubeconfigRefused("The kubeconfig may not carry " + "; ".join(found) + ".")
    context_name, context, cluster_name, cluster, user_name, user = current_entries(data)
    return {
        "apiVersion": data.get("apiVersion", "v1"),
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": context_name, "context": context}],
        "current-context": context_name,
    }


def server(data: dict) -> str:
    return str(current_entries(data)[3].get("server", ""))


def vetted(text: str, data: dict, *, field: str = "kubeconfig") -> str:
    """The kubeconfig text to store: checked, its server through the outbound policy, unused entries
    stripped (the text is kept as given when it holds nothing else).

    Raises :class:`KubeconfigRefused` or :class:`paas.outbound.OutboundRefused` (with ``field``).
    """
    reduced = current_only(data)
    outbound.check_url(server(reduced), purpose=SERVER_PURPOSE, field=field, schemes=("https",))
    if all(len(data.get(kind) or []) == 1 for kind in ("clusters", "users", "contexts")):
        return text
    return yaml.safe_dump(reduced, sort_keys=False)


def connect_refusal(data: dict) -> str | None:
    """Why the platform may not connect with this (parsed) kubeconfig now, or None.

    The credential rules, then the server's addresses resolved now under the outbound policy.
    """
    try:
        current_only(data)
    except KubeconfigRefused as exc:
        return str(exc)
    try:
        outbound.check_url(server(data), purpose=SERVER_PURPOSE, schemes=("https",))
    except outbound.OutboundRefused as exc:
        return exc.message
    return None
