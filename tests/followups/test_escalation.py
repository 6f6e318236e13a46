"""Escalation of overdue follow-ups: a beat sweep, once per rule, only on open follow-ups;
it raises the priority, emails the managers, lands on the timeline and emits a webhook."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from followups import services, tasks
from followups.models import (
    Escalation,
    EscalationRule,
    FollowUp,
    FollowUpEvent,
    StaffEmail,
)
from tests.factories import FollowUpFactory, root_cause
from webhooks.models import Delivery, Subscription

pytestmark = pytest.mark.django_db

Status = FollowUp.Status
Kind = FollowUpEvent.Kind
# Due on Monday 1 March 2027 at 10:00 UTC; the calendar works 9:00-17:00, Monday to Friday.
DUE = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def rules():
    EscalationRule.objects.all().delete()  # the seeded defaults; each test names its own
    return {
        "late": EscalationRule.objects.create(
            name="First contact overdue", position=1, hours_overdue=0, raise_priority_to="high"
        ),
        "day": EscalationRule.objects.create(
            name="A day late", position=2, hours_overdue=8, raise_priority_to="urgent"
        ),
    }


def overdue(**kwargs) -> FollowUp:
    return FollowUpFactory(due_at=DUE, **kwargs)


def sweep(at: dt.datetime) -> int:
    with time_machine.travel(at, tick=False):
        return services.followups_escalate_due()


def test_an_overdue_open_followup_is_escalated_once_per_rule(cs_manager, cs_agent):
    followup = overdue(assignee=cs_agent)
    assert sweep(DUE - dt.timedelta(minutes=1)) == 0  # not yet due
    assert sweep(DUE + dt.timedelta(hours=1)) == 1  # the first rule only
    assert sweep(DUE + dt.timedelta(hours=2)) == 0  # never twice
    followup.refresh_from_db()
    assert followup.priority == "high"
    assert list(followup.escalations.values_list("rule__name", flat=True)) == [
        "First contact overdue"
    ]
    # Eight business hours later: Monday 10:00 + 8 h = Tuesday 10:00.
    assert sweep(dt.datetime(2027, 3, 2, 9, 59, tzinfo=dt.UTC)) == 0
    assert sweep(dt.datetime(2027, 3, 2, 10, 0, tzinfo=dt.UTC)) == 1
    assert sweep(dt.datetime(2027, 3, 9, 10, 0, tzinfo=dt.UTC)) == 0
    followup.refresh_from_db()
    assert followup.priority == "urgent"
    assert Escalation.objects.filter(followup=followup).count() == 2


def test_escalation_is_recorded_on_the_timeline(cs_agent):
    followup = overdue(assignee=cs_agent)
    sweep(DUE + dt.timedelta(hours=1))
    event = followup.events.get(kind=Kind.ESCALATED)
    assert (event.old_value, event.new_value, event.actor) == ("normal", "high", None)
    assert event.note == "First contact overdue: due 2027-03-01 10:00 UTC, 1\xa0hour late."


def test_a_followup_found_long_overdue_is_escalated_once_by_the_rule_that_fits(
    cs_manager, cs_agent
):
    """Three months late at the first sweep (beat was down, or the rules are new): one
    escalation, by the "a day late" rule, one email per manager; the lesser rule is recorded as
    passed, so it never fires later with "overdue" wording of its own."""
    followup = overdue(assignee=cs_agent)
    assert sweep(DUE + dt.timedelta(days=90)) == 1
    followup.refresh_from_db()
    assert followup.priority == "urgent"
    assert set(followup.escalations.values_list("rule__name", flat=True)) == {
        "First contact overdue",
        "A day late",
    }
    [event] = followup.events.filter(kind=Kind.ESCALATED)
    assert event.note == "A day late: due 2027-03-01 10:00 UTC, 2\xa0months late."
    assert StaffEmail.objects.filter(kind="escalated").count() == 1  # maria, once
    assert sweep(DUE + dt.timedelta(days=91)) == 0


def test_escalation_emails_every_manager(cs_manager, cs_agent):
    other = type(cs_manager).objects.create(username="mia", email="mia@example.com")
    other.groups.add(*cs_manager.groups.all())
    followup = overdue(assignee=cs_agent)
    sweep(DUE + dt.timedelta(hours=1))
    emails = StaffEmail.objects.filter(kind="escalated").order_by("recipient__username")
    assert [e.recipient.username for e in emails] == ["maria", "mia"]
    for email in emails:
        services.staff_email_send(email_id=email.pk)
    assert sorted(m.to[0] for m in mail.outbox) == ["maria@example.com", "mia@example.com"]
    assert mail.outbox[0].subject == (
        f"Escalated: follow-up #{followup.pk} for {followup.partner.name} is overdue"
    )
    assert "First contact overdue" in mail.outbox[0].body


def test_escalation_never_lowers_the_priority():
    followup = overdue(priority="urgent")
    sweep(DUE + dt.timedelta(hours=1))
    followup.refresh_from_db()
    assert followup.priority == "urgent"
    event = followup.events.get(kind=Kind.ESCALATED)
    assert (event.old_value, event.new_value) == ("", "urgent")


@pytest.mark.parametrize(
    "status", [Status.LOOP_CLOSED, Status.CLOSED_NO_ACTION], ids=["loop closed", "no action"]
)
def test_a_closed_followup_is_never_escalated_however_old(status):
    followup = overdue(status=status)
    assert sweep(DUE + dt.timedelta(days=365)) == 0
    assert not Escalation.objects.exists()
    assert not followup.events.filter(kind=Kind.ESCALATED).exists()


def test_a_contacted_followup_is_not_escalated_for_first_contact():
    overdue(status=Status.CONTACTED, first_contacted_at=DUE - dt.timedelta(hours=1))
    assert sweep(DUE + dt.timedelta(days=3)) == 0


def test_a_followup_closed_before_the_sweep_locks_it_is_left_alone(rules):
    followup = overdue()
    FollowUp.objects.filter(pk=followup.pk).update(status=Status.CLOSED_NO_ACTION)
    with time_machine.travel(DUE + dt.timedelta(hours=1), tick=False):
        assert services.followup_escalate(followup_id=followup.pk, rule=rules["late"]) is False
    assert not Escalation.objects.exists()


def test_the_resolution_rule_escalates_unresolved_followups_only(cs_agent):
    EscalationRule.objects.all().delete()
    EscalationRule.objects.create(name="Resolution late", measure="resolution")
    late = overdue(
        status=Status.CONTACTED, first_contacted_at=DUE, resolution_due_at=DUE, assignee=cs_agent
    )
    resolved = overdue(
        status=Status.RESOLVED,
        first_contacted_at=DUE,
        resolution_due_at=DUE,
        root_cause=root_cause(),
        action_taken="Fixed.",
    )
    assert sweep(DUE + dt.timedelta(hours=1)) == 1
    assert late.escalations.count() == 1
    assert resolved.escalations.count() == 0


def test_the_database_refuses_a_second_escalation_by_the_same_rule(rules):
    from django.db import IntegrityError

    followup = overdue()
    Escalation.objects.create(followup=followup, rule=rules["late"])
    with pytest.raises(IntegrityError):
        Escalation.objects.create(followup=followup, rule=rules["late"])


def test_an_inactive_rule_does_not_escalate(rules):
    EscalationRule.objects.update(is_active=False)
    overdue()
    assert sweep(DUE + dt.timedelta(days=3)) == 0


def test_escalation_emits_the_overdue_webhook(cs_agent):
    Subscription.objects.create(url="https://hooks.example.com/nps", events=["followup.overdue"])
    followup = overdue(assignee=cs_agent)
    sweep(DUE + dt.timedelta(hours=1))
    delivery = Delivery.objects.get()
    assert delivery.event == "followup.overdue"
    assert delivery.payload["data"]["followup_id"] == followup.pk
    assert delivery.payload["data"]["priority"] == "high"


def test_the_beat_task_runs_the_sweep():
    overdue()
    with time_machine.travel(DUE + dt.timedelta(hours=1), tick=False):
        assert tasks.escalate_overdue_followups() == 1
        assert tasks.escalate_overdue_followups() == 0


def test_the_sweep_reads_in_a_fixed_number_of_queries(django_assert_max_num_queries):
    FollowUpFactory.create_batch(5, due_at=DUE + dt.timedelta(days=30))  # not yet due
    with time_machine.travel(DUE, tick=False):
        # rules, calendar, holidays, then one candidate query per rule: none is due.
        with django_assert_max_num_queries(5):
            assert services.followups_escalate_due() == 0
