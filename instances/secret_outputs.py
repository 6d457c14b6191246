"""Reading a secret output (of a compute or service instance) from its Secret in the namespace, on
request: the value is never stored, and every refusal is a clean 409."""

from paas.errors import Conflict


def read_secret_output(*, cluster, namespace: str, name: str, reference: dict) -> str:
    """The value behind the secret output ``name`` (``reference``: the Secret's name and key)."""
    from inventory import kube

    try:
        value = kube.read_secret_key(
            cluster.kubeconfig.reveal(), namespace=namespace, name=reference["name"], key=reference["key"]
        )
    except kube.KubeUnreachable as exc:
        raise Conflict(f"The cluster cannot be reached now: {exc}") from exc
    if value is None:
        raise Conflict(f"The secret behind {name!r} does not exist (yet) in the instance's namespace.")
    return value
