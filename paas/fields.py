from django.db import models

from paas import secrets


class EncryptedTextField(models.TextField):
    """Text stored encrypted (Fernet); read back as a :class:`paas.secrets.Secret`.

    Assign a ``str`` (or a ``Secret``) to set it; empty means "no secret". Not editable in forms:
    services set it from write-only inputs.
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
        return secrets.Secret(secrets.decrypt(value))

    def to_python(self, value):
        if isinstance(value, secrets.Secret):
            return value
        return secrets.Secret(value or "")

    def get_prep_value(self, value):
        if isinstance(value, secrets.Secret):
            value = value.reveal()
        if not value:
            return ""
        return secrets.encrypt(value)

    def value_to_string(self, obj):
        return secrets.MASK  # serialisation (dumpdata) never writes the clear value
