from django.core.management.base import BaseCommand, CommandError

from catalog import system
from paas.context import Client, client_context
from paas.errors import ApplicationError
from tenancy.models import User


class Command(BaseCommand):
    help = "Load the system catalog shipped with the platform (idempotent), as an operator."

    def add_arguments(self, parser):
        parser.add_argument("--operator", help="username of the operator to act as (default: the first one)")

    def handle(self, *args, operator=None, **options):
        users = User.objects.filter(is_superuser=True, is_active=True).order_by("pk")
        actor = users.filter(username=operator).first() if operator else users.first()
        if actor is None:
            raise CommandError("No active operator to act as; create one first.")
        with client_context(client=Client.CLI):
            try:
                lines = system.load(actor=actor)
            except ApplicationError as exc:
                raise CommandError(f"{exc.message} {exc.fields}") from exc
        for line in lines or ["The system catalog is loaded already."]:
            self.stdout.write(line)
