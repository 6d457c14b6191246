"""Secret-typed template inputs at rest: encrypted, write-only, revealed only to the deployer.

A profile's ``input_values`` (and the launch snapshot copied from it) keep the value of an input
declared ``type: secret`` as ``{"encrypted": "<token>"}``, never as text: under the data key of the org
the value belongs to (``paas.keyring``; the platform keys for a system profile or a warm pool), which is
why :func:`seal` takes ``org_id``.
Everything that shows input values (API, studio, audit details) shows :data:`paas.secrets.MASK`
instead; a client that sends the mask back (a GET edited and PUT again) keeps the stored secret.
Only the deployer calls :func:`unseal`, just before rendering.
"""

from collections.abc import Mapping
from typing import Any

from paas import keyring, secrets
from paas.errors import ValidationFailed

SEALED_KEY = keyring.SEALED_KEY


def is_sealed(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {SEALED_KEY} and isinstance(value[SEALED_KEY], str)


def secret_names(declared_inputs: Any) -> set[str]:
    return {
        entry["name"]
        for entry in declared_inputs or []
        if isinstance(entry, Mapping) and entry.get("type") == "secret" and isinstance(entry.get("name"), str)
    }


def seal(declared_inputs: Any, values: Any, *, org_id: int | None, previous: Any = None) -> Any:
    """``values`` with every secret-typed input encrypted. The mask (or the stored sealed value itself)
    keeps the previous secret; a sealed value that is not this profile's own is refused (a ciphertext
    from elsewhere must not become a way to read another secret)."""
    if not isinstance(values, Mapping):
        return values  # the profile's own validation reports the shape
    before = previous if isinstance(previous, Mapping) else {}
    names = secret_names(declared_inputs)
    sealed, errors = {}, {}
    for name, value in values.items():
        if name in names and value == secrets.MASK:
            if not is_sealed(before.get(name)):
                errors[name] = "Give the secret's value (the mask stands for a stored secret; none is)."
                continue
            sealed[name] = before[name]
        elif is_sealed(value):
            if value != before.get(name):
                errors[name] = "An encrypted value cannot be given; give the secret's value."
                continue
            sealed[name] = value
        elif name in names and isinstance(value, str) and value != "":
            sealed[name] = {SEALED_KEY: keyring.encrypt(value, org_id=org_id)}
        else:
            sealed[name] = value
    if errors:
        raise ValidationFailed(
            "Invalid input values.", fields={"input_values": [f"{k}: {v}" for k, v in sorted(errors.items())]}
        )
    return sealed


def masked(values: Any) -> Any:
    """``values`` for display: every sealed secret shown as the mask."""
    if not isinstance(values, Mapping):
        return values
    return {name: secrets.MASK if is_sealed(value) else value for name, value in values.items()}


def unseal(values: Any) -> dict:
    """The clear values, for the deployer only (never stored, logged or returned). A value whose org
    keys were destroyed raises ``keyring.SecretUnreadable`` (a clear message, not a 500)."""
    if not isinstance(values, Mapping):
        return {}
    return {
        name: keyring.decrypt(value[SEALED_KEY]) if is_sealed(value) else value
        for name, value in values.items()
    }
