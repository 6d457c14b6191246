from django.core.management.base import BaseCommand, CommandError

from paas.audit import audit_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chains; report the first broken link of each chain."

    def handle(self, *args, **options):
        result = audit_verify()
        if result.ok:
            self.stdout.write(
                self.style.SUCCESS(f"OK: {result.events} events in {result.chains} chains verified.")
            )
            return
        for link in result.broken:
            self.stderr.write(f"BROKEN: {link}")
        raise CommandError(f"The audit trail is broken in {len(result.broken)} chain(s).")
