"""``manage.py billing_rollup``: roll up the hourly usage records now, or re-run a past period.

Without options it does what the schedule does (every settled hour not rolled up yet, then the current
hour so far). ``--start``/``--end`` (dates or date-times with an offset, UTC) re-run every hour of that
period, e.g. after an interval was corrected or a cost profile back-dated; re-running changes nothing
otherwise.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from billing import rollup
from billing.periods import parse_period
from billing.selectors import now_second
from paas.errors import ValidationFailed


class Command(BaseCommand):
    help = "Roll up hourly usage records (pending hours), or re-run a past period with --start/--end."
    requires_system_checks = []  # as the scheduled task: a worker's job, not a deployment check

    def add_arguments(self, parser):
        parser.add_argument("--start", help="Re-run from this date or date-time (UTC), e.g. 2026-11-01.")
        parser.add_argument("--end", help="Re-run until this date (inclusive) or date-time (exclusive).")

    def handle(self, *args, start=None, end=None, **options):
        if start is None and end is None:
            summary = rollup.rollup_pending()
        else:
            if start is None:
                raise CommandError("--end needs --start.")
            try:
                begin, until = parse_period(start, end, now=now_second())
            except ValidationFailed as exc:
                raise CommandError(
                    "; ".join(f"--{name}: {' '.join(messages)}" for name, messages in exc.fields.items())
                ) from exc
            summary = rollup.rollup_range(begin, until)
        if summary["busy"]:
            raise CommandError("Another usage roll-up is running; try again once it has finished.")
        self.stdout.write(json.dumps(summary))
