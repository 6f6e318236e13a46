"""Who is invited, and how invitations are sent: once, with retries, never twice."""

import datetime as dt
import re
import smtplib

import pytest
import time_machine
from django.apps import apps
from django.core import mail, serializers
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.utils import timezone

from surveys.models import Invitation, InvitationToken, PartnerType, Program, Tier, Wave
from surveys.services import (
    eligible_contacts,
    invitation_for_token,
    invitations_create,
    invitations_enqueue_due,
    invitations_send,
)
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 4, 15, 7, 0, tzinfo=dt.UTC)
TOKEN_IN_LINK = re.compile(r"/s/([A-Za-z0-9_-]{32})/")


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def program():
    return ProgramFactory(name="Partner NPS", throttle_days=30, sender_name="Acme Partner Team")


@pytest.fixture
def wave(clock, program):
    return WaveFactory(
        program=program,
        period_start=NOW.date(),
        opens_at=NOW,
        closes_at=NOW + dt.timedelta(days=14),
    )


def emails_of(contacts) -> set[str]:
    return {c.email for c in contacts}


def queued(wave, *contacts):
    return [
        InvitationFactory(wave=wave, contact=c, status=Invitation.Status.QUEUED, sent_at=None)
        for c in contacts
    ]


# --- Eligibility -----------------------------------------------------------------------------


def test_only_surveyable_contacts_of_active_partners_are_eligible(wave):
    ok = ContactFactory(email="ok@a.example.com")
    ContactFactory(email="partner-inactive@b.example.com", partner__is_active=False)
    ContactFactory(email="inactive@a.example.com", partner=ok.partner, is_active=False)
    ContactFactory(email="opted-out@a.example.com", partner=ok.partner, opted_out_at=NOW)
    ContactFactory(email="bounced@a.example.com", partner=ok.partner, bounced_at=NOW)

    assert emails_of(eligible_contacts(wave=wave)) == {"ok@a.example.com"}


def test_an_empty_audience_means_everyone(wave):
    ContactFactory(email="gold@a.example.com", partner__region="EMEA")
    ContactFactory(
        email="silver@b.example.com",
        partner__tier=Tier.objects.get(name="Silver"),
        partner__partner_type=PartnerType.objects.get(name="MSP"),
        partner__region="",
    )
    assert emails_of(eligible_contacts(wave=wave)) == {
        "gold@a.example.com",
        "silver@b.example.com",
    }


def test_the_audience_filters_by_tier_partner_type_and_region(wave, program):
    gold, platinum, silver = (Tier.objects.get(name=n) for n in ("Gold", "Platinum", "Silver"))
    reseller, msp = (PartnerType.objects.get(name=n) for n in ("Reseller", "MSP"))
    program.tiers.set([gold, platinum])
    program.partner_types.set([reseller])
    program.regions = ["emea", "Apac"]
    program.save()

    ContactFactory(email="match@a.example.com", partner__tier=gold, partner__region="EMEA")
    ContactFactory(email="match@b.example.com", partner__tier=platinum, partner__region="APAC")
    ContactFactory(email="tier@c.example.com", partner__tier=silver, partner__region="EMEA")
    ContactFactory(email="type@d.example.com", partner__partner_type=msp, partner__region="EMEA")
    ContactFactory(email="region@e.example.com", partner__region="Americas")
    ContactFactory(email="noregion@f.example.com", partner__region="")

    assert emails_of(eligible_contacts(wave=wave)) == {"match@a.example.com", "match@b.example.com"}


@pytest.mark.parametrize(
    ("days_ago", "status", "eligible"),
    [
        (10, Invitation.Status.SENT, False),
        (29, Invitation.Status.QUEUED, False),  # about to be sent: it counts
        (40, Invitation.Status.SENT, True),
        (10, Invitation.Status.CANCELLED, True),  # never reached the contact
        (10, Invitation.Status.FAILED, True),
    ],
)
def test_the_throttle_counts_invitations_from_every_program(wave, days_ago, status, eligible):
    contact = ContactFactory(email="busy@a.example.com")
    other_program_wave = WaveFactory(program=ProgramFactory(name="Onboarding survey"))
    InvitationFactory(
        wave=other_program_wave,
        contact=contact,
        status=status,
        created_at=NOW - dt.timedelta(days=days_ago),
    )
    assert (contact in eligible_contacts(wave=wave)) is eligible


