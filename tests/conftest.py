"""Shared fixtures: the persona users of the house style and a few ready-made objects."""

import pytest

from nps_project import roles
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's many rounds cost most of a second per persona; tests do not need them."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
