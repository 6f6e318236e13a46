"""Fixed-window rate limits counted in the cache, in one round trip to Redis.

Each client's requests to partner links are counted per window (``nps_project.security``).
The project used django-ratelimit for this; its counter costs two round trips per request
(``add``, then ``incr``), which on Redis was a tenth of the survey form's request, the
product's hottest path. This is the same scheme, kept small:

- ``parse_rate("120/m")`` -> (120, 60); ``N/s``, ``N/m``, ``N/h``, ``N/d`` and multiples such
  as ``10/5m``. Settings call it at start-up, so a malformed rate stops the process with a
  clear message instead of failing on the first partner.
- ``hit(group, key, rate)`` counts one request and returns a ``Usage``. Windows are fixed, and
  staggered per key (a stable hash of it moves the window's start), so clients do not all reset
  at the same second. The counter lives under a hash of group, key, period and window, with an
  expiry just past the window.
- On ``nps_project.cache.RedisCache`` the count is one ``INCR`` (with its ``EXPIRE`` when it
  creates the key) in a Lua script; on any other cache (the per-process memory cache of the
  demo and tests) ``add`` then ``incr``.

Cache errors propagate: the caller decides (partner links fail open).
"""

from __future__ import annotations

import hashlib
import re
import time
import zlib
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

_RATE = re.compile(r"(\d+)/(\d*)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """(requests allowed, window in seconds) of a rate such as ``120/m`` or ``10/5m``."""
    match = _RATE.fullmatch(rate.strip()) if isinstance(rate, str) else None
    if match is None or int(match[1]) < 1 or match[2] == "0":
        raise ImproperlyConfigured(
            f"A rate limit must look like 120/m (requests per s, m, h or d, e.g. 10/5m); "
            f"got {rate!r}."
        )
    return int(match[1]), int(match[2] or 1) * _UNITS[match[3]]


@dataclass(frozen=True)
class Usage:
    count: int  # requests in this window, this one included
    limit: int
    time_left: int  # seconds until the window ends

    @property
    def should_limit(self) -> bool:
        return self.count > self.limit


def hit(group: str, key: str, rate: str, *, cache=None, now: float | None = None) -> Usage:
    """Count one request of ``key`` (a client address) in ``group`` against ``rate``."""
    from django.core.cache import cache as default_cache

    cache = default_cache if cache is None else cache
    limit, period = parse_rate(rate)
    now = int(time.time() if now is None else now)
    shift = zlib.crc32(key.encode()) % period
    window_end = now - (now + shift) % period + period
    digest = hashlib.sha256(f"{group}\n{key}\n{period}\n{window_end}".encode()).hexdigest()
    counter_key = f"rl:{digest[:40]}"
    timeout = period + 1
    count_hit = getattr(cache, "count_hit", None)
    if count_hit is not None:
        count = count_hit(counter_key, timeout)
    elif cache.add(counter_key, 1, timeout):
        count = 1
    else:
        try:
            count = cache.incr(counter_key)
        except ValueError:  # expired between the two calls: a new window's first request
            cache.add(counter_key, 1, timeout)
            count = 1
    return Usage(count=count, limit=limit, time_left=window_end - now)
