"""``nps_project.cache.RedisCache`` on the real Redis (``make test`` starts it for both passes):
Django's cache contract, an increment in one round trip, and the rate limiter counting on it."""

import pytest

from nps_project import ratelimit
from nps_project.cache import RedisCache

LOCATION = "redis://127.0.0.1:6379/13"


@pytest.fixture
def cache():
    backend = RedisCache(LOCATION, {"KEY_PREFIX": "nps-test-cache"})
    backend.clear()
    yield backend
    backend.clear()


def test_incr_adds_to_an_existing_counter_and_keeps_its_expiry(cache):
    assert cache.add("hits", 1, 60)
    assert cache.incr("hits") == 2
    assert cache.incr("hits", 5) == 7
    assert cache.get("hits") == 7
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_key("hits")) <= 60


def test_incr_of_a_missing_key_raises_and_creates_nothing(cache):
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    assert cache.get("missing") is None
    assert not cache.has_key("missing")


def test_one_client_serves_every_call(cache):
    assert cache._cache.get_client() is cache._cache.get_client(write=True)


@pytest.fixture
def sent(cache, monkeypatch) -> list[str]:
    """The commands the backend's client sends to Redis from now on (a spy: they still go)."""
    client = cache._cache.get_client(write=True)
    sent = []
    real = client.execute_command

    def counting(*args, **options):
        sent.append(args[0])
        return real(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    return sent


def test_an_increment_is_one_round_trip(cache, sent):
    cache.add("hits", 1, 60)
    cache.incr("hits")  # loads the script
    sent.clear()
    assert cache.incr("hits") == 3
    assert sent == ["EVALSHA"]


def test_other_values_and_calls_behave_as_djangos_backend(cache):
    cache.set("greeting", {"text": "hello"}, 60)
    assert cache.get("greeting") == {"text": "hello"}
    assert not cache.add("greeting", "other", 60)
    assert cache.get_many(["greeting", "nothing"]) == {"greeting": {"text": "hello"}}
    assert cache.delete("greeting")
    assert cache.get("greeting", "gone") == "gone"


def test_a_rate_limit_hit_is_one_round_trip_and_the_counter_expires(cache, sent):
    assert cache.count_hit("window", 60) == 1  # loads the script
    sent.clear()
    assert cache.count_hit("window", 60) == 2
    assert sent == ["EVALSHA"]
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_key("window")) <= 60


def test_the_rate_limiter_counts_and_limits_on_it(cache):
    usages = [ratelimit.hit("g", "192.0.2.7", "3/m", cache=cache, now=1_000) for _ in range(5)]
    assert [u.count for u in usages] == [1, 2, 3, 4, 5]
    assert [u.should_limit for u in usages] == [False, False, False, True, True]
    assert 0 < usages[0].time_left <= 60
    # Another client, group or window has its own counter.
    assert ratelimit.hit("g", "192.0.2.8", "3/m", cache=cache, now=1_000).count == 1
    assert ratelimit.hit("h", "192.0.2.7", "3/m", cache=cache, now=1_000).count == 1
    later = 1_000 + usages[0].time_left
    assert ratelimit.hit("g", "192.0.2.7", "3/m", cache=cache, now=later).count == 1
