"""Security plumbing shared by the apps: token redaction in logs, the client's address, login
throttling that needs a request, and the rate limit of partner links.

- Survey links (``/s/<token>/``) and partner-page links (``/p/<token>/``) carry their secret in
  the path. ``redact`` replaces it wherever a path may be logged: Django's log records (the
  ``RedactTokensFilter`` on the console handler, in ``redaction``) and gunicorn's access log
  (``nps_project.gunicorn_logging.RedactingLogger``).
- ``client_ip`` is the address rate limits and login lockouts count by: ``REMOTE_ADDR``, or
  behind ``NPS_TRUSTED_PROXY_COUNT`` proxies the address the outermost trusted proxy saw.
- ``link_rate_limit`` limits each client's requests to partner links (``nps_project.ratelimit``,
  counted in the cache: Redis in production) and answers a friendly 429 page past the limit.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.shortcuts import render

from . import ratelimit
from .redaction import RedactTokensFilter, redact  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or with ``NPS_TRUSTED_PROXY_COUNT`` = N > 0 the
    Nth address from the right of ``X-Forwarded-For`` (the ones to its right were added by our
    own proxies; anything to its left the client may have forged). None when there is no valid
    address (Django's test client logging in, a malformed header), so nothing stores garbage in
    an address column."""
    remote = _valid_ip(request.META.get("REMOTE_ADDR", "") or "")
    proxies = getattr(settings, "NPS_TRUSTED_PROXY_COUNT", 0)
    if proxies <= 0:
        return remote
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    if len(hops) < proxies:
        return remote
    return _valid_ip(hops[-proxies]) or remote


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check for logins over HTTP (the login page, the admin, DRF's basic
    authentication all pass the request). A login without a request (Django's test client,
    a script, the shell) cannot be counted per address and is left to the next backend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def _client_key(request) -> str:
    return client_ip(request) or "unknown"


def rate_limited(request, *, retry_after: int = 60):
    """The 429 page: what happened and what to do, in the page's language, no token in it."""
    response = render(
        request, "security/rate_limited.html", {"retry_after": retry_after}, status=429
    )
    response.headers["Retry-After"] = str(max(1, retry_after))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def link_rate_limit(view):
    """Limit each client's requests to a partner-link view: ``NPS_LINK_READ_RATE`` for GET and
    HEAD, ``NPS_LINK_WRITE_RATE`` for the rest, shared by every partner-link view. If the cache
    cannot be reached the request goes through (logged): a partner's answer matters more than a
    missed count."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.NPS_RATE_LIMIT_ENABLE:
            return view(request, *args, **kwargs)
        safe = request.method in ("GET", "HEAD", "OPTIONS")
        try:
            usage = ratelimit.hit(
                "partner-links-read" if safe else "partner-links-write",
                _client_key(request),
                settings.NPS_LINK_READ_RATE if safe else settings.NPS_LINK_WRITE_RATE,
            )
        except Exception as exc:  # noqa: BLE001 - any cache failure: let the partner through
            logger.warning("Rate limit not checked, the cache failed: %s", exc)
            usage = None
        if usage is not None and usage.should_limit:
            return rate_limited(request, retry_after=usage.time_left)
        return view(request, *args, **kwargs)

    return wrapped
