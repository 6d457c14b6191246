"""Secrets at rest: MultiFernet with rotatable keys, and a value type that never renders.

Keys come from ``settings.PAAS_ENCRYPTION_KEYS`` (newest first). Encryption uses the first key;
decryption tries each, so a new key can be put in front and ``manage.py rotate_secrets`` re-encrypts
every stored secret with it before the old key is removed.

A decrypted secret is a :class:`Secret`: its ``str``/``repr`` are a mask, so a secret that reaches a
template, a log line, an error page or a serializer by mistake shows ``••••••`` and not its value.
Only code that needs the clear value calls ``reveal()``.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MASK = "••••••"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        raise TypeError("Secrets are not serialised (pickled); pass ids to tasks instead.")


class UnreadableSecret(Secret):
    """A stored secret whose organization's data key was destroyed (``paas.keyring``): it is set (so
    pages say a secret exists) but its value is gone; ``reveal()`` says so with a clear error."""

    __slots__ = ("message", "token")

    def __init__(self, token: str, message: str):
        super().__init__("")
        self.token = token
        self.message = message

    def reveal(self) -> str:
        from paas.keyring import SecretUnreadable

        raise SecretUnreadable(self.message)

    def __bool__(self) -> bool:
        return True

    def __str__(self) -> str:
        return f"{MASK} (unreadable: the organization's keys were destroyed)"

    def __repr__(self) -> str:
        return "UnreadableSecret()"

    def __eq__(self, other) -> bool:
        return isinstance(other, UnreadableSecret) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)


@lru_cache(maxsize=1)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("PAAS_ENCRYPTION_KEYS is empty: secrets cannot be encrypted.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"PAAS_ENCRYPTION_KEYS holds an invalid Fernet key: {exc}") from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.PAAS_ENCRYPTION_KEYS))


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in PAAS_ENCRYPTION_KEYS."
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored token with the newest key."""
    return fernet().rotate(token.encode()).decode()


def new_key() -> str:
    return Fernet.generate_key().decode()