def test_creating_invitations_twice_creates_no_duplicates(wave, django_capture_on_commit_callbacks):
    contacts = ContactFactory.create_batch(3)
    ContactFactory(opted_out_at=NOW)

    with django_capture_on_commit_callbacks(execute=False):
        assert invitations_create(wave=wave) == 3
        assert invitations_create(wave=wave) == 0

    assert Invitation.objects.filter(wave=wave).count() == 3
    assert set(Invitation.objects.values_list("contact_id", flat=True)) == {c.pk for c in contacts}
    assert set(Invitation.objects.values_list("status", flat=True)) == {"queued"}


def test_a_contact_added_later_is_invited_by_the_next_run(wave, django_capture_on_commit_callbacks):
    ContactFactory()
    with django_capture_on_commit_callbacks(execute=False):
        invitations_create(wave=wave)
        late = ContactFactory(email="late@a.example.com")
        assert invitations_create(wave=wave) == 1
    assert Invitation.objects.filter(wave=wave, contact=late).exists()


def test_a_closed_wave_gets_no_invitations(wave):
    ContactFactory()
    Wave.objects.filter(pk=wave.pk).update(status=Wave.Status.CLOSED)
    wave.refresh_from_db()
    assert invitations_create(wave=wave) == 0
    assert not Invitation.objects.exists()


def test_creating_invitations_enqueues_their_sending_after_commit(
    wave, django_capture_on_commit_callbacks, settings
):
    settings.NPS_SEND_BATCH_SIZE = 2
    ContactFactory.create_batch(5)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invitations_create(wave=wave)
    ids = sorted(Invitation.objects.values_list("pk", flat=True))
    assert [cb.args[0] for cb in callbacks] == [ids[0:2], ids[2:4], ids[4:5]]
    assert all(cb.func.__self__.name == "surveys.tasks.send_invitations" for cb in callbacks)


# --- Sending ---------------------------------------------------------------------------------


def test_each_invitation_is_emailed_once_with_score_links_and_one_click_unsubscribe(wave):
    ines = ContactFactory(name="Ines", email="ines@acme.example.com", partner__name="Acme")
    ben = ContactFactory(name="Ben", email="ben@beta.example.com")
    invitations = queued(wave, ines, ben)

    assert invitations_send(invitation_ids=[i.pk for i in invitations]) == 2

    assert sorted(m.to[0] for m in mail.outbox) == ["ben@beta.example.com", "ines@acme.example.com"]
    message = next(m for m in mail.outbox if m.to == ["ines@acme.example.com"])
    assert message.subject == "How likely are you to recommend us to a colleague?"
    assert message.from_email == "Acme Partner Team <nps@example.com>"
    token = TOKEN_IN_LINK.search(message.body).group(1)
    respond = f"http://127.0.0.1:8000/s/{token}/"
    assert respond in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    for score in range(11):
        assert f'href="{respond}?score={score}"' in html
    assert f"{respond}?score=11" not in html
    assert message.extra_headers["List-Unsubscribe"] == f"<{respond}unsubscribe/>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    for invitation in invitations:
        invitation.refresh_from_db()
        assert invitation.status == Invitation.Status.SENT
        assert invitation.sent_at == NOW
        assert invitation.attempts == 1
    assert invitation_for_token(token) == invitations[0]


def test_the_plain_token_from_the_email_is_in_no_database_column(wave):
    [invitation] = queued(wave, ContactFactory())
    invitations_send(invitation_ids=[invitation.pk])

    token = TOKEN_IN_LINK.search(mail.outbox[0].body).group(1)
    everything = "".join(
        serializers.serialize("json", model.objects.all())
        for model in apps.get_models()
        if model._meta.app_label in ("surveys", "followups")
    )
    assert token not in everything
    assert InvitationToken.objects.get().token_hash in everything


def test_sending_the_same_batch_again_sends_nothing(wave):
    invitations = queued(wave, *ContactFactory.create_batch(3))
    ids = [i.pk for i in invitations]

    assert invitations_send(invitation_ids=ids) == 3
    assert invitations_send(invitation_ids=ids) == 0

    assert len(mail.outbox) == 3
    assert InvitationToken.objects.count() == 3
    assert set(Invitation.objects.values_list("attempts", flat=True)) == {1}


