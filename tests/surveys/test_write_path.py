"""The partner's write path and what follows it: ``response_record`` writes the answer in one
statement and leaves the row marked; ``response_settle`` (the settle tick, every few seconds)
gives it its follow-up, its ``response.created`` webhook and the note on a revised answer, once.

A database outage is a real one here: the connection is pointed at a server that is not there.
"""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from followups.models import FollowUp, FollowUpEvent
from surveys.models import Invitation, Response, Wave
from surveys.services import (
    WaveClosedError,
    invitation_for_token,
    response_record,
    response_record_for_token,
    response_settle,
    responses_settle_pending,
    token_issue,
)
from tests.factories import InvitationFactory
from webhooks.models import Delivery
from webhooks.services import subscription_create

pytestmark = pytest.mark.django_db

SettleState = Response.SettleState


@pytest.fixture
def token():
    return token_issue(invitation=InvitationFactory())


def record(token, score, comment="", **kwargs) -> int:
    """Answer as the form does: the invitation as the link loads it, nothing settled yet."""
    return response_record(
        invitation=invitation_for_token(token),
        score=score,
        comment=comment,
        **kwargs,
    )


def test_a_first_answer_is_settled_once_however_often_its_task_runs(token, admin_user):
    subscription_create(
        url="https://crm.example.com/hook", events=["response.created"], by=admin_user
    )
    response_id = record(token, 2, "Slow")
    assert Response.objects.get(pk=response_id).settle_state == SettleState.NEW

    first = response_settle(response_id=response_id)
    again = response_settle(response_id=response_id)

    assert first == again == FollowUp.objects.get()
    assert first.response_id == response_id
    assert Response.objects.get(pk=response_id).settle_state == SettleState.DONE
    delivery = Delivery.objects.get()
    assert delivery.event == "response.created"
    assert delivery.payload["data"]["score"] == 2


def test_a_revision_is_noted_on_the_followup_with_the_score_it_replaced(token):
    response_id = record(token, 3, "Slow")
    response_settle(response_id=response_id)

    record(token, 5, "Slow, but better")
    record(token, 1, "Worse than I said")
    response = Response.objects.get(pk=response_id)
    # Two revisions before a settle: the score it replaces is the last settled one.
    assert (response.settle_state, response.previous_score) == (SettleState.REVISED, 3)

    response_settle(response_id=response_id)
    followup = FollowUp.objects.get()
    edited = followup.events.get(kind=FollowUpEvent.Kind.RESPONSE_EDITED)
    assert (edited.old_value, edited.new_value, edited.note) == ("3", "1", "Worse than I said")
    response.refresh_from_db()
    assert (response.settle_state, response.previous_score) == (SettleState.DONE, None)
    assert Delivery.objects.count() == 0


def test_sending_the_same_answer_again_leaves_it_settled(token):
    response_id = record(token, 3, "Slow")
    response_settle(response_id=response_id)

    record(token, 3, "Slow")

    response = Response.objects.get(pk=response_id)
    assert response.settle_state == SettleState.DONE
    assert not FollowUpEvent.objects.filter(kind=FollowUpEvent.Kind.RESPONSE_EDITED).exists()


def test_a_passive_revised_to_a_detractor_gets_its_followup_then(token):
    response_id = record(token, 8, "Fine")
    assert response_settle(response_id=response_id) is None

    record(token, 4, "Actually, support is slow")
    followup = response_settle(response_id=response_id)

    assert followup.response_id == response_id
    assert FollowUp.objects.count() == 1


def test_the_revision_keeps_the_segment_and_time_of_the_first_answer(token):
    first_at = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
    invitation = invitation_for_token(token)
    invitation.wave.opens_at = first_at - dt.timedelta(days=1)
    invitation.wave.closes_at = first_at + dt.timedelta(days=30)
    invitation.wave.save()
    response_id = record(token, 9, "Great", now=first_at)
    tier = Response.objects.get(pk=response_id).tier
    partner = invitation.contact.partner
    partner.tier = type(partner.tier).objects.create(name="Diamond (test)", rank=99)
    partner.save()

    record(token, 6, "Less great", now=first_at + dt.timedelta(days=2))

    response = Response.objects.get(pk=response_id)
    assert (response.score, response.category, response.tier) == (6, "detractor", tier)
    assert response.submitted_at == first_at
    assert response.updated_at == first_at + dt.timedelta(days=2)


