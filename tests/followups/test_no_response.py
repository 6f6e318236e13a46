"""Silence is a signal: a key contact who has not answered N days into an open wave gets one
"no response" follow-up for the account owner; if they answer later, it says so."""

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError
from django.utils import timezone

from followups import services, tasks
from followups.models import FollowUp, FollowUpEvent
from surveys.models import Invitation
from surveys.services import response_submit
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

OPENED = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
Kind = FollowUp.Kind


@pytest.fixture
def wave():
    program = ProgramFactory(no_response_followup_days=5)
    return WaveFactory(program=program, opens_at=OPENED)


def invite(wave, *, is_key=True, owner=None, **kwargs) -> Invitation:
    partner = PartnerFactory(account_owner=owner)
    return InvitationFactory(
        wave=wave, contact=ContactFactory(partner=partner, is_key=is_key), **kwargs
    )


def sweep(at) -> int:
    with time_machine.travel(at, tick=False):
        return services.followups_for_silent_key_contacts()


def test_a_silent_key_contact_gets_a_no_response_followup_for_the_owner(wave, cs_agent):
    invitation = invite(wave, owner=cs_agent)
    assert sweep(OPENED + dt.timedelta(days=4, hours=23)) == 0  # not yet five days
    assert sweep(OPENED + dt.timedelta(days=5)) == 1
    followup = FollowUp.objects.get()
    assert (followup.kind, followup.response, followup.invitation) == (
        Kind.NO_RESPONSE,
        None,
        invitation,
    )
    assert followup.assignee == cs_agent
    assert followup.partner == invitation.contact.partner
    created = followup.events.get(kind=FollowUpEvent.Kind.CREATED)
    assert created.new_value == f"no response from {invitation.contact.name}"


def test_the_sweep_makes_one_per_invitation_however_often_it_runs(wave):
    invite(wave)
    later = OPENED + dt.timedelta(days=6)
    assert sweep(later) == 1
    assert sweep(later) == 0
    assert sweep(later + dt.timedelta(days=1)) == 0
    assert FollowUp.objects.count() == 1


def test_contacts_who_are_not_key_or_answered_or_never_got_the_email_are_left_out(wave):
    invite(wave, is_key=False)
    invite(wave, status=Invitation.Status.QUEUED)
    answered = invite(wave)
    with time_machine.travel(OPENED + dt.timedelta(days=1), tick=False):
        response_submit(invitation_id=answered.pk, score=9, comment="")
    assert sweep(OPENED + dt.timedelta(days=6)) == 0


def test_a_program_without_the_setting_or_a_closed_wave_creates_none():
    quiet = WaveFactory(program=ProgramFactory(no_response_followup_days=None), opens_at=OPENED)
    invite(quiet)
    closed = WaveFactory(
        program=ProgramFactory(no_response_followup_days=1), opens_at=OPENED, status="closed"
    )
    invite(closed)
    assert sweep(OPENED + dt.timedelta(days=6)) == 0


def test_a_key_contact_answering_later_is_noted_on_the_followup(wave):
    invitation = invite(wave)
    sweep(OPENED + dt.timedelta(days=5))
    with time_machine.travel(OPENED + dt.timedelta(days=7), tick=False):
        response = response_submit(invitation_id=invitation.pk, score=4, comment="Busy quarter.")
    silent = FollowUp.objects.get(kind=Kind.NO_RESPONSE)
    answered = silent.events.get(kind=FollowUpEvent.Kind.ANSWERED)
    assert (answered.new_value, answered.note) == ("score 4", "Busy quarter.")
    # The detractor answer has its own follow-up, as every detractor does.
    assert FollowUp.objects.get(kind=Kind.RESPONSE).response == response


def test_the_database_holds_one_no_response_followup_per_invitation(wave):
    invitation = invite(wave)
    fields = dict(
        kind=Kind.NO_RESPONSE,
        invitation=invitation,
        partner=invitation.contact.partner,
        due_at=timezone.now(),
    )
    FollowUp.objects.create(**fields)
    with pytest.raises(IntegrityError):
        FollowUp.objects.create(**fields)


def test_the_database_refuses_a_no_response_followup_without_its_invitation(wave):
    invitation = invite(wave)
    with pytest.raises(IntegrityError):
        FollowUp.objects.create(
            kind=Kind.NO_RESPONSE, partner=invitation.contact.partner, due_at=timezone.now()
        )


def test_the_database_refuses_a_response_followup_without_its_response(wave):
    invitation = invite(wave)
    with pytest.raises(IntegrityError):
        FollowUp.objects.create(
            kind=Kind.RESPONSE,
            invitation=invitation,
            partner=invitation.contact.partner,
            due_at=timezone.now(),
        )


def test_the_beat_task_runs_the_sweep(wave):
    invite(wave)
    with time_machine.travel(OPENED + dt.timedelta(days=5), tick=False):
        assert tasks.create_no_response_followups() == 1


def test_the_no_response_followup_page_shows_the_silent_contact(client, wave, cs_agent):
    invitation = invite(wave, owner=cs_agent)
    sweep(OPENED + dt.timedelta(days=5))
    followup = FollowUp.objects.get()
    client.force_login(cs_agent)
    page = client.get(f"/followups/{followup.pk}/")
    assert page.status_code == 200
    assert "No response from a key contact" in page.text
    assert invitation.contact.email in page.text
    queue = client.get("/?tab=team")
    assert f"Key contact {invitation.contact.name} has not answered" in queue.text


def test_the_api_lists_a_no_response_followup_without_a_score(client, wave, cs_agent):
    invite(wave, owner=cs_agent)
    sweep(OPENED + dt.timedelta(days=5))
    client.force_login(cs_agent)
    response = client.get("/api/v1/followups/")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert row["response"] is None
    assert row.get("score") is None
