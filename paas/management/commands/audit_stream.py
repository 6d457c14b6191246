import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Stream the audit chains to their sinks continuously (paas/audit_stream.py): a pass every "
        "PAAS_AUDIT_STREAM_POLL_SECONDS until SIGTERM or Ctrl-C. manage.py serve runs it beside the "
        "worker; the every-minute 'audit stream' schedule is the safety net when it is not running. Two "
        "of them at once are harmless: each sink is sent by one holder of its advisory lock."
    )

    def handle(self, *args, **options):
        from paas.audit_stream import deliver_due

        stopping = []

        def stop(signum, frame):
            stopping.append(signum)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)
        poll = float(settings.PAAS_AUDIT_STREAM_POLL_SECONDS)
        while not stopping:
            deliver_due()
            ends = time.monotonic() + poll
            while not stopping and time.monotonic() < ends:
                time.sleep(min(0.2, poll))
