"""Link tokens out of logs. No Django import here: ``LOGGING`` loads this before the apps.

Survey links (``/s/<token>/``) and partner-page links (``/p/<token>/``) carry their secret in the
path; ``redact`` replaces it with ``[redacted]`` wherever a path may be logged.
"""

from __future__ import annotations

import logging
import re

# A secret path segment: what follows /s/ or /p/ (except the brand stylesheet's "brand/"), up to
# the next slash, query, fragment, quote or space. Also matches inside absolute URLs.
TOKEN_IN_PATH = re.compile(r"(/[sp]/)(?!brand/)[^/?#\s\"']+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with every link token replaced by ``[redacted]``."""
    if not isinstance(text, str) or ("/s/" not in text and "/p/" not in text):
        return text
    return TOKEN_IN_PATH.sub(rf"\g<1>{REDACTED}", text)


class RedactTokensFilter(logging.Filter):
    """A logging filter that redacts link tokens from a record's message and arguments.

    The message is formatted once here (``getMessage``), redacted, and stored without its
    arguments, so no handler or formatter after it can print the token.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is left for logging to report
            return True
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, ()
        return True
