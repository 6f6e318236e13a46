"""Shared fixtures: the persona users of the house style and a few ready-made objects."""

import pytest

from nps_project import roles
from tests.factories import UserFactory


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
