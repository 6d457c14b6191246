from django.db import models

from paas import keyring, secrets


class _Token(str):
    """A value already encrypted (by ``pre_save``, under the row's org key): stored as it is."""


class EncryptedTextField(models.TextField):
    """Text stored encrypted; read back as a :class:`paas.secrets.Secret`.

    Encrypted under the data key of the row's organization when the model declares
    ``secret_org_field`` (see :mod:`paas.keyring`), else under the platform keys. Assign a ``str`` (or
    a ``Secret``) to set it; empty means "no secret". A value whose key was destroyed reads as an
    :class:`paas.secrets.UnreadableSecret` (revealing it raises ``keyring.SecretUnreadable``; saving
    the row keeps its token). Not editable in forms: services set it from write-only inputs.
    """

    description = "Encrypted text"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("editable", None)
        return name, path, args, kwargs

    def from_db_value(self, value, expression, connection):
        if not value:
            return secrets.Secret("")
        try:
            return secrets.Secret(keyring.decrypt(value))
        except keyring.SecretUnreadable as exc:
            return secrets.UnreadableSecret(value, exc.message)

    def to_python(self, value):
        if isinstance(value, secrets.Secret):
            return value
        return secrets.Secret(value or "")

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if isinstance(value, secrets.UnreadableSecret):
            return _Token(value.token)
        if isinstance(value, secrets.Secret):
            value = value.reveal()
        if not value:
            return ""
        return _Token(keyring.encrypt(value, org_id=keyring.org_id_of(model_instance)))

    def get_prep_value(self, value):
        if isinstance(value, _Token):
            return str(value)
        if isinstance(value, secrets.UnreadableSecret):
            return value.token
        if isinstance(value, secrets.Secret):
            value = value.reveal()
        if not value:
            return ""
        return secrets.encrypt(value)  # no row to say whose (QuerySet.update): the platform keys

    def value_to_string(self, obj):
        return secrets.MASK  # serialisation (dumpdata) never writes the clear value
