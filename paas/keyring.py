"""Per-organization encryption keys: envelope encryption of every secret an organization stores.

Each organization gets a random data key (a Fernet key, :class:`paas.keyring_models.OrgDataKey`) on
its first secret, created under a lock on the org's row (a partial unique constraint also allows one
active key per org). The data key is stored only *wrapped*: encrypted under the platform's keys
(``settings.PAAS_ENCRYPTION_KEYS`` through :mod:`paas.secrets`). Unwrapped keys live in this
process's memory only (:data:`CACHE_SECONDS`, then their state is read again, so a key destroyed in
another process stops decrypting here within that time); they are never logged or serialised.

Token format: ``ok1:<data key id>:<Fernet token>`` for a value under an org's data key. Any other
token is the platform keys' (every value stored before per-org keys, and the secrets of rows in no
org): it keeps decrypting as before.

How a model says whose secret it stores (so that parts adding secrets just declare it):

- ``secret_org_field = "org"`` on the model: the path (Django's ``__`` lookups, e.g.
  ``"instance__org"``) from a row to its organization. A row whose path ends in no org (a system
  catalog item, ``org`` NULL) uses the platform keys. Optionally a method ``secret_org_id(self)``
  returns the org's id when a path is not enough (the path is still needed to find an org's rows).
  (ruff's S105 takes the attribute's name for a password: write ``# noqa: S105`` after it.)
- Every :class:`paas.fields.EncryptedTextField` of such a model is encrypted under that org's key
  when the row is saved (``QuerySet.update`` has no row, so it falls back to the platform keys; the
  next rotation of the org moves such values under its key).
- ``sealed_json_fields = ("input_values",)``: JSON fields holding sealed values
  (``{"encrypted": "<token>"}``, see ``catalog/secret_inputs.py``) at any depth; rotations re-encrypt
  them too.

A model without ``secret_org_field`` keeps its secrets under the platform keys: the inventory
(datacenter and storage credentials, cluster kubeconfigs, dedicated clusters included: the clusters
are the provider's, and shredding a tenant must not cut the provider off its own hardware).

Rotation of one org (:mod:`paas.org_keys`) re-encrypts only that org's rows under a new data key
and destroys the old one; destroying an org's keys (crypto-shredding) wipes every wrapped key of the
org: its ciphertexts stay but can never be read again, and reading one gives
:class:`SecretUnreadable` (a clear 409, never a 500). Platform-key rotation
(``manage.py rotate_secrets``) re-wraps every data key and re-encrypts the platform-key tokens.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.db import connection, transaction
from django.db.models import BooleanField, Count, F, Func, Model, Q, Value
from django.utils import timezone

from paas import authz, secrets
from paas.errors import Conflict
from paas.keyring_models import KeyState, OrgDataKey

PREFIX = "ok1:"
SEALED_KEY = "encrypted"
CACHE_SECONDS = 30.0
UNREADABLE_MESSAGE = (
    "This secret can no longer be read: its organization's encryption keys were destroyed. Set it again."
)

# key id -> (Fernet, when it was read): the unwrapped data keys of this process, nowhere else.
_cache: dict[int, tuple[Fernet, float]] = {}


class SecretUnreadable(Conflict):
    """A stored secret whose data key was destroyed (crypto-shredded)."""

    code = "secret_unreadable"

    def __init__(self, message: str = UNREADABLE_MESSAGE):
        super().__init__(message)


def forget(key_ids=None) -> None:
    """Drop unwrapped keys from this process's memory (all when ``key_ids`` is None)."""
    if key_ids is None:
        _cache.clear()
    for key_id in key_ids or ():
        _cache.pop(key_id, None)


def key_id_of(token: str) -> int | None:
    """The data key a token names (None for a platform-key token)."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        return None
    key_id, _, _rest = token[len(PREFIX) :].partition(":")
    return int(key_id) if key_id.isdigit() else None


def _fernet_of(key_id: int) -> Fernet:
    hit = _cache.get(key_id)
    now = time.monotonic()
    if hit is not None and now - hit[1] < CACHE_SECONDS:
        return hit[0]
    row = OrgDataKey.objects.filter(pk=key_id).values_list("state", "wrapped_key").first()
    if row is None or row[0] == KeyState.DESTROYED or not row[1]:
        _cache.pop(key_id, None)
        raise SecretUnreadable()
    fernet = Fernet(secrets.decrypt(row[1]).encode())
    _cache[key_id] = (fernet, now)
    return fernet


def _lock_org(org_id: int) -> None:
    apps.get_model(authz.TENANT_MODEL).objects.select_for_update().filter(pk=org_id).exists()


def _create_key(org_id: int) -> OrgDataKey:
    """A new active key for an org whose row the caller has locked."""
    last = OrgDataKey.objects.filter(org_id=org_id).order_by("-version").values_list("version", flat=True)
    version = (last.first() or 0) + 1
    return OrgDataKey.objects.create(
        org_id=org_id, version=version, wrapped_key=secrets.encrypt(Fernet.generate_key().decode())
    )


def _active_key_id(org_id: int) -> int:
    """The org's active data key, created on its first secret. The row is read ``FOR SHARE``: a rotation
    (which retires it) waits for this transaction, and then finds what it wrote."""
    sql = f"SELECT id FROM {OrgDataKey._meta.db_table} WHERE org_id = %s AND state = %s FOR SHARE"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [org_id, KeyState.ACTIVE])
        row = cursor.fetchone()
    if row is not None:
        return row[0]
    with transaction.atomic():
        _lock_org(org_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, [org_id, KeyState.ACTIVE])
            row = cursor.fetchone()
        return row[0] if row is not None else _create_key(org_id).pk


def encrypt(value: str, *, org_id: int | None) -> str:
    """``value`` encrypted under the org's data key (the platform keys for no org)."""
    if org_id is None:
        return secrets.encrypt(value)
    return _encrypt_with(_active_key_id(org_id), value)