def test_nothing_is_written_once_the_wave_has_closed_in_the_database(token):
    invitation = invitation_for_token(token)  # loaded while open
    Wave.objects.filter(pk=invitation.wave_id).update(status=Wave.Status.CLOSED)

    with pytest.raises(WaveClosedError):
        response_record(invitation=invitation, score=3)
    assert not Response.objects.exists()


def test_the_settle_tick_settles_every_marked_answer_oldest_first(token):
    answered = timezone.now()
    with time_machine.travel(answered, tick=False):
        detractor = record(token, 1, "Nobody called")
    with time_machine.travel(answered + dt.timedelta(seconds=2), tick=False):
        promoter = record(token_issue(invitation=InvitationFactory()), 10, "Great")
        record(token, 0, "Still nobody")  # revised before any tick: still a first answer

    assert responses_settle_pending() == 2
    assert responses_settle_pending() == 0

    followup = FollowUp.objects.get()
    assert followup.response_id == detractor
    assert followup.events.filter(kind=FollowUpEvent.Kind.RESPONSE_EDITED).count() == 0
    assert set(Response.objects.values_list("pk", "settle_state")) == {
        (detractor, SettleState.DONE),
        (promoter, SettleState.DONE),
    }
    # Due as if it had been settled at once: the SLA counts from the answer's last write.
    assert followup.due_at > answered + dt.timedelta(seconds=2)


# --- A database outage ------------------------------------------------------------------------


class Outage:
    """Points the connection at a database server that is not there (a real connection
    failure), and back. For ``transaction=True`` tests: a test's own transaction would be lost."""

    def __init__(self):
        self.saved = dict(connection.settings_dict)

    def start(self):
        connection.close()
        if connection.vendor == "sqlite":
            connection.settings_dict["NAME"] = "/nonexistent-directory/nps.sqlite3"
        else:
            connection.settings_dict["PORT"] = "1"

    def end(self):
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(self.saved)


@pytest.fixture
def outage():
    outage = Outage()
    yield outage
    outage.end()


@pytest.mark.django_db(transaction=True)
def test_an_answer_sent_while_the_database_is_down_gets_a_retry_page_and_is_not_lost(
    client, outage, settings
):
    settings.NPS_RATE_LIMIT_ENABLE = False
    invitation = InvitationFactory()
    token = token_issue(invitation=invitation)
    url = reverse("surveys:respond", args=[token])
    answer = {"score": "3", "comment": 'Support is "slow" <really>', "wants_contact": "on"}

    outage.start()
    page = client.post(url, answer)

    assert page.status_code == 503
    assert page.headers["Retry-After"] == "30"
    html = page.content.decode()
    assert "We could not save your answer just now" in html
    assert '<input type="hidden" name="score" value="3">' in html
    assert (
        '<input type="hidden" name="comment" value="Support is &quot;slow&quot; &lt;really&gt;">'
        in html
    )
    assert '<input type="hidden" name="wants_contact" value="on">' in html
    assert f'action="{url}"' in html
    reload = client.get(url)
    assert reload.status_code == 503
    assert "Please reload this page in a minute" in reload.content.decode()

    outage.end()
    again = client.post(url, answer)

    assert again.status_code == 302
    response = Response.objects.get(invitation=invitation)
    assert (response.score, response.comment, response.wants_contact) == (
        3,
        'Support is "slow" <really>',
        True,
    )
    assert Invitation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_retry_page_is_in_the_browsers_language(client, outage, settings):
    settings.NPS_RATE_LIMIT_ENABLE = False
    token = token_issue(invitation=InvitationFactory())
    url = reverse("surveys:respond", args=[token])

    outage.start()
    page = client.post(url, {"score": "9"}, HTTP_ACCEPT_LANGUAGE="de")

    assert page.status_code == 503
    assert page.headers["Content-Language"] == "de"
    assert "Antwort erneut senden" in page.content.decode()


