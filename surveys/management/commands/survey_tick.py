from django.core.management.base import BaseCommand

from surveys import services


class Command(BaseCommand):
    help = (
        "Run one scheduling tick by hand, as Celery beat does every minute: open due waves, "
        "close ended ones, and enqueue unsent invitations (sending happens in the worker)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List the programs whose wave is due; change nothing.",
        )

    def handle(self, *args, dry_run=False, **options):
        if dry_run:
            due = services.programs_due()
            for program, period in due:
                self.stdout.write(f"due: {program} · {period:%Y-%m-%d}")
            self.stdout.write(f"{len(due)} program(s) due")
            return
        opened = services.waves_open_due()
        closed = services.waves_close_due()
        enqueued = services.invitations_enqueue_due()
        for wave in opened:
            self.stdout.write(f"opened: {wave}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(opened)} wave(s) opened, {closed} closed, {enqueued} invitation(s) enqueued"
            )
        )
