from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from paas.audit import audit_verify
from paas.checkpoints import CheckpointError, checkpoint_all


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chains and compare each chain's head with its signed checkpoint "
        "(PAAS_AUDIT_CHECKPOINT_DIR); report the first broken link of each chain."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoint",
            action="store_true",
            help="After a clean verification, checkpoint every chain's head (anchors chains written "
            "before checkpoints existed).",
        )

    def handle(self, *args, **options):
        result = audit_verify()
        if result.store_error:
            self.stderr.write(f"CHECKPOINTS UNAVAILABLE: {result.store_error}")
        for chain, count in sorted(result.pending.items()):
            self.stdout.write(
                f"note: chain {chain} has {count} event(s) pending sealing (committed, not chained yet; "
                f"the oldest from {result.oldest_pending:%Y-%m-%d %H:%M:%S %Z}: the 'audit seal' schedule "
                "chains them)"
            )
        for chain in result.unanchored:
            self.stdout.write(f"note: chain {chain} has no checkpoint yet (run with --checkpoint to anchor)")
        if not result.ok:
            for link in result.broken:
                self.stderr.write(f"BROKEN: {link}")
            raise CommandError(
                f"The audit trail is broken in {len({b.chain for b in result.broken})} chain(s)."
            )
        if result.store_error:
            raise CommandError("The chains verify, but their checkpoints could not be checked.")
        self.stdout.write(
            self.style.SUCCESS(
                f"OK: {result.events} events in {result.chains} chains verified; "
                f"{result.checkpoints} chain heads match their signed checkpoints "
                f"in {settings.PAAS_AUDIT_CHECKPOINT_DIR}."
            )
        )
        if options["checkpoint"]:
            try:
                written = checkpoint_all()
            except CheckpointError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"Checkpointed {len(written)} chain heads.")
