from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from paas.context import Client, client_context


class Command(BaseCommand):
    help = "Load the demo data (idempotent): runs each step of settings.DEMO_SEEDERS in order."

    def handle(self, *args, **options):
        with client_context(client=Client.CLI):
            for path in settings.DEMO_SEEDERS:
                for line in import_string(path)() or []:
                    self.stdout.write(line)