def _encrypt_with(key_id: int, value: str) -> str:
    return f"{PREFIX}{key_id}:{_fernet_of(key_id).encrypt(value.encode()).decode()}"


def decrypt(token: str) -> str:
    """The clear value of a stored token; :class:`SecretUnreadable` when its data key was destroyed."""
    key_id = key_id_of(token)
    if key_id is None:
        return secrets.decrypt(token)
    fernet = _fernet_of(key_id)
    try:
        return fernet.decrypt(token.split(":", 2)[2].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("A stored secret does not decrypt with its organization's data key.") from None


def org_id_of(obj: Model) -> int | None:
    """The id of the organization whose key encrypts ``obj``'s secrets (None: the platform keys)."""
    method = getattr(obj, "secret_org_id", None)
    if callable(method):
        return method()
    path = getattr(type(obj), "secret_org_field", None)
    if not path:
        return None
    *hops, last = path.split("__")
    for hop in hops:
        obj = getattr(obj, hop, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


# --- the secret-bearing models ----------------------------------------------------------------------
def secret_models() -> Iterator[tuple[type[Model], list[str], list[str]]]:
    """Every model storing secrets: (model, its encrypted columns, its sealed JSON fields)."""
    from paas.fields import EncryptedTextField

    for model in apps.get_models():
        columns = [f.column for f in model._meta.local_concrete_fields if isinstance(f, EncryptedTextField)]
        sealed = list(getattr(model, "sealed_json_fields", ()) or ())
        if columns or sealed:
            yield model, columns, sealed


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED_KEY} and isinstance(value[SEALED_KEY], str)


def _walk(value: Any, transform: Callable[[str], str | None]) -> tuple[Any, bool]:
    """``value`` with every sealed token transformed (None: kept); whether anything changed."""
    if is_sealed(value):
        new = transform(value[SEALED_KEY])
        return ({SEALED_KEY: new}, True) if new is not None else (value, False)
    if isinstance(value, dict):
        changed, out = False, {}
        for k, v in value.items():
            out[k], c = _walk(v, transform)
            changed |= c
        return (out, True) if changed else (value, False)
    if isinstance(value, list):
        pairs = [_walk(v, transform) for v in value]
        if any(c for _v, c in pairs):
            return [v for v, _c in pairs], True
    return value, False


def reencrypt(
    transform: Callable[[str], str | None], *, org_id: int | None = None, all_rows: bool = False
) -> dict[str, int]:
    """Apply ``transform`` (stored token -> new token, or None to keep it) to every stored secret of one
    org's rows (``org_id``), or of every row (``all_rows``). Works on the stored tokens, so clear values
    never sit in model objects. Returns the number of values changed per ``app.model.field``."""
    counts: dict[str, int] = {}
    quote = connection.ops.quote_name
    for model, columns, sealed in secret_models():
        path = getattr(model, "secret_org_field", None)
        if all_rows:
            rows = model._base_manager.all()
        elif path:
            rows = model._base_manager.filter(**{path: org_id})
        else:
            continue
        pks = list(rows.values_list("pk", flat=True))
        if not pks:
            continue
        table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
        with connection.cursor() as cursor:
            for column in columns:
                col = quote(column)
                cursor.execute(
                    f"SELECT {pk}, {col} FROM {table} WHERE {pk} = ANY(%s) AND {col} <> ''",  # noqa: S608
                    [pks],
                )
                changed = 0
                for row_pk, token in cursor.fetchall():
                    new = transform(token)
                    if new is not None and new != token:
                        cursor.execute(f"UPDATE {table} SET {col} = %s WHERE {pk} = %s", [new, row_pk])  # noqa: S608
                        changed += 1
                counts[f"{model._meta.label_lower}.{column}"] = changed
        for name in sealed:
            changed = 0
            for row_pk, value in model._base_manager.filter(pk__in=pks).values_list("pk", name):
                new, did = _walk(value, transform)
                if did:
                    model._base_manager.filter(pk=row_pk).update(**{name: new})
                    changed += 1
            counts[f"{model._meta.label_lower}.{name}"] = changed
    return counts


def holds_sealed(field: str) -> Func:
    """True where the JSON column ``field`` holds a sealed value, ``{"encrypted": token}`` at any depth:
    a JSON path over the document (about three times faster than matching its text, which casts every
    document to text first). The big tables (instances, their runs, services) index their rows that
    hold one with this very expression as the partial index's condition, so that the key pages' counts
    read those few rows instead of testing every document (tests/integration/test_org_keys.py)."""
    return Func(
        F(field), Value(f"lax $.**.{SEALED_KEY}"), function="jsonb_path_exists", output_field=BooleanField()
    )


def secrets_count_by_org(*, org_ids: list[int] | None = None) -> dict[int, int]:
    """How many rows hold a secret, per org (for the key pages), of ``org_ids`` only when given (a page
    of orgs: their rows are read by the org column's index, not every row of every table). A constant
    number of queries."""
    from paas.fields import EncryptedTextField

    totals: dict[int, int] = {}
    for model, _columns, sealed in secret_models():
        path = getattr(model, "secret_org_field", None)
        if not path:
            continue
        holds = Q()
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                holds |= ~Q(**{field.name: ""})
        annotations = {f"_s_{name}": holds_sealed(name) for name in sealed}
        for name in sealed:
            holds |= Q(**{f"_s_{name}": True})
        rows = (
            model._base_manager.annotate(**annotations)
            .filter(holds)
            .exclude(**{path: None})
            .filter(**({f"{path}__in": org_ids} if org_ids is not None else {}))
            .values(path)
            .annotate(n=Count("pk"))
        )
        for row in rows:
            totals[row[path]] = totals.get(row[path], 0) + row["n"]
    return totals


# --- rotations --------------------------------------------------------------------------------------
def rotate_org(org_id: int) -> tuple[OrgDataKey, dict[str, int], int]:
    """A new data key for the org, every one of its secrets re-encrypted under it, the old keys
    destroyed. Inside the caller's transaction; the org's row is locked. Returns the new key, the counts
    and how many values could not be read (their key was destroyed before)."""
    _lock_org(org_id)
    now = timezone.now()
    old = list(
        OrgDataKey.objects.filter(org_id=org_id)
        .exclude(state=KeyState.DESTROYED)
        .values_list("pk", flat=True)
    )
    OrgDataKey.objects.filter(org_id=org_id, state=KeyState.ACTIVE).update(
        state=KeyState.RETIRED, retired_at=now
    )
    key = _create_key(org_id)
    unreadable = 0

    def to_new_key(token: str) -> str | None:
        nonlocal unreadable
        if key_id_of(token) == key.pk:
            return None
        try:
            clear = decrypt(token)
        except SecretUnreadable:
            unreadable += 1
            return None
        return _encrypt_with(key.pk, clear)

    counts = reencrypt(to_new_key, org_id=org_id)
    _destroy(org_id, pks=old, now=now)
    return key, counts, unreadable


def shred_org(org_id: int) -> tuple[int, dict[str, int]]:
    """Crypto-shred an org: its platform-key tokens first moved under its data key (so nothing of the org
    stays readable), then every data key of the org destroyed. Returns how many keys and the counts."""
    _lock_org(org_id)
    key_id = _active_key_id(org_id)

    def platform_to_org(token: str) -> str | None:
        if key_id_of(token) is not None:
            return None
        return _encrypt_with(key_id, secrets.decrypt(token))

    counts = reencrypt(platform_to_org, org_id=org_id)
    pks = list(
        OrgDataKey.objects.filter(org_id=org_id)
        .exclude(state=KeyState.DESTROYED)
        .values_list("pk", flat=True)
    )
    _destroy(org_id, pks=pks, now=timezone.now())
    return len(pks), counts


def _destroy(org_id: int, *, pks: list[int], now) -> None:
    OrgDataKey.objects.filter(org_id=org_id, pk__in=pks).update(
        state=KeyState.DESTROYED, wrapped_key="", destroyed_at=now
    )
    forget(pks)
    transaction.on_commit(lambda: forget(pks))


def rotate_platform() -> dict[str, int]:
    """After a new platform key was put first: re-wrap every data key under it, and re-encrypt every
    platform-key token (org-key tokens stay: their data key was re-wrapped)."""

    def platform_token(token: str) -> str | None:
        return None if key_id_of(token) is not None else secrets.rotate(token)

    counts = reencrypt(platform_token, all_rows=True)
    rewrapped = 0
    for key in (
        OrgDataKey.objects.select_for_update().exclude(state=KeyState.DESTROYED).exclude(wrapped_key="")
    ):
        OrgDataKey.objects.filter(pk=key.pk).update(wrapped_key=secrets.rotate(key.wrapped_key))
        rewrapped += 1
    counts["paas.orgdatakey.wrapped_key"] = rewrapped
    return counts
