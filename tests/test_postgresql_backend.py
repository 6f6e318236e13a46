"""The PostgreSQL backend for server-side binding keeps each statement Django splits under
PostgreSQL's 65,535 parameters (nps_project/postgresql/base.py)."""

import pytest
from django.db import connection

from surveys.models import InvitationToken
from tests.factories import InvitationFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own limit"),
]


def test_batches_fit_in_one_statements_parameters():
    fields = [f for f in InvitationToken._meta.concrete_fields if not f.primary_key]
    rows = [object()] * 100_000

    per_statement = connection.ops.bulk_batch_size(fields, rows)

    assert per_statement == 65_535 // 3 == 21_845
    assert connection.ops.bulk_batch_size(["pk"], rows) == 65_535
    assert connection.ops.bulk_batch_size(fields, rows[:10]) == 10


def test_bulk_create_of_more_values_than_one_statement_can_bind():
    invitation = InvitationFactory()
    tokens = [InvitationToken(invitation=invitation, token_hash=f"{n:064x}") for n in range(22_000)]

    InvitationToken.objects.bulk_create(tokens)  # 66,000 values: two statements

    assert InvitationToken.objects.filter(invitation=invitation).count() == 22_000