# --- The one statement: response_record_for_token ---------------------------------------------

COMPARED_OUT = {"id", "invitation_id", "contact_id", "submitted_at", "updated_at"}


def _columns(response: Response) -> dict:
    return {
        f.attname: getattr(response, f.attname)
        for f in Response._meta.concrete_fields
        if f.attname not in COMPARED_OUT
    }


def _two_answers(**partner_fields):
    """Two invitations of one wave, to contacts of one partner: one answered each way."""
    from tests.factories import ContactFactory, PartnerFactory, WaveFactory

    wave = WaveFactory()
    partner = PartnerFactory(**partner_fields)
    return [
        token_issue(
            invitation=InvitationFactory(
                wave=wave, contact=ContactFactory(partner=partner, language="fr")
            )
        )
        for _ in range(2)
    ]


@pytest.mark.parametrize("region", ["EMEA", ""])
def test_the_one_statement_writes_the_row_response_record_writes(region, cs_agent):
    by_lookup, by_token = _two_answers(region=region, account_owner=cs_agent)
    now = timezone.now()
    record(by_lookup, 6, " Slow support ", wants_contact=True, now=now)
    response_record_for_token(
        token=by_token, score=6, comment=" Slow support ", wants_contact=True, now=now
    )
    first, second = (
        Response.objects.get(invitation=invitation_for_token(t)) for t in (by_lookup, by_token)
    )
    assert _columns(second) == _columns(first)
    assert (second.tier, second.region, second.account_owner_id, second.language) == (
        first.partner.tier.name,
        region,
        cs_agent.pk,
        "fr",
    )
    assert second.submitted_at == now and second.settle_state == SettleState.NEW


def test_a_revision_by_the_one_statement_is_marked_as_response_records_is(token):
    record(token, 3, "Slow")
    response = Response.objects.get()
    Response.objects.filter(pk=response.pk).update(settle_state=SettleState.DONE)
    assert response_record_for_token(token=token, score=8, comment="Better now") == response.pk
    response.refresh_from_db()
    assert (response.score, response.category, response.previous_score) == (8, "passive", 3)
    assert response.settle_state == SettleState.REVISED
    # The same answer again changes nothing that needs settling.
    Response.objects.filter(pk=response.pk).update(settle_state=SettleState.DONE)
    response_record_for_token(token=token, score=8, comment="Better now")
    response.refresh_from_db()
    assert response.settle_state == SettleState.DONE


def test_the_one_statement_writes_nothing_for_a_closed_wave_an_unknown_link_or_a_raw_language(
    token,
):
    invitation = invitation_for_token(token)
    assert response_record_for_token(token="A" * 32, score=5) is None
    assert response_record_for_token(token="not a token", score=5) is None
    invitation.contact.language = "DE"
    invitation.contact.save()
    assert response_record_for_token(token=token, score=5) is None  # the full path normalises
    invitation.contact.language = "de"
    invitation.contact.save()
    Wave.objects.filter(pk=invitation.wave_id).update(status=Wave.Status.CLOSED)
    assert response_record_for_token(token=token, score=5) is None
    Wave.objects.filter(pk=invitation.wave_id).update(
        status=Wave.Status.OPEN, opens_at=timezone.now() + dt.timedelta(hours=1)
    )
    assert response_record_for_token(token=token, score=5) is None
    assert not Response.objects.exists()


@pytest.mark.parametrize("score", [-1, 11, "7.5", None])
def test_the_one_statement_refuses_a_bad_score_before_any_sql(
    token, score, django_assert_num_queries
):
    from django.core.exceptions import ValidationError

    with django_assert_num_queries(0), pytest.raises(ValidationError):
        response_record_for_token(token=token, score=score)
