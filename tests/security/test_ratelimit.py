"""``nps_project.ratelimit``: rates, windows and counting on the memory cache (the Redis
backend's one-round-trip count is in ``test_cache_backend``)."""

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured

from nps_project.ratelimit import hit, parse_rate


@pytest.mark.parametrize(
    "rate, parsed",
    [
        ("120/m", (120, 60)),
        ("30/s", (30, 1)),
        ("10/5m", (10, 300)),
        (" 2/h ", (2, 3600)),
        ("1/d", (1, 86400)),
    ],
)
def test_a_rate_is_requests_per_period(rate, parsed):
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize(
    "rate", ["", "120", "120/x", "0/m", "10/0m", "-1/m", "ten/m", None, "1/m/s"]
)
def test_a_malformed_rate_is_refused_with_an_example(rate):
    with pytest.raises(ImproperlyConfigured, match="120/m"):
        parse_rate(rate)


@pytest.fixture
def cache():
    return LocMemCache("ratelimit-test", {})


def test_each_client_counts_in_its_own_window_and_is_limited_past_the_rate(cache):
    counts = [hit("read", "203.0.113.1", "2/m", cache=cache, now=500).count for _ in range(3)]
    assert counts == [1, 2, 3]
    assert hit("read", "203.0.113.1", "2/m", cache=cache, now=500).should_limit
    assert not hit("read", "203.0.113.2", "2/m", cache=cache, now=500).should_limit


def test_windows_are_fixed_staggered_per_client_and_end_within_the_period(cache):
    ends = set()
    for client in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "198.51.100.9"):
        usage = hit("read", client, "5/m", cache=cache, now=10_000)
        assert 1 <= usage.time_left <= 60
        ends.add(10_000 + usage.time_left)
        # Still the same window one second before it ends; a new one when it has.
        end = 10_000 + usage.time_left
        assert hit("read", client, "5/m", cache=cache, now=end - 1).count == 2
        assert hit("read", client, "5/m", cache=cache, now=end).count == 1
    assert len(ends) > 1  # not every client resets at the same second


def test_a_counter_that_expired_between_add_and_incr_starts_a_new_window(cache, monkeypatch):
    hit("read", "203.0.113.1", "5/m", cache=cache, now=0)
    monkeypatch.setattr(cache, "incr", lambda key: (_ for _ in ()).throw(ValueError(key)))
    assert hit("read", "203.0.113.1", "5/m", cache=cache, now=0).count == 1


def test_settings_refuse_a_malformed_rate_at_start_up():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={
            "DJANGO_SETTINGS_MODULE": "nps_project.settings",
            "NPS_LINK_READ_RATE": "lots",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        cwd=__import__("django").conf.settings.BASE_DIR,
    )
    assert result.returncode != 0
    assert "A rate limit must look like 120/m" in result.stderr