def test_an_invitation_claimed_by_another_worker_is_not_sent(wave):
    [invitation] = queued(wave, ContactFactory())
    Invitation.objects.filter(pk=invitation.pk).update(status=Invitation.Status.SENDING)
    assert invitations_send(invitation_ids=[invitation.pk]) == 0
    assert mail.outbox == []


def test_a_contact_who_opted_out_meanwhile_is_cancelled_not_sent(wave):
    stays, leaves = ContactFactory(), ContactFactory(email="leaves@a.example.com")
    invitations = queued(wave, stays, leaves)
    leaves.opted_out_at = NOW
    leaves.save()

    assert invitations_send(invitation_ids=[i.pk for i in invitations]) == 1

    assert [m.to for m in mail.outbox] == [[stays.email]]
    cancelled = Invitation.objects.get(contact=leaves)
    assert cancelled.status == Invitation.Status.CANCELLED
    assert cancelled.last_error
    assert not cancelled.tokens.exists()


def test_an_invitation_of_a_wave_closed_meanwhile_is_cancelled(wave):
    [invitation] = queued(wave, ContactFactory())
    Wave.objects.filter(pk=wave.pk).update(status=Wave.Status.CLOSED)
    assert invitations_send(invitation_ids=[invitation.pk]) == 0
    assert mail.outbox == []
    assert Invitation.objects.get().status == Invitation.Status.CANCELLED


class FlakySMTPBackend(LocmemBackend):
    """Delivers like locmem, except to FAILING_ADDRESS, where the server hangs up."""

    FAILING_ADDRESS = "flaky@broken.example.com"
    opened = 0

    def open(self):
        FlakySMTPBackend.opened += 1
        return super().open()

    def send_messages(self, messages):
        for message in messages:
            if self.FAILING_ADDRESS in message.to:
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


@pytest.fixture
def flaky_smtp(settings):
    settings.EMAIL_BACKEND = f"{__name__}.FlakySMTPBackend"
    FlakySMTPBackend.opened = 0
    return FlakySMTPBackend


def test_a_failed_send_is_queued_again_with_a_backoff_and_the_others_are_sent(wave, flaky_smtp):
    first, flaky, last = queued(
        wave,
        ContactFactory(email="first@a.example.com"),
        ContactFactory(email=flaky_smtp.FAILING_ADDRESS),
        ContactFactory(email="last@a.example.com"),
    )

    assert invitations_send(invitation_ids=[first.pk, flaky.pk, last.pk]) == 2

    assert sorted(m.to[0] for m in mail.outbox) == ["first@a.example.com", "last@a.example.com"]
    flaky.refresh_from_db()
    assert flaky.status == Invitation.Status.QUEUED
    assert flaky.attempts == 1
    assert flaky.next_attempt_at == NOW + dt.timedelta(minutes=2)
    assert flaky.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert flaky.enqueued_at is None
    assert flaky.sent_at is None
    assert {Invitation.objects.get(pk=pk).status for pk in (first.pk, last.pk)} == {"sent"}
    # The connection was reopened after the failure for the rest of the batch.
    assert flaky_smtp.opened == 2


def test_after_the_last_attempt_a_failing_invitation_is_marked_failed(
    wave, flaky_smtp, settings, clock
):
    settings.NPS_SEND_MAX_ATTEMPTS = 3
    [flaky] = queued(wave, ContactFactory(email=flaky_smtp.FAILING_ADDRESS))

    backoffs = []
    for _ in range(3):
        invitations_send(invitation_ids=[flaky.pk])
        flaky.refresh_from_db()
        backoffs.append(flaky.next_attempt_at and flaky.next_attempt_at - timezone.now())
        clock.shift(dt.timedelta(hours=1))

    assert backoffs == [dt.timedelta(minutes=2), dt.timedelta(minutes=4), None]
    assert flaky.status == Invitation.Status.FAILED
    assert flaky.attempts == 3
    assert flaky.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert invitations_send(invitation_ids=[flaky.pk]) == 0
    assert mail.outbox == []


# --- The enqueue sweep -----------------------------------------------------------------------


def enqueued_batches(callbacks) -> list[list[int]]:
    return [cb.args[0] for cb in callbacks]


