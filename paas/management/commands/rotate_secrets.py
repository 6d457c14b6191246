from django.core.management.base import BaseCommand

from paas.context import Client, client_context
from paas.services import secrets_rotate


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first key of PAAS_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        with client_context(client=Client.CLI):
            counts = secrets_rotate()
        for name, count in sorted(counts.items()):
            self.stdout.write(f"{name}: {count} re-encrypted")
        self.stdout.write(
            self.style.SUCCESS("Done. The old keys may be removed from PAAS_ENCRYPTION_KEYS now.")
        )
