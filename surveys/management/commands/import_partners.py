from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from surveys.importing import HEADER, partners_import


class Command(BaseCommand):
    help = (
        "Import partners and their contacts from a CSV file with the header "
        f"{HEADER}. Any bad row rejects the whole file: every problem is printed as "
        "'line N: reason' and nothing is written. Importing the same file again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the CSV file (UTF-8).")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check the file and print what would change; write nothing.",
        )

    def handle(self, *args, file: str, dry_run: bool = False, **options):
        path = Path(file)
        try:
            handle = path.open(encoding="utf-8", newline="")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from exc
        with handle:
            report = partners_import(file=handle, dry_run=dry_run)
        if not report.ok:
            for error in report.errors:
                self.stderr.write(str(error))
            raise CommandError(report.summary())
        for note in report.notes:
            self.stdout.write(note)
        self.stdout.write(self.style.SUCCESS(report.summary()))
