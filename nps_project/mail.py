"""An email backend for the demo: every message becomes one .eml file in ``OUTBOX_DIR``.

Unlike Django's file backend (one log file per connection), one file per message can be opened
by a mail client, listed by the staff outbox page, and read by a person without a mail server.
"""

import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


class OutboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        folder = Path(settings.OUTBOX_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(message.message().as_bytes(linesep="\r\n"))
            tmp.rename(folder / name)  # atomic: the outbox page never sees half a file
            sent += 1
        return sent
