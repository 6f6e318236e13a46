"""The invariants of the loop are held by the database, not only by the services.

Each test goes around the services (bulk writes, ``update()``, direct ``create()``) and checks
that the database itself refuses the row, naming the constraint where the backend reports it.
"""

import datetime as dt
from contextlib import contextmanager

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from followups.models import Change, FollowUp, PartnerNotice
from surveys.models import Invitation, InvitationToken, Program, Response
from tests.factories import (
    ChangeFactory,
    ContactFactory,
    FollowUpFactory,
    InvitationFactory,
    ProgramFactory,
    ResponseFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db


@contextmanager
def refused(match: str | None = None):
    """Expect an IntegrityError (matching ``match`` when given) inside a savepoint, so the test's
    transaction stays usable on PostgreSQL."""
    with pytest.raises(IntegrityError, match=match), transaction.atomic():
        yield


# --- Responses -------------------------------------------------------------------------------


def test_a_score_of_11_is_refused_by_the_database_on_update():
    response = ResponseFactory(score=9)
    with refused("surveys_response_score_0_10"):
        Response.objects.filter(pk=response.pk).update(score=11)
    response.refresh_from_db()
    assert response.score == 9


def test_a_score_of_11_is_refused_by_the_database_on_bulk_create():
    invitation = InvitationFactory()
    row = Response(
        invitation=invitation,
        wave=invitation.wave,
        program=invitation.wave.program,
        partner=invitation.contact.partner,
        contact=invitation.contact,
        score=11,
        category="promoter",
        tier="Gold",
        partner_type="Reseller",
    )
    with refused("surveys_response_score_0_10"):
        Response.objects.bulk_create([row])
    assert not Response.objects.exists()


@pytest.mark.parametrize(
    ("score", "category"),
    [(3, "promoter"), (3, "passive"), (8, "detractor"), (9, "passive"), (6, "passive"), (10, "x")],
)
def test_a_category_that_disagrees_with_the_score_is_refused(score, category):
    response = ResponseFactory(score=5)
    with refused("surveys_response_category_matches_score"):
        Response.objects.filter(pk=response.pk).update(score=score, category=category)
    response.refresh_from_db()
    assert (response.score, response.category) == (5, "detractor")


def test_a_second_response_to_the_same_invitation_is_refused():
    first = ResponseFactory(score=9)
    with refused():
        ResponseFactory(invitation=first.invitation, score=2)
    assert Response.objects.count() == 1


# --- Invitations and tokens ------------------------------------------------------------------


def test_a_second_invitation_for_the_same_contact_and_wave_is_refused():
    invitation = InvitationFactory()
    with refused("surveys_invitation_one_per_contact_wave|UNIQUE|unique"):
        Invitation.objects.bulk_create(
            [Invitation(wave=invitation.wave, contact=invitation.contact)]
        )
    assert Invitation.objects.count() == 1


def test_the_same_contact_may_be_invited_to_another_wave():
    invitation = InvitationFactory()
    InvitationFactory(contact=invitation.contact, wave=WaveFactory())
    assert Invitation.objects.filter(contact=invitation.contact).count() == 2


def test_two_tokens_with_the_same_hash_are_refused():
    invitation = InvitationFactory()
    InvitationToken.objects.create(invitation=invitation, token_hash="a" * 64)
    with refused():
        InvitationToken.objects.create(invitation=InvitationFactory(), token_hash="a" * 64)


# --- Programs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("anchor_day", 29, "surveys_program_anchor_day_1_28"),
        ("anchor_day", 0, "surveys_program_anchor_day_1_28"),
        ("anchor_month", 13, "surveys_program_anchor_month_1_12"),
        ("send_hour", 24, "surveys_program_send_hour_0_23"),
        ("response_window_days", 0, "surveys_program_window_positive"),
    ],
)
def test_an_impossible_cadence_is_refused_by_the_database(field, value, constraint):
    program = ProgramFactory()
    with refused(constraint):
        Program.objects.filter(pk=program.pk).update(**{field: value})


# --- Follow-ups ------------------------------------------------------------------------------


def test_a_second_followup_for_the_same_response_is_refused():
    followup = FollowUpFactory()
    with refused():
        FollowUp.objects.create(
            response=followup.response,
            partner=followup.partner,
            due_at=timezone.now() + dt.timedelta(days=2),
        )
    assert FollowUp.objects.count() == 1


def test_a_second_notice_for_the_same_change_and_followup_is_refused():
    followup = FollowUpFactory()
    change = ChangeFactory()
    PartnerNotice.objects.create(change=change, followup=followup)
    with refused("followups_notice_one_per_change_followup|UNIQUE|unique"):
        PartnerNotice.objects.bulk_create([PartnerNotice(change=change, followup=followup)])


def test_a_shipped_change_without_a_date_is_refused():
    change = ChangeFactory()
    with refused("followups_change_shipped_has_date"):
        Change.objects.filter(pk=change.pk).update(status=Change.Status.SHIPPED, shipped_at=None)


def test_a_contact_email_belongs_to_one_contact_only():
    ContactFactory(email="ines@acme.example.com")
    with refused():
        ContactFactory(email="ines@acme.example.com")
