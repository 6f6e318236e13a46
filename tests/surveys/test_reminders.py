"""Reminders to non-responders: on the configured days, once each, never more than the maximum,
and never to someone who answered, opted out, bounced or complained, or after the wave closed."""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail

from surveys.models import Invitation, InvitationToken, Wave
from surveys.services import (
    contact_opt_out,
    delivery_events_record,
    invitation_for_token,
    reminders_enqueue_due,
    reminders_owed,
    reminders_send,
    waves_close_due,
)
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    ProgramFactory,
    ResponseFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

OPENED = dt.datetime(2027, 4, 15, 7, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
TOKEN_IN_LINK = re.compile(r"/s/([A-Za-z0-9_-]{32})/")


@pytest.fixture
def clock():
    with time_machine.travel(OPENED, tick=False) as traveller:
        yield traveller


@pytest.fixture
def wave(clock):
    program = ProgramFactory(
        name="Partner NPS", reminder_days=[4, 9], max_reminders=2, response_window_days=14
    )
    return WaveFactory(
        program=program,
        period_start=OPENED.date(),
        opens_at=OPENED,
        closes_at=OPENED + dt.timedelta(days=14),
    )


def sent(wave, *contacts):
    return [InvitationFactory(wave=wave, contact=c, sent_at=OPENED) for c in contacts]


def due_ids(django_capture_on_commit_callbacks) -> list[int]:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reminders_enqueue_due()
    return sorted(pk for cb in callbacks for pk in cb.args[0])


def test_reminders_are_owed_on_the_configured_days_up_to_the_maximum(wave):
    day = dt.timedelta(days=1)
    assert reminders_owed(wave=wave, now=OPENED + 4 * day - dt.timedelta(seconds=1)) == 0
    assert reminders_owed(wave=wave, now=OPENED + 4 * day) == 1
    assert reminders_owed(wave=wave, now=OPENED + 9 * day) == 2
    wave.program.max_reminders = 1
    assert reminders_owed(wave=wave, now=OPENED + 13 * day) == 1


def test_nothing_is_due_before_the_first_reminder_day(
    wave, clock, django_capture_on_commit_callbacks
):
    sent(wave, ContactFactory())
    clock.shift(dt.timedelta(days=3, hours=23))
    assert due_ids(django_capture_on_commit_callbacks) == []


def test_on_the_reminder_day_only_non_responders_who_can_be_emailed_are_due(
    wave, clock, django_capture_on_commit_callbacks
):
    silent, answered, opted_out, bounced, complained = sent(wave, *ContactFactory.create_batch(5))
    ResponseFactory(invitation=answered, score=9)
    contact_opt_out(contact_id=opted_out.contact_id)
    delivery_events_record(
        events=[
            {"type": "bounce", "email": bounced.contact.email, "reason": "550 user unknown"},
            {"type": "complaint", "email": complained.contact.email},
        ]
    )
    InvitationFactory(wave=wave, status=Invitation.Status.FAILED, sent_at=None)
    clock.shift(dt.timedelta(days=4))

    assert due_ids(django_capture_on_commit_callbacks) == [silent.pk]


def test_a_reminder_is_emailed_with_a_fresh_working_link_and_a_reminder_subject(wave, clock):
    [invitation] = sent(wave, ContactFactory(email="anna@northwind.example"))
    clock.shift(dt.timedelta(days=4))

    assert reminders_send(invitation_ids=[invitation.pk]) == 1

    [message] = mail.outbox
    assert message.to == ["anna@northwind.example"]
    assert message.subject == f"Reminder: {wave.program.subject}"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = TOKEN_IN_LINK.search(message.body).group(1)
    assert invitation_for_token(token).pk == invitation.pk
    assert InvitationToken.objects.filter(invitation=invitation).count() == 1
    invitation.refresh_from_db()
    assert (invitation.reminders_sent, invitation.last_reminded_at) == (1, OPENED + 4 * DAY)


def test_running_the_reminder_twice_sends_once(wave, clock):
    [invitation] = sent(wave, ContactFactory())
    clock.shift(dt.timedelta(days=4))

    assert reminders_send(invitation_ids=[invitation.pk]) == 1
    assert reminders_send(invitation_ids=[invitation.pk]) == 0

    assert len(mail.outbox) == 1


def test_each_reminder_day_sends_one_and_never_more_than_the_maximum(
    wave, clock, django_capture_on_commit_callbacks
):
    [invitation] = sent(wave, ContactFactory())
    counts = []
    for days in (4, 5, 9, 10, 13):
        clock.move_to(OPENED + dt.timedelta(days=days))
        ids = due_ids(django_capture_on_commit_callbacks)
        counts.append(reminders_send(invitation_ids=ids) if ids else 0)

    assert counts == [1, 0, 1, 0, 0]
    assert len(mail.outbox) == 2
    invitation.refresh_from_db()
    assert invitation.reminders_sent == 2


def test_after_downtime_a_contact_owed_two_reminders_gets_one(wave, clock):
    [invitation] = sent(wave, ContactFactory())
    clock.shift(dt.timedelta(days=10))

    assert reminders_send(invitation_ids=[invitation.pk]) == 1
    assert reminders_send(invitation_ids=[invitation.pk]) == 0

    invitation.refresh_from_db()
    assert invitation.reminders_sent == 2  # counted as both: the maximum is reached
    assert len(mail.outbox) == 1


def test_an_answer_after_the_tick_stops_the_queued_reminder(wave, clock):
    [invitation] = sent(wave, ContactFactory())
    clock.shift(dt.timedelta(days=4))
    ResponseFactory(invitation=invitation, score=10)

    assert reminders_send(invitation_ids=[invitation.pk]) == 0
    assert mail.outbox == []


@pytest.mark.parametrize("stop", ["opt-out", "bounce", "complaint", "inactive"])
def test_a_contact_who_can_no_longer_be_emailed_gets_no_queued_reminder(wave, clock, stop):
    [invitation] = sent(wave, ContactFactory(email="anna@northwind.example"))
    clock.shift(dt.timedelta(days=4))
    if stop == "opt-out":
        contact_opt_out(contact_id=invitation.contact_id)
    elif stop == "inactive":
        type(invitation.contact).objects.filter(pk=invitation.contact_id).update(is_active=False)
    else:
        delivery_events_record(events=[{"type": stop, "email": "anna@northwind.example"}])

    assert reminders_send(invitation_ids=[invitation.pk]) == 0
    assert mail.outbox == []


def test_no_reminder_after_the_wave_closed(wave, clock, django_capture_on_commit_callbacks):
    [invitation] = sent(wave, ContactFactory())
    clock.shift(dt.timedelta(days=14))
    waves_close_due()
    assert Wave.objects.get(pk=wave.pk).status == Wave.Status.CLOSED

    assert due_ids(django_capture_on_commit_callbacks) == []
    assert reminders_send(invitation_ids=[invitation.pk]) == 0
    assert mail.outbox == []


def test_a_program_without_reminder_days_sends_none(
    wave, clock, django_capture_on_commit_callbacks
):
    wave.program.reminder_days = []
    wave.program.save()
    sent(wave, ContactFactory())
    clock.shift(dt.timedelta(days=10))
    assert due_ids(django_capture_on_commit_callbacks) == []


def test_a_failed_reminder_is_given_back_for_the_next_tick(wave, clock, settings):
    settings.EMAIL_BACKEND = "tests.surveys.test_sending.FlakySMTPBackend"
    from tests.surveys.test_sending import FlakySMTPBackend

    [invitation] = sent(wave, ContactFactory(email=FlakySMTPBackend.FAILING_ADDRESS))
    clock.shift(dt.timedelta(days=4))

    assert reminders_send(invitation_ids=[invitation.pk]) == 0

    invitation.refresh_from_db()
    assert (invitation.reminders_sent, invitation.last_reminded_at) == (0, None)


def test_the_reminder_tick_enqueues_batches_of_the_configured_size(
    wave, clock, settings, django_capture_on_commit_callbacks
):
    settings.NPS_SEND_BATCH_SIZE = 2
    invitations = sent(wave, *ContactFactory.create_batch(5))
    clock.shift(dt.timedelta(days=4))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert reminders_enqueue_due() == 5
    assert [len(cb.args[0]) for cb in callbacks] == [2, 2, 1]
    assert sorted(pk for cb in callbacks for pk in cb.args[0]) == sorted(i.pk for i in invitations)
