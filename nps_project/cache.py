"""Django's own Redis cache backend, with the rate limiter's costs taken off its path.

Every partner request counts against its client's rate limit (``nps_project.ratelimit``).
With Django's ``RedisCache`` every cache call builds a new ``redis.Redis`` client object around
the connection pool, and ``incr`` is two round trips (``EXISTS`` then ``INCRBY``); with the
``add`` a counter needs first, that was a quarter of the survey form's request. This backend

- keeps one ``redis.Redis`` client per connection pool (the client is thread-safe; the pool
  already was shared);
- counts a rate-limit hit in one round trip: ``count_hit(key, timeout)`` increments the key and
  sets its expiry when the increment created it, in one Lua script;
- increments in one round trip with a Lua script that increments only an existing key, so
  ``incr`` keeps Django's contract (``ValueError`` for a missing key, never a counter created
  without its expiry).

Everything else is Django's ``RedisCache`` unchanged. Settings: ``CACHE_URL``.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

_INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""

_COUNT_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


class _Client(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._clients: dict[int, object] = {}
        self._scripts: dict[tuple[int, str], object] = {}

    def _script(self, client, source: str):
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[(id(client), source)] = client.register_script(source)
        return script

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def incr(self, key, delta):
        client = self.get_client(key, write=True)
        value = self._script(client, _INCR_IF_EXISTS)(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return value

    def count_hit(self, key, timeout: int) -> int:
        client = self.get_client(key, write=True)
        return int(self._script(client, _COUNT_HIT)(keys=[key], args=[int(timeout)]))


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _Client

    def count_hit(self, key: str, timeout: int, version=None) -> int:
        """Add one to the counter ``key`` and return it; a new counter expires after
        ``timeout`` seconds. One round trip."""
        return self._cache.count_hit(self.make_and_validate_key(key, version=version), timeout)
