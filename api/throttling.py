"""Throttling per user (so per token for an integration's user), at the rate in settings."""

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class UserThrottle(UserRateThrottle):
    """``UserRateThrottle`` reads its rates once at import; this one reads them per request,
    so a changed setting (and ``override_settings`` in tests) takes effect."""

    scope = "user"

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
