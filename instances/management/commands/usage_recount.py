"""``manage.py usage_recount [--fix]``: compare the usage counters and the clusters' capacity
reservations with a re-sum of the instances; with ``--fix`` rebuild them (audited as a platform event)."""

from django.core.management.base import BaseCommand, CommandError

from instances.counters import counters_check


class Command(BaseCommand):
    help = "Report drift of the usage counters and capacity reservations; --fix rebuilds them (audited)."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Rebuild the counters from the instances.")

    def handle(self, *args, fix: bool = False, **options):
        lines = counters_check(fix=fix)
        for line in lines:
            self.stdout.write(line)
        if not lines:
            self.stdout.write("No drift: the usage counters and capacity reservations match the instances.")
        elif fix:
            self.stdout.write(f"Repaired {len(lines)} drifting rows (audited as usage_counters.recount).")
        else:
            raise CommandError(f"{len(lines)} drifting rows; run with --fix to rebuild them.")
