import csv
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from surveys.services import delivery_events_record

CSV_HEADER = ["type", "email", "bounce_type", "reason", "at"]


def read_events(path: Path) -> list:
    """Events from a .json file (a list, or {"events": [...]}) or a .csv file with the header
    type,email,bounce_type,reason,at (bounce_type, reason and at may be empty)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = {"type", "email"} - set(reader.fieldnames or [])
        if missing:
            raise CommandError(
                f"The CSV header must have {', '.join(CSV_HEADER)}; missing: "
                f"{', '.join(sorted(missing))}."
            )
        return [{k: v for k, v in row.items() if k in CSV_HEADER and v} for row in reader]
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{path} is not JSON: {exc}.") from exc
    return payload.get("events") if isinstance(payload, dict) else payload


class Command(BaseCommand):
    help = (
        "Record the email provider's hard bounces and spam complaints from a JSON or CSV file "
        "(the format of POST /delivery/events/, see surveys/delivery.py; CSV header "
        "type,email,bounce_type,reason,at). The contacts are excluded from future waves and "
        "reminders. Any bad event rejects the whole file and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to a .json or .csv file (UTF-8).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the file and report; write nothing."
        )

    def handle(self, *args, file: str, dry_run: bool = False, **options):
        path = Path(file)
        try:
            events = read_events(path)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text.") from exc
        try:
            report = delivery_events_record(events=events, dry_run=dry_run)
        except ValidationError as exc:
            for message in exc.messages:
                self.stderr.write(message)
            raise CommandError("Nothing was recorded: fix the events above.") from exc
        for email in report.unknown:
            self.stdout.write(f"unknown address, ignored: {email}")
        self.stdout.write(self.style.SUCCESS(report.summary()))
