"""Per-program retention: comments and contact details older than N months are anonymised by a
daily task; scores and segments stay, so NPS figures do not move."""

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from audit.models import AuditEntry
from followups.models import FollowUpEvent
from surveys import privacy
from surveys.models import Contact, InvitationToken, Response
from surveys.services import token_issue
from surveys.tasks import apply_retention
from tests.factories import (
    FollowUpFactory,
    InvitationFactory,
    ProgramFactory,
    ResponseFactory,
    WaveFactory,
)
from webhooks.models import Delivery, Subscription

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def answered(program, *, months_ago: float, comment="Support is slow", **contact):
    when = NOW - dt.timedelta(days=30.5 * months_ago)
    wave = WaveFactory(program=program, opens_at=when - dt.timedelta(days=1))
    invitation = InvitationFactory(wave=wave, created_at=when, **contact)
    return ResponseFactory(
        invitation=invitation, submitted_at=when, comment=comment, answers={"note": "Call me"}
    )


def test_months_before_clamps_to_the_end_of_the_month():
    assert privacy.months_before(dt.datetime(2026, 3, 31, tzinfo=dt.UTC), 1).day == 28
    assert privacy.months_before(NOW, 12) == dt.datetime(2025, 6, 15, 12, tzinfo=dt.UTC)
    assert privacy.months_before(NOW, 18).year == 2024


def test_old_comments_are_blanked_and_scores_and_segments_kept():
    program = ProgramFactory(retention_months=12)
    old = answered(program, months_ago=13)
    recent = answered(program, months_ago=11)

    report = privacy.retention_apply(now=NOW)

    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.comment, old.answers) == ("", {})
    assert (old.score, old.category, old.tier, old.region) == (3, "detractor", "Gold", "EMEA")
    assert recent.comment == "Support is slow"
    assert report.responses_blanked == 1


def test_staff_notes_on_old_followups_are_blanked_and_who_did_what_when_kept(cs_agent):
    program = ProgramFactory(retention_months=12)
    old = FollowUpFactory(response=answered(program, months_ago=13), assignee=cs_agent)
    recent = FollowUpFactory(response=answered(program, months_ago=11), assignee=cs_agent)
    for followup in (old, recent):
        FollowUpEvent.objects.create(
            followup=followup, actor=cs_agent, kind="call", note="Jane said support is slow"
        )
        followup.action_taken = "Called Jane Roe at Acme"
        followup.save()

    report = privacy.retention_apply(now=NOW)

    assert report.followup_notes_blanked == 1
    call = old.events.get(kind="call")
    assert (call.note, call.actor, call.kind) == ("", cs_agent, "call")
    old.refresh_from_db()
    assert old.action_taken == ""
    assert recent.events.get(kind="call").note == "Jane said support is slow"
    recent.refresh_from_db()
    assert recent.action_taken == "Called Jane Roe at Acme"


def test_a_program_without_retention_keeps_everything():
    keeper = answered(ProgramFactory(retention_months=None), months_ago=60)
    privacy.retention_apply(now=NOW)
    keeper.refresh_from_db()
    assert keeper.comment == "Support is slow"
    assert not keeper.contact.email.endswith("anonymised.invalid")


def test_a_contact_is_anonymised_only_when_all_its_invitations_are_past_retention():
    program = ProgramFactory(retention_months=12)
    gone = answered(program, months_ago=14)
    token_issue(invitation=gone.invitation)
    still_surveyed = answered(program, months_ago=14.2)
    answered(program, months_ago=2, contact=still_surveyed.contact)
    elsewhere = answered(program, months_ago=14.4)
    answered(ProgramFactory(retention_months=None), months_ago=30, contact=elsewhere.contact)

    report = privacy.retention_apply(now=NOW)

    contact = Contact.objects.get(pk=gone.contact_id)
    assert contact.name == privacy.ANONYMISED_NAME
    assert contact.email == f"anonymised-{contact.pk}@anonymised.invalid"
    assert not contact.is_active
    assert not InvitationToken.objects.filter(invitation__contact=contact).exists()
    assert Contact.objects.get(pk=still_surveyed.contact_id).name.startswith("Contact")
    assert Contact.objects.get(pk=elsewhere.contact_id).name.startswith("Contact")
    assert report.contacts_anonymised == 1


def test_the_comment_copied_into_webhook_deliveries_is_blanked_too():
    program = ProgramFactory(retention_months=6)
    old = answered(program, months_ago=7)
    subscription = Subscription.objects.create(url="https://hooks.example.com/x", events=[])
    delivery = Delivery.objects.create(
        subscription=subscription,
        event="response.created",
        payload={"event": "response.created", "data": {"response_id": old.pk, "comment": "x"}},
    )

    privacy.retention_apply(now=NOW)

    delivery.refresh_from_db()
    assert delivery.payload["data"] == {"response_id": old.pk, "comment": ""}


def test_running_it_twice_changes_nothing_more_and_the_task_logs_the_system_run(monkeypatch):
    program = ProgramFactory(retention_months=12)
    answered(program, months_ago=13)
    monkeypatch.setattr(timezone, "now", lambda: NOW)

    first = apply_retention()
    second = apply_retention()

    assert first == {
        "responses_blanked": 1,
        "contacts_anonymised": 1,
        "deliveries_scrubbed": 0,
        "followup_notes_blanked": 0,
    }
    assert second == {
        "responses_blanked": 0,
        "contacts_anonymised": 0,
        "deliveries_scrubbed": 0,
        "followup_notes_blanked": 0,
    }
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target) == (None, "anonymise", "retention")
    assert Response.objects.get().score == 3


def test_beat_runs_the_retention_task_daily():
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-retention"]
    assert entry["task"] == "surveys.tasks.apply_retention"
    assert entry["schedule"].hour == {3}
