"""Secrets at rest: encrypted, masked when rendered, rotatable to a new key."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from inventory import services
from inventory.models import Datacenter
from paas import secrets
from paas.models import AuditEvent


def _raw(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM inventory_datacenter WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_secret_value_type_never_renders():
    secret = secrets.Secret("hunter2")
    assert str(secret) == repr(secret).removeprefix("Secret(").removesuffix(")") == "••••••"
    assert f"{secret}" == "••••••" and secret.reveal() == "hunter2"
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_rotation_to_a_new_key(world, settings):
    old_key, new_key = settings.PAAS_ENCRYPTION_KEYS
    settings.PAAS_ENCRYPTION_KEYS = [old_key]
    dc = services.datacenter_create(
        actor=world.operator,
        name="dc-r",
        kind="data_center",
        infrastructure_type="bare_metal",
        credentials="ssh-rsa OLDSECRET",
    )
    assert "OLDSECRET" not in _raw(dc.pk)
    # A new key goes first; the old one stays until the rotation is done.
    settings.PAAS_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_secrets")
    settings.PAAS_ENCRYPTION_KEYS = [new_key]  # the old key is gone: everything still reads
    assert Datacenter.objects.get(pk=dc.pk).credentials.reveal() == "ssh-rsa OLDSECRET"
    assert AuditEvent.objects.filter(action="secrets.rotate").exists()
    settings.PAAS_ENCRYPTION_KEYS = [old_key]  # without the new key nothing can be read
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        Datacenter.objects.get(pk=dc.pk)
