"""Shared fixtures: the persona users of the house style and a few ready-made objects."""

import pytest

from nps_project import roles
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's many rounds cost most of a second per persona; tests do not need them."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def clear_cache():
    """Rate-limit counters (partner links, API throttling) live in the cache, which outlives a
    test in the same process: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", role=roles.ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def cs_manager(db):
    return UserFactory(username="maria", role=roles.CS_MANAGER)


@pytest.fixture
def cs_agent(db):
    return UserFactory(username="sam", role=roles.CS_STAFF)


@pytest.fixture
def other_agent(db):
    return UserFactory(username="olga", role=roles.CS_STAFF)


@pytest.fixture
def outsider(db):
    """Logged in, but in no customer-success role."""
    return UserFactory(username="otto")


def pytest_sessionstart(session):
    """With NPS_EXPECT_SERVICES set (as `make test` does), the run fails at once unless the
    configured database and broker are the expected ones and answer: integration tests must
    fail, not skip, when a service is missing."""
    import os

    expected = os.environ.get("NPS_EXPECT_SERVICES")
    if not expected:
        return
    from django.conf import settings

    database, broker = expected.split(",")
    vendor = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    if vendor.replace("sqlite3", "sqlite") != database:
        raise pytest.UsageError(f"Expected the {database} database, settings use {vendor}.")
    scheme = settings.CELERY_BROKER_URL.split("://", 1)[0]
    if scheme != broker:
        raise pytest.UsageError(f"Expected the {broker} broker, settings use {scheme}.")
    from nps_project.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=2)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker ends the run
        raise pytest.UsageError(f"The {broker} broker is not reachable: {exc}") from exc


def _uses_transactional_db(request) -> bool:
    if {"transactional_db", "live_server"} & set(request.fixturenames):
        return True
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction"))


@pytest.fixture(autouse=True)
def _migration_defaults(request):
    """Transactional tests end by flushing every table, which also removes the rows the data
    migrations created (tiers, partner types, roles, root causes, themes, the working calendar,
    escalation rules). Put them back, with the migrations' own functions, before such a test."""
    if not _uses_transactional_db(request):
        return
    import importlib

    from django.apps import apps

    request.getfixturevalue("transactional_db")
    for module, function in (
        ("surveys.migrations.0002_defaults", "create_defaults"),
        ("followups.migrations.0002_root_causes", "create_root_causes"),
        ("followups.migrations.0004_loop_defaults", "forwards"),
        ("scoring.migrations.0002_default_themes", "add_themes"),
    ):
        getattr(importlib.import_module(module), function)(apps, None)
