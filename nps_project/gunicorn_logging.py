"""gunicorn's logger with link tokens redacted (``--logger-class`` in the Procfile).

The access log's request line, path and Referer (the survey form's thank-you redirect is
followed with ``Referer: /s/<token>/``) and the error log pass through
``nps_project.redaction.RedactTokensFilter``, which formats each record and replaces the token
in ``/s/<token>/`` and ``/p/<token>/`` with ``[redacted]``.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from .redaction import RedactTokensFilter


class RedactingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            if not any(isinstance(f, RedactTokensFilter) for f in log.filters):
                log.addFilter(RedactTokensFilter())
