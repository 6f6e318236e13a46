"""Who may be emailed: an opted-out, bounced or complaining contact gets no more mail from any
program, and only an admin can undo that, with a log entry."""

import datetime as dt

import pytest
import time_machine
from django.contrib.admin.models import CHANGE, LogEntry
from django.core import mail
from django.urls import reverse

from nps_project import roles
from surveys.models import Contact, Invitation
from surveys.services import (
    contact_opt_out,
    delivery_events_record,
    eligible_contacts,
    invitations_send,
    reminders_send,
    token_issue,
)
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    ProgramFactory,
    UserFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 4, 15, 7, 0, tzinfo=dt.UTC)
ADMIN_CONTACTS = reverse("admin:surveys_contact_changelist")


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


@pytest.mark.parametrize("block", ["opt-out", "bounce", "complaint"])
def test_a_blocked_contact_gets_nothing_more_from_any_program(clock, block):
    anna = ContactFactory(email="anna@northwind.example")
    first, second = open_wave(reminder_days=[4]), open_wave(reminder_days=[4])
    sent = InvitationFactory(wave=first, contact=anna, sent_at=NOW)
    queued = InvitationFactory(wave=second, contact=anna, status="queued", sent_at=None)

    if block == "opt-out":
        contact_opt_out(contact_id=anna.pk)
    else:
        delivery_events_record(events=[{"type": block, "email": anna.email}])

    later = open_wave()
    assert anna not in eligible_contacts(wave=later)
    assert invitations_send(invitation_ids=[queued.pk]) == 0
    assert Invitation.objects.get(pk=queued.pk).status == "cancelled"
    clock.shift(dt.timedelta(days=4))
    assert reminders_send(invitation_ids=[sent.pk]) == 0
    assert mail.outbox == []


def test_the_one_click_post_opts_out_without_a_session_or_csrf_token(clock):
    from django.test import Client

    invitation = InvitationFactory(wave=open_wave(), sent_at=NOW)
    token = token_issue(invitation=invitation)
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        reverse("surveys:unsubscribe", args=[token]), {"List-Unsubscribe": "One-Click"}
    )

    assert response.status_code == 200
    assert Contact.objects.get(pk=invitation.contact_id).opted_out_at == NOW


def test_opening_the_unsubscribe_link_changes_nothing(client, clock):
    invitation = InvitationFactory(wave=open_wave(), sent_at=NOW)
    token = token_issue(invitation=invitation)
    assert client.get(reverse("surveys:unsubscribe", args=[token])).status_code == 200
    assert Contact.objects.get(pk=invitation.contact_id).opted_out_at is None


def test_an_admin_can_clear_a_bounce_and_it_is_logged_with_the_reason(client, admin_user):
    bounced = ContactFactory(email="anna@northwind.example")
    fine = ContactFactory()
    delivery_events_record(
        events=[{"type": "bounce", "email": bounced.email, "reason": "550 mailbox full"}]
    )
    client.force_login(admin_user)

    response = client.post(
        ADMIN_CONTACTS,
        {"action": "clear_delivery_block", "_selected_action": [bounced.pk, fine.pk]},
        follow=True,
    )

    bounced.refresh_from_db()
    assert (bounced.bounced_at, bounced.bounce_reason) == (None, "")
    assert "Cleared 1 contact(s)" in response.content.decode()
    entry = LogEntry.objects.get(object_id=str(bounced.pk))
    assert (entry.action_flag, entry.user, entry.change_message) == (
        CHANGE,
        admin_user,
        "Cleared the bounce (550 mailbox full).",
    )


def test_staff_outside_the_admin_group_cannot_clear_a_complaint(client):
    from django.contrib.auth.models import Permission

    manager = UserFactory(username="mona", role=roles.CS_MANAGER, is_staff=True)
    manager.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_contact", "change_contact"])
    )
    anna = ContactFactory(email="anna@northwind.example")
    delivery_events_record(events=[{"type": "complaint", "email": anna.email}])
    client.force_login(manager)

    assert b"clear_delivery_block" not in client.get(ADMIN_CONTACTS).content
    client.post(ADMIN_CONTACTS, {"action": "clear_delivery_block", "_selected_action": [anna.pk]})

    assert Contact.objects.get(pk=anna.pk).complained_at is not None
    assert not LogEntry.objects.exists()


def test_an_admin_can_pause_and_resume_a_program_and_it_is_logged(client, admin_user):
    program = ProgramFactory(name="Partner NPS")
    client.force_login(admin_user)
    url = reverse("admin:surveys_program_changelist")

    client.post(url, {"action": "pause", "_selected_action": [program.pk]})
    program.refresh_from_db()
    assert program.is_active is False
    client.post(url, {"action": "resume", "_selected_action": [program.pk]})
    program.refresh_from_db()
    assert program.is_active is True
    assert list(LogEntry.objects.order_by("pk").values_list("change_message", flat=True)) == [
        "Paused the schedule.",
        "Resumed the schedule.",
    ]
