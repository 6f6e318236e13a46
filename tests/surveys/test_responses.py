"""Recording answers: validation, revision, the segment snapshot and the detractor follow-up."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from followups.models import FollowUp, FollowUpEvent
from surveys.models import Response, Tier, Wave
from surveys.services import WaveClosedError, response_submit
from tests.factories import ContactFactory, InvitationFactory, PartnerFactory, WaveFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner(cs_agent):
    return PartnerFactory(name="Acme Systems", region="EMEA", account_owner=cs_agent)


@pytest.fixture
def invitation(partner):
    contact = ContactFactory(partner=partner, email="ines@acme.example.com", language="DE")
    return InvitationFactory(contact=contact)


def submit(invitation, score, comment="", **kwargs):
    return response_submit(invitation_id=invitation.pk, score=score, comment=comment, **kwargs)


# --- What is stored --------------------------------------------------------------------------


def test_an_answer_stores_score_category_comment_and_the_partners_segment(invitation, cs_agent):
    response = submit(invitation, 9, "  Great enablement team.  ")

    response.refresh_from_db()
    assert response.invitation == invitation
    assert response.wave == invitation.wave
    assert response.program == invitation.wave.program
    assert response.partner.name == "Acme Systems"
    assert response.contact == invitation.contact
    assert (response.score, response.category) == (9, Response.Category.PROMOTER)
    assert response.comment == "Great enablement team."
    assert response.language == "de"
    assert (response.tier, response.partner_type, response.region) == ("Gold", "Reseller", "EMEA")
    assert response.account_owner == cs_agent


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0, "detractor"),
        (6, "detractor"),
        (7, "passive"),
        (8, "passive"),
        (9, "promoter"),
        (10, "promoter"),
        ("7", "passive"),
        (" 10 ", "promoter"),
    ],
)
def test_the_category_follows_the_score(invitation, score, category):
    assert submit(invitation, score).category == category


def test_a_language_without_a_translation_is_recorded_as_english(partner):
    contact = ContactFactory(partner=partner, language="pt")
    response = submit(InvitationFactory(contact=contact), 8)
    assert response.language == "en"


def test_the_segment_is_kept_as_it_was_when_the_partner_answered(invitation, partner, other_agent):
    response = submit(invitation, 8)

    partner.tier = Tier.objects.get(name="Platinum")
    partner.region = "APAC"
    partner.account_owner = other_agent
    partner.save()
    # A revision after the partner moved does not rewrite the snapshot either.
    submit(invitation, 10)

    response.refresh_from_db()
    assert (response.tier, response.region, response.account_owner.username) == (
        "Gold",
        "EMEA",
        "sam",
    )
    assert response.score == 10


def test_a_revision_updates_the_same_response(invitation):
    first = submit(invitation, 5, "Slow support.")
    second = submit(invitation, 8, "Better since last week.")

    assert second.pk == first.pk
    assert Response.objects.count() == 1
    stored = Response.objects.get()
    assert (stored.score, stored.category, stored.comment) == (
        8,
        Response.Category.PASSIVE,
        "Better since last week.",
    )
    assert stored.submitted_at == first.submitted_at


# --- Bad input and closed waves --------------------------------------------------------------


@pytest.mark.parametrize("score", [-1, 11, "x", None, "7.5", 7.5, "", "  ", True, "0x7", "1e1"])
def test_a_bad_score_is_refused_and_nothing_is_stored(invitation, score):
    with pytest.raises(ValidationError) as excinfo:
        submit(invitation, score, "Comment")
    assert excinfo.value.message_dict == {"score": ["Choose a score from 0 to 10."]}
    assert not Response.objects.exists()
    assert not FollowUp.objects.exists()


def test_a_bad_score_on_revision_keeps_the_first_answer(invitation):
    submit(invitation, 9, "Fine.")
    with pytest.raises(ValidationError):
        submit(invitation, 12, "Changed my mind.")
    stored = Response.objects.get()
    assert (stored.score, stored.comment) == (9, "Fine.")


def test_an_overlong_comment_is_refused_and_nothing_is_stored(invitation):
    with pytest.raises(ValidationError) as excinfo:
        submit(invitation, 3, "x" * 5001)
    assert "comment" in excinfo.value.message_dict
    assert not Response.objects.exists()
    assert submit(invitation, 3, "x" * 5000).comment == "x" * 5000


def test_an_answer_to_a_closed_wave_is_refused_and_nothing_is_stored(invitation):
    Wave.objects.filter(pk=invitation.wave_id).update(status=Wave.Status.CLOSED)
    with pytest.raises(WaveClosedError):
        submit(invitation, 2, "Too late.")
    assert not Response.objects.exists()
    assert not FollowUp.objects.exists()


def test_an_answer_after_the_closing_instant_is_refused_even_before_the_tick(invitation):
    closes_at = invitation.wave.closes_at
    with pytest.raises(WaveClosedError):
        submit(invitation, 2, now=closes_at)
    assert submit(invitation, 2, now=closes_at - dt.timedelta(seconds=1)).score == 2


def test_an_answer_before_the_wave_opens_is_refused(partner):
    wave = WaveFactory(opens_at=timezone.now() + dt.timedelta(hours=1))
    invitation = InvitationFactory(wave=wave, contact=ContactFactory(partner=partner))
    with pytest.raises(WaveClosedError):
        submit(invitation, 9)
    assert not Response.objects.exists()


def test_a_revision_after_the_wave_closed_keeps_the_answer(invitation):
    submit(invitation, 4, "Meh.")
    Wave.objects.filter(pk=invitation.wave_id).update(status=Wave.Status.CLOSED)
    with pytest.raises(WaveClosedError):
        submit(invitation, 10, "Actually great.")
    stored = Response.objects.get()
    assert (stored.score, stored.comment) == (4, "Meh.")
    assert FollowUpEvent.objects.filter(kind=FollowUpEvent.Kind.RESPONSE_EDITED).count() == 0


# --- Follow-ups ------------------------------------------------------------------------------


def test_a_detractor_gets_exactly_one_followup_even_when_revised_several_times(invitation):
    submit(invitation, 3, "Support takes days.")
    submit(invitation, 2, "Support takes days.")
    submit(invitation, 2, "Support takes a week.")
    submit(invitation, 2, "Support takes a week.")  # identical: nothing to note

    followup = FollowUp.objects.get()
    assert followup.response == Response.objects.get()
    edits = followup.events.filter(kind=FollowUpEvent.Kind.RESPONSE_EDITED)
    assert [(e.old_value, e.new_value, e.note) for e in edits] == [
        ("3", "2", "Support takes days."),
        ("2", "2", "Support takes a week."),
    ]


def test_a_promoter_gets_no_followup(invitation):
    submit(invitation, 9)
    submit(invitation, 7)
    assert not FollowUp.objects.exists()


def test_a_promoter_revised_to_a_detractor_gets_its_followup_then(invitation, cs_agent):
    submit(invitation, 10, "Love it.")
    assert not FollowUp.objects.exists()

    submit(invitation, 4, "The new portal broke deal registration.")

    followup = FollowUp.objects.get()
    assert followup.assignee == cs_agent
    assert followup.response.score == 4
    assert list(followup.events.values_list("kind", flat=True)) == ["created", "assigned"]


def test_a_detractor_revised_to_a_promoter_keeps_its_followup_with_the_edit_noted(invitation):
    submit(invitation, 5, "Slow.")
    submit(invitation, 9, "Sorted out now.")
    followup = FollowUp.objects.get()
    assert followup.status == FollowUp.Status.OPEN
    assert followup.events.filter(kind=FollowUpEvent.Kind.RESPONSE_EDITED).get().new_value == "9"


def test_a_very_low_score_gets_a_high_priority_followup(invitation):
    submit(invitation, 3)
    assert FollowUp.objects.get().priority == FollowUp.Priority.HIGH


def test_a_six_gets_a_normal_priority_followup(invitation):
    submit(invitation, 6)
    assert FollowUp.objects.get().priority == FollowUp.Priority.NORMAL