def test_the_sweep_enqueues_each_queued_invitation_once(
    wave, clock, django_capture_on_commit_callbacks
):
    invitations = queued(wave, *ContactFactory.create_batch(3))
    ids = sorted(i.pk for i in invitations)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invitations_enqueue_due() == 3
        clock.shift(dt.timedelta(minutes=1))
        assert invitations_enqueue_due() == 0

    assert enqueued_batches(callbacks) == [ids]
    assert set(Invitation.objects.values_list("enqueued_at", flat=True)) == {NOW}


def test_the_sweep_enqueues_a_row_again_when_its_task_went_missing(
    wave, clock, django_capture_on_commit_callbacks
):
    [invitation] = queued(wave, ContactFactory())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        invitations_enqueue_due()
        clock.shift(dt.timedelta(minutes=14))
        assert invitations_enqueue_due() == 0
        clock.shift(dt.timedelta(minutes=2))
        assert invitations_enqueue_due() == 1
    assert enqueued_batches(callbacks) == [[invitation.pk], [invitation.pk]]
    invitation.refresh_from_db()
    assert invitation.enqueued_at == NOW + dt.timedelta(minutes=16)


def test_the_sweep_returns_rows_stuck_sending_to_the_queue(
    wave, clock, django_capture_on_commit_callbacks
):
    stuck, busy = queued(wave, ContactFactory(), ContactFactory())
    Invitation.objects.filter(pk=stuck.pk).update(
        status=Invitation.Status.SENDING, claimed_at=NOW - dt.timedelta(minutes=20), enqueued_at=NOW
    )
    Invitation.objects.filter(pk=busy.pk).update(
        status=Invitation.Status.SENDING, claimed_at=NOW - dt.timedelta(minutes=5), enqueued_at=NOW
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invitations_enqueue_due() == 1

    assert enqueued_batches(callbacks) == [[stuck.pk]]
    stuck.refresh_from_db()
    assert (stuck.status, stuck.enqueued_at) == (Invitation.Status.QUEUED, NOW)
    assert Invitation.objects.get(pk=busy.pk).status == Invitation.Status.SENDING


def test_a_row_whose_worker_died_on_every_attempt_is_marked_failed(
    wave, clock, settings, django_capture_on_commit_callbacks
):
    settings.NPS_SEND_MAX_ATTEMPTS = 3
    [invitation] = queued(wave, ContactFactory())
    Invitation.objects.filter(pk=invitation.pk).update(
        status=Invitation.Status.SENDING, claimed_at=NOW - dt.timedelta(minutes=20), attempts=3
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invitations_enqueue_due() == 0
    assert callbacks == []
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.FAILED
    assert invitation.last_error == "The worker sending it stopped on every attempt."


def test_the_sweep_waits_for_the_backoff_of_a_failed_row(
    wave, clock, django_capture_on_commit_callbacks
):
    [invitation] = queued(wave, ContactFactory())
    Invitation.objects.filter(pk=invitation.pk).update(
        attempts=1, next_attempt_at=NOW + dt.timedelta(minutes=2)
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invitations_enqueue_due() == 0
        clock.shift(dt.timedelta(minutes=2))
        assert invitations_enqueue_due() == 1
    assert enqueued_batches(callbacks) == [[invitation.pk]]


def test_the_sweep_ignores_closed_waves_and_other_statuses(
    wave, clock, django_capture_on_commit_callbacks
):
    closed = WaveFactory(status=Wave.Status.CLOSED)
    queued(closed, ContactFactory())
    InvitationFactory(wave=wave, status=Invitation.Status.SENT)
    InvitationFactory(wave=wave, status=Invitation.Status.CANCELLED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert invitations_enqueue_due() == 0
    assert callbacks == []


def test_a_program_with_no_audience_left_sends_nothing(wave):
    assert Program.objects.count() == 1
    assert invitations_create(wave=wave) == 0
    assert not Invitation.objects.exists()


def test_a_contact_can_be_eligible_for_one_program_and_not_another(wave, program):
    PartnerFactory()  # a partner without contacts is no one to invite
    platinum_only = ProgramFactory(name="Platinum council")
    platinum_only.tiers.set([Tier.objects.get(name="Platinum")])
    council_wave = WaveFactory(program=platinum_only)
    contact = ContactFactory()
    assert list(eligible_contacts(wave=wave)) == [contact]
    assert list(eligible_contacts(wave=council_wave)) == []
