"""Sending at scale and safely: whole batches claimed in one statement, a rate limit kept by the
enqueue sweep (no worker sleeps), addresses validated, and no header from a name."""

import datetime as dt
import smtplib
from email import message_from_bytes, policy

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext

from surveys.models import Invitation
from surveys.services import invitation_message, invitations_enqueue_due, invitations_send
from tests.factories import ContactFactory, InvitationFactory, ProgramFactory, WaveFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 4, 15, 7, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def open_wave(**program):
    return WaveFactory(
        program=ProgramFactory(**program),
        period_start=NOW.date(),
        opens_at=NOW,
        closes_at=NOW + dt.timedelta(days=14),
    )


def queued(wave, count: int, **contact):
    return [
        InvitationFactory(
            wave=wave, contact=ContactFactory(**contact), status="queued", sent_at=None
        )
        for _ in range(count)
    ]


def released(callbacks) -> list[int]:
    ids = []
    for cb in callbacks:
        ids.extend(cb.args[0] if cb.args and isinstance(cb.args[0], list) else cb.args[0][0])
    return ids


# --- Rate limit ---------------------------------------------------------------------------


def test_a_program_rate_limit_releases_at_most_its_rate_per_minute(
    clock, django_capture_on_commit_callbacks
):
    wave = open_wave(send_rate_per_minute=4)
    queued(wave, 10)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invitations_enqueue_due() == 4
        clock.shift(dt.timedelta(seconds=20))
        assert invitations_enqueue_due() == 0  # the same minute: the budget is spent
        clock.shift(dt.timedelta(seconds=40))
        assert invitations_enqueue_due() == 4
        clock.shift(dt.timedelta(minutes=1))
        assert invitations_enqueue_due() == 2
    assert len(set(released(callbacks))) == 10


def test_rate_limited_batches_are_spread_over_the_minute_with_countdowns(
    clock, django_capture_on_commit_callbacks
):
    wave = open_wave(send_rate_per_minute=60)
    queued(wave, 60)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invitations_enqueue_due()
    countdowns = [cb.keywords["countdown"] for cb in callbacks]
    assert countdowns == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]
    assert [len(cb.args[0][0]) for cb in callbacks] == [10] * 6


def test_the_global_rate_limit_is_shared_by_all_programs(
    clock, settings, django_capture_on_commit_callbacks
):
    settings.NPS_SEND_RATE_PER_MINUTE = 5
    queued(open_wave(), 4)
    queued(open_wave(), 4)
    with django_capture_on_commit_callbacks(execute=False):
        assert invitations_enqueue_due() == 5
        clock.shift(dt.timedelta(minutes=1))
        assert invitations_enqueue_due() == 3


def test_without_a_rate_limit_everything_due_is_released_at_once(
    clock, settings, django_capture_on_commit_callbacks
):
    settings.NPS_SEND_BATCH_SIZE = 3
    queued(open_wave(), 7)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invitations_enqueue_due() == 7
    assert [len(cb.args[0]) for cb in callbacks] == [3, 3, 1]


# --- Batches --------------------------------------------------------------------------------


def test_a_batch_costs_a_fixed_number_of_queries_plus_one_per_email(clock):
    wave = open_wave()
    invitations = queued(wave, 20)
    with CaptureQueriesContext(connection) as queries:
        assert invitations_send(invitation_ids=[i.pk for i in invitations]) == 20
    # claim (1), load the batch (1), insert the tokens (1), then one "sent" UPDATE per email,
    # committed at once so a worker killed mid-batch never leaves a sent email unrecorded.
    assert len(queries) == 3 + 20
    assert len(mail.outbox) == 20


def test_two_workers_given_the_same_batch_send_each_email_once(clock):
    wave = open_wave()
    ids = [i.pk for i in queued(wave, 5)]
    assert invitations_send(invitation_ids=ids[:3]) == 3
    assert invitations_send(invitation_ids=ids) == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        Invitation.objects.values_list("contact__email", flat=True)
    )


class GoneAfterFirstBackend(LocmemBackend):
    """The server drops the connection after the first message and refuses to reconnect."""

    opened = 0

    def open(self):
        GoneAfterFirstBackend.opened += 1
        if GoneAfterFirstBackend.opened > 1:
            raise ConnectionRefusedError(111, "Connection refused")
        return super().open()

    def send_messages(self, messages):
        if mail.outbox:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


def test_when_the_server_goes_away_mid_batch_the_untried_rest_goes_back_to_the_queue(
    clock, settings
):
    settings.EMAIL_BACKEND = f"{__name__}.GoneAfterFirstBackend"
    GoneAfterFirstBackend.opened = 0
    first, failed, *rest = queued(open_wave(), 4)

    assert invitations_send(invitation_ids=[first.pk, failed.pk, *(i.pk for i in rest)]) == 1

    rows = {i.pk: i for i in Invitation.objects.all()}
    assert rows[first.pk].status == "sent"
    assert (rows[failed.pk].status, rows[failed.pk].attempts) == ("queued", 1)
    for invitation in rest:
        row = rows[invitation.pk]
        assert (row.status, row.attempts, row.enqueued_at) == ("queued", 0, None)
        assert row.next_attempt_at == NOW + dt.timedelta(minutes=2)
        assert row.last_error == "Not tried: the mail server went away (SMTPServerDisconnected)."


# --- Addresses and headers ------------------------------------------------------------------


def test_an_invalid_address_fails_at_once_with_the_reason_and_is_not_retried(clock):
    wave = open_wave()
    [bad] = queued(wave, 1)
    type(bad.contact).objects.filter(pk=bad.contact_id).update(email="anna@@northwind")

    assert invitations_send(invitation_ids=[bad.pk]) == 0

    bad.refresh_from_db()
    assert bad.status == "failed"
    assert bad.last_error == "Invalid email address: 'anna@@northwind'."
    assert mail.outbox == []


def test_an_address_with_a_line_break_is_refused(clock):
    [bad] = queued(open_wave(), 1)
    type(bad.contact).objects.filter(pk=bad.contact_id).update(
        email="anna@northwind.example\nBcc: x@evil.example"
    )
    assert invitations_send(invitation_ids=[bad.pk]) == 0
    bad.refresh_from_db()
    assert (bad.status, bad.last_error) == ("failed", "The email address contains a line break.")


def test_a_name_with_a_newline_creates_no_header_in_the_real_message_bytes(clock):
    wave = open_wave(
        sender_name="Acme\r\nBcc: sender@evil.example", subject="How are we doing?\r\nX-Evil: 1"
    )
    [invitation] = queued(wave, 1, name="Anna\r\nBcc: victim@evil.example\r\nX-Injected: yes")
    token = "A" * 32

    raw = invitation_message(invitation=invitation, token=token).message().as_bytes()

    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None and parsed["X-Evil"] is None
    assert parsed["To"] == invitation.contact.email
    assert parsed["Subject"] == "How are we doing? X-Evil: 1"
    assert parsed["From"].addresses[0].display_name == "Acme Bcc: sender@evil.example"
    header_block = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in header_block and b"\nX-Injected" not in header_block
