"""Follow-ups and changes: assignment, due times, the status machine, its timeline, closing
the loop."""

import datetime as dt
import smtplib

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.utils import timezone

from followups.models import Change, FollowUp, FollowUpEvent, PartnerNotice, WorkingCalendar
from followups.services import (
    StaleFollowUpError,
    change_create,
    change_link_followups,
    change_notify_partners,
    change_ship,
    change_update_status,
    followup_assign,
    followup_log_contact,
    followup_transition,
    followups_reconcile,
    notice_send,
)
from nps_project import roles
from surveys.models import Response
from surveys.services import response_submit
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ResponseFactory,
    UserFactory,
    WaveFactory,
    root_cause,
    staff_user,
)

pytestmark = pytest.mark.django_db

Status = FollowUp.Status
Kind = FollowUpEvent.Kind


def answer(score=3, *, owner=None, partner=None, now=None, comment="Support takes days."):
    """A partner contact answers through the service, as the survey form does."""
    now = now or timezone.now()
    partner = partner or PartnerFactory(account_owner=owner)
    invitation = InvitationFactory(
        wave=WaveFactory(opens_at=now - dt.timedelta(hours=1)),
        contact=ContactFactory(partner=partner),
    )
    return response_submit(invitation_id=invitation.pk, score=score, comment=comment, now=now)


def reload(followup: FollowUp) -> FollowUp:
    return FollowUp.objects.get(pk=followup.pk)


def kinds(followup: FollowUp) -> list[str]:
    return list(followup.events.order_by("id").values_list("kind", flat=True))


@pytest.fixture
def followup(cs_agent):
    """An open follow-up of sam's partner."""
    return answer(owner=cs_agent).followup


# --- Creation and assignment -----------------------------------------------------------------


def test_a_detractor_is_assigned_to_the_partners_account_owner(cs_agent, other_agent):
    followup = answer(2, owner=cs_agent).followup

    assert followup.assignee == cs_agent
    assert followup.status == Status.OPEN
    assert followup.partner == followup.response.partner
    assigned = followup.events.get(kind=Kind.ASSIGNED)
    assert (assigned.new_value, assigned.note, assigned.actor) == ("sam", "Account owner", None)
    created = followup.events.get(kind=Kind.CREATED)
    assert created.new_value == "score 2"


def test_an_inactive_owner_hands_the_followup_to_round_robin(cs_agent, other_agent):
    cs_agent.is_active = False
    cs_agent.save()

    followup = answer(owner=cs_agent).followup

    assert followup.assignee == other_agent
    assert followup.events.get(kind=Kind.ASSIGNED).note == "Round robin"


def test_round_robin_spreads_detractors_evenly_among_cs_staff(cs_agent, other_agent, cs_manager):
    third = staff_user(username="theo")
    UserFactory(username="nobody")  # no role: never assigned

    for _ in range(6):
        answer()

    load = {u.username: u.followups.count() for u in (cs_agent, other_agent, third, cs_manager)}
    assert load == {"sam": 2, "olga": 2, "theo": 2, "maria": 0}


def test_round_robin_goes_to_whoever_has_the_fewest_open_followups(cs_agent, other_agent):
    busy = answer(owner=cs_agent).followup
    answer(owner=cs_agent)
    # A closed follow-up is no load.
    FollowUp.objects.filter(pk=busy.pk).update(status=Status.CLOSED_NO_ACTION)

    # sam has one open follow-up, olga none; on a tie, whoever was assigned longest ago.
    assert [answer().followup.assignee.username for _ in range(3)] == ["olga", "sam", "olga"]


def test_without_cs_staff_the_followup_is_left_unassigned():
    followup = answer().followup
    assert followup.assignee is None
    assert kinds(followup) == [Kind.CREATED]


def test_a_friday_detractor_is_due_on_tuesday():
    friday = dt.datetime(2027, 3, 5, 16, 30, tzinfo=dt.UTC)
    followup = answer(now=friday).followup
    assert followup.due_at == dt.datetime(2027, 3, 9, 16, 30, tzinfo=dt.UTC)
    assert followup.created_at == friday


def test_the_sla_is_configurable_in_the_working_calendar():
    WorkingCalendar.objects.update(first_contact_hours=40)  # a working week of 9:00-17:00
    monday = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
    assert answer(now=monday).followup.due_at == dt.datetime(2027, 3, 5, 17, 0, tzinfo=dt.UTC)


# --- Reconciliation --------------------------------------------------------------------------


def test_reconciliation_creates_missing_followups_once(cs_agent):
    answered = dt.datetime(2027, 3, 5, 16, 0, tzinfo=dt.UTC)  # a Friday
    with time_machine.travel(answered, tick=False):
        lost = ResponseFactory(score=4, invitation__contact__partner__account_owner=cs_agent)
        ResponseFactory(score=0)
        ResponseFactory(score=8)  # a passive needs none
    fine = answer(2)

    with time_machine.travel(answered + dt.timedelta(days=3), tick=False):
        assert followups_reconcile() == 2
        assert followups_reconcile() == 0

    assert FollowUp.objects.count() == 3
    assert not Response.objects.filter(category="detractor", followup__isnull=True).exists()
    repaired = FollowUp.objects.get(response=lost)
    assert repaired.assignee == cs_agent
    # Due when it would have been had nothing been lost: Tuesday after the Friday answer.
    assert repaired.due_at == dt.datetime(2027, 3, 9, 16, 0, tzinfo=dt.UTC)
    assert repaired.created_at == answered + dt.timedelta(days=3)
    assert kinds(repaired) == [Kind.CREATED, Kind.ASSIGNED]
    assert FollowUp.objects.get(response=fine).events.count() == 2


# --- The status machine ----------------------------------------------------------------------


def test_the_legal_path_open_contacted_planned_resolved(followup, cs_agent):
    versions = [followup.version]
    for to in (Status.CONTACTED, Status.ACTION_PLANNED):
        followup = followup_transition(followup_id=followup.pk, to=to, by=cs_agent)
        versions.append(followup.version)
    followup = followup_transition(
        followup_id=followup.pk,
        to=Status.RESOLVED,
        by=cs_agent,
        root_cause=root_cause("Support responsiveness"),
        action_taken="Added a second-level support rota for partners.",
    )
    versions.append(followup.version)

    stored = reload(followup)
    assert stored.status == Status.RESOLVED
    assert versions == [1, 2, 3, 4]
    assert stored.version == 4
    assert stored.first_contacted_at is not None
    assert stored.resolved_at is not None
    assert stored.root_cause.name == "Support responsiveness"
    assert stored.action_taken == "Added a second-level support rota for partners."
    changes = stored.events.filter(kind=Kind.STATUS).order_by("id")
    assert [(e.old_value, e.new_value, e.actor) for e in changes] == [
        ("open", "contacted", cs_agent),
        ("contacted", "planned", cs_agent),
        ("planned", "resolved", cs_agent),
    ]


@pytest.mark.parametrize(
    ("root", "action", "fields"),
    [
        (None, "", {"root_cause", "action_taken"}),
        (None, "Fixed it.", {"root_cause"}),
        ("Product quality", "   ", {"action_taken"}),
    ],
)
def test_resolving_needs_a_root_cause_and_the_action_taken(
    followup, cs_agent, root, action, fields
):
    with pytest.raises(ValidationError) as excinfo:
        followup_transition(
            followup_id=followup.pk,
            to=Status.RESOLVED,
            by=cs_agent,
            root_cause=root_cause(root) if root else None,
            action_taken=action,
        )
    assert set(excinfo.value.message_dict) == fields
    assert_unchanged(followup)


def assert_unchanged(followup: FollowUp) -> None:
    stored = reload(followup)
    assert (stored.status, stored.version, stored.root_cause, stored.action_taken) == (
        followup.status,
        followup.version,
        followup.root_cause,
        followup.action_taken,
    )
    assert stored.events.count() == followup.events.count()


def to_resolved(followup, by):
    return followup_transition(
        followup_id=followup.pk,
        to=Status.RESOLVED,
        by=by,
        root_cause=root_cause(),
        action_taken="Support rota.",
    )


def test_the_loop_cannot_be_closed_by_hand(followup, cs_agent):
    before = followup.events.count()
    with pytest.raises(ValidationError, match="partner is told"):
        followup_transition(followup_id=followup.pk, to=Status.LOOP_CLOSED, by=cs_agent)
    resolved = to_resolved(followup, cs_agent)
    with pytest.raises(ValidationError, match="partner is told"):
        followup_transition(followup_id=followup.pk, to=Status.LOOP_CLOSED, by=cs_agent)
    assert reload(resolved).status == Status.RESOLVED
    assert followup.events.count() == before + 1  # only the resolution


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([Status.RESOLVED], Status.CONTACTED),
        ([Status.RESOLVED], Status.OPEN),
        ([Status.CONTACTED], Status.OPEN),
        ([Status.CLOSED_NO_ACTION], Status.RESOLVED),
    ],
)
def test_an_illegal_transition_is_refused_and_changes_nothing(followup, cs_agent, path, illegal):
    for to in path:
        followup = followup_transition(
            followup_id=followup.pk,
            to=to,
            by=cs_agent,
            root_cause=root_cause(),
            action_taken="Support rota.",
            closed_reason="Partner left the program.",
        )
    followup = reload(followup)
    with pytest.raises(ValidationError, match="cannot go from"):
        followup_transition(followup_id=followup.pk, to=illegal, by=cs_agent)
    assert_unchanged(followup)


def test_an_unknown_status_is_refused(followup, cs_agent):
    with pytest.raises(ValidationError, match="Unknown status"):
        followup_transition(followup_id=followup.pk, to="escalated", by=cs_agent)
    assert_unchanged(followup)


def test_a_transition_to_the_current_status_is_a_noop(followup, cs_agent):
    followup_transition(followup_id=followup.pk, to=Status.OPEN, by=cs_agent)
    assert_unchanged(followup)


def test_closing_without_action_needs_a_reason_and_can_be_reopened(followup, cs_agent):
    with pytest.raises(ValidationError) as excinfo:
        followup_transition(followup_id=followup.pk, to=Status.CLOSED_NO_ACTION, by=cs_agent)
    assert set(excinfo.value.message_dict) == {"closed_reason"}
    assert_unchanged(followup)

    closed = followup_transition(
        followup_id=followup.pk,
        to=Status.CLOSED_NO_ACTION,
        by=cs_agent,
        closed_reason="  Contact left the company.  ",
    )
    assert reload(closed).closed_reason == "Contact left the company."
    reopened = followup_transition(followup_id=followup.pk, to=Status.OPEN, by=cs_agent)
    assert reload(reopened).status == Status.OPEN


# --- Who may change what ---------------------------------------------------------------------


def test_staff_cannot_change_someone_elses_followup(followup, other_agent):
    with pytest.raises(PermissionDenied):
        followup_transition(followup_id=followup.pk, to=Status.CONTACTED, by=other_agent)
    with pytest.raises(PermissionDenied):
        followup_log_contact(followup_id=followup.pk, by=other_agent, kind=Kind.NOTE, note="Hi")
    assert_unchanged(followup)


def test_someone_outside_customer_success_cannot_change_anything(followup, outsider):
    with pytest.raises(PermissionDenied):
        followup_transition(followup_id=followup.pk, to=Status.CONTACTED, by=outsider)
    assert_unchanged(followup)


def test_a_manager_can_change_anyones_followup(followup, cs_manager):
    changed = followup_transition(followup_id=followup.pk, to=Status.CONTACTED, by=cs_manager)
    assert reload(changed).status == Status.CONTACTED
    assert changed.events.get(kind=Kind.STATUS).actor == cs_manager


def test_staff_can_work_an_unassigned_followup(other_agent):
    followup = answer().followup  # olga is the only staff: round robin gives it to her
    FollowUp.objects.filter(pk=followup.pk).update(assignee=None)
    outsider_staff = staff_user(username="theo")
    changed = followup_transition(followup_id=followup.pk, to=Status.CONTACTED, by=outsider_staff)
    assert reload(changed).status == Status.CONTACTED


def test_a_stale_version_is_refused_and_changes_nothing(followup, cs_agent):
    loaded_version = followup.version
    followup_log_contact(followup_id=followup.pk, by=cs_agent, kind=Kind.NOTE, note="Called.")
    current = reload(followup)

    with pytest.raises(StaleFollowUpError):
        followup_transition(
            followup_id=followup.pk, to=Status.CONTACTED, by=cs_agent, version=loaded_version
        )
    assert_unchanged(current)
    # With the current version it goes through.
    followup_transition(
        followup_id=followup.pk, to=Status.CONTACTED, by=cs_agent, version=current.version
    )


# --- Assignment by hand ----------------------------------------------------------------------


def test_a_manager_reassigns_and_the_timeline_says_so(followup, cs_manager, other_agent):
    changed = followup_assign(followup_id=followup.pk, assignee=other_agent, by=cs_manager)
    assert reload(changed).assignee == other_agent
    event = changed.events.filter(kind=Kind.ASSIGNED).latest("id")
    assert (event.old_value, event.new_value, event.actor) == ("sam", "olga", cs_manager)


def test_staff_cannot_give_their_followup_to_someone_else(followup, cs_agent, other_agent):
    with pytest.raises(PermissionDenied):
        followup_assign(followup_id=followup.pk, assignee=other_agent, by=cs_agent)
    assert reload(followup).assignee == cs_agent


def test_staff_can_take_an_unassigned_followup(followup, other_agent):
    FollowUp.objects.filter(pk=followup.pk).update(assignee=None)
    taken = followup_assign(followup_id=followup.pk, assignee=other_agent, by=other_agent)
    assert reload(taken).assignee == other_agent


def test_a_followup_cannot_go_to_someone_outside_customer_success(followup, cs_manager, outsider):
    with pytest.raises(ValidationError, match="not on the customer-success team"):
        followup_assign(followup_id=followup.pk, assignee=outsider, by=cs_manager)
    assert_unchanged(followup)


# --- The timeline ----------------------------------------------------------------------------


def test_every_change_writes_exactly_one_event(followup, cs_agent, cs_manager, other_agent):
    def count():
        return FollowUpEvent.objects.filter(followup=followup).count()

    start = count()
    followup_log_contact(followup_id=followup.pk, by=cs_agent, kind=Kind.NOTE, note="Tried.")
    assert count() == start + 1
    followup_transition(followup_id=followup.pk, to=Status.CONTACTED, by=cs_agent)
    assert count() == start + 2
    followup_transition(followup_id=followup.pk, to=Status.ACTION_PLANNED, by=cs_agent)
    assert count() == start + 3
    followup_assign(followup_id=followup.pk, assignee=other_agent, by=cs_manager)
    assert count() == start + 4
    followup_transition(followup_id=followup.pk, to=Status.ACTION_PLANNED, by=other_agent)
    assert count() == start + 4  # no change, no event


def test_the_first_call_on_an_open_followup_is_logged_and_moves_it_to_contacted(followup, cs_agent):
    before = followup.events.count()
    changed = followup_log_contact(
        followup_id=followup.pk, by=cs_agent, kind=Kind.CALL, note="Spoke with Ines."
    )
    stored = reload(changed)
    assert stored.status == Status.CONTACTED
    assert stored.first_contacted_at is not None
    assert stored.version == 2  # one change, one version
    # Two facts, two events: the call, and the status it caused.
    assert kinds(stored)[before:] == [Kind.CALL, Kind.STATUS]


def test_an_empty_note_is_refused(followup, cs_agent):
    with pytest.raises(ValidationError):
        followup_log_contact(followup_id=followup.pk, by=cs_agent, kind=Kind.NOTE, note="   ")
    with pytest.raises(ValidationError):
        followup_log_contact(followup_id=followup.pk, by=cs_agent, kind="sms", note="Hi")
    assert_unchanged(followup)


def test_timeline_events_are_append_only(followup):
    event = followup.events.first()
    event.note = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    assert FollowUpEvent.objects.get(pk=event.pk).note == ""


# --- Changes ---------------------------------------------------------------------------------


def test_a_change_is_created_and_linked_to_followups(followup, cs_agent):
    other = answer(owner=cs_agent).followup
    change = change_create(
        title=" Faster support ",
        description="Partners now reach second-level support within four hours.",
        category=Change.Category.SUPPORT,
        by=cs_agent,
        followup_ids=[followup.pk, other.pk],
    )
    assert (change.title, change.owner, change.created_by) == ("Faster support", cs_agent, cs_agent)
    assert change.status == Change.Status.PLANNED
    assert set(change.followups.all()) == {followup, other}
    linked = FollowUpEvent.objects.filter(kind=Kind.CHANGE_LINKED)
    assert sorted(linked.values_list("followup_id", "new_value")) == sorted(
        [(followup.pk, "Faster support"), (other.pk, "Faster support")]
    )


def test_a_change_without_title_description_or_category_is_refused(cs_agent):
    with pytest.raises(ValidationError) as excinfo:
        change_create(title=" ", description="", category="magic", by=cs_agent)
    assert set(excinfo.value.message_dict) == {"title", "description", "category"}
    assert not Change.objects.exists()


def test_only_customer_success_logs_changes(outsider):
    with pytest.raises(PermissionDenied):
        change_create(title="T", description="D", category="other", by=outsider)
    assert not Change.objects.exists()


def test_linking_twice_is_a_noop(followup, cs_agent):
    change = change_create(title="T", description="D", category="other", by=cs_agent)
    assert change_link_followups(change_id=change.pk, followup_ids=[followup.pk], by=cs_agent) == 1
    assert change_link_followups(change_id=change.pk, followup_ids=[followup.pk], by=cs_agent) == 0
    assert change.followups.count() == 1
    assert followup.events.filter(kind=Kind.CHANGE_LINKED).count() == 1


@pytest.mark.parametrize("bad", [[999999], ["abc"], [None]])
def test_linking_an_unknown_followup_is_refused_and_links_nothing(followup, cs_agent, bad):
    change = change_create(title="T", description="D", category="other", by=cs_agent)
    with pytest.raises(ValidationError):
        change_link_followups(change_id=change.pk, followup_ids=[followup.pk, *bad], by=cs_agent)
    assert change.followups.count() == 0


def test_shipping_stamps_the_date_once(cs_agent):
    change = change_create(title="T", description="D", category="other", by=cs_agent)
    shipped_at = dt.datetime(2027, 5, 3, 10, 0, tzinfo=dt.UTC)
    with time_machine.travel(shipped_at, tick=False):
        change_ship(change_id=change.pk, by=cs_agent)
    change_ship(change_id=change.pk, by=cs_agent)
    change.refresh_from_db()
    assert (change.status, change.shipped_at) == (Change.Status.SHIPPED, shipped_at)
    change_update_status(change_id=change.pk, status=Change.Status.IN_PROGRESS, by=cs_agent)
    change.refresh_from_db()
    assert (change.status, change.shipped_at) == (Change.Status.IN_PROGRESS, None)


# --- Telling partners ------------------------------------------------------------------------


@pytest.fixture
def shipped_change(followup, cs_agent):
    second = answer(owner=cs_agent, comment="Deal registration is slow.").followup
    change = change_create(
        title="Faster support",
        description="Partners now reach second-level support within four hours.",
        category=Change.Category.SUPPORT,
        by=cs_agent,
        followup_ids=[followup.pk, second.pk],
    )
    change_ship(change_id=change.pk, by=cs_agent)
    return change


def test_partners_cannot_be_told_of_an_unshipped_change(followup, cs_agent):
    change = change_create(
        title="T", description="D", category="other", by=cs_agent, followup_ids=[followup.pk]
    )
    with pytest.raises(ValidationError, match="Ship the change"):
        change_notify_partners(change_id=change.pk, by=cs_agent)
    assert not PartnerNotice.objects.exists()


def test_a_change_without_followups_tells_no_one(cs_agent):
    change = change_create(title="T", description="D", category="other", by=cs_agent)
    change_ship(change_id=change.pk, by=cs_agent)
    with pytest.raises(ValidationError, match="Link the follow-ups"):
        change_notify_partners(change_id=change.pk, by=cs_agent)


def test_telling_partners_queues_one_notice_per_followup_after_commit(
    shipped_change, cs_agent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert change_notify_partners(change_id=shipped_change.pk, by=cs_agent) == 2

    notices = PartnerNotice.objects.filter(change=shipped_change)
    assert notices.count() == 2
    assert set(notices.values_list("status", flat=True)) == {PartnerNotice.Status.QUEUED}
    assert sorted(cb.args[0] for cb in callbacks) == sorted(n.pk for n in notices)
    assert mail.outbox == []  # sending is the task's job


def test_asking_twice_queues_nothing_new(
    shipped_change, cs_agent, django_capture_on_commit_callbacks
):
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert change_notify_partners(change_id=shipped_change.pk, by=cs_agent) == 0
    assert callbacks == []
    assert PartnerNotice.objects.count() == 2


def test_a_followup_linked_later_is_told_on_the_next_request(shipped_change, cs_agent):
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    late = answer(owner=cs_agent).followup
    change_link_followups(change_id=shipped_change.pk, followup_ids=[late.pk], by=cs_agent)
    assert change_notify_partners(change_id=shipped_change.pk, by=cs_agent) == 1
    assert PartnerNotice.objects.filter(followup=late).count() == 1


def test_sending_a_notice_emails_the_contact_and_closes_the_loop(
    followup, shipped_change, cs_agent
):
    to_resolved(followup, cs_agent)
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    notice = PartnerNotice.objects.get(followup=followup)
    told_at = dt.datetime(2027, 5, 4, 9, 0, tzinfo=dt.UTC)
    events_before = followup.events.count()

    with time_machine.travel(told_at, tick=False):
        assert notice_send(notice_id=notice.pk) is True

    [message] = mail.outbox
    assert message.to == [followup.response.contact.email]
    assert message.subject == "You told us, we did: Faster support"
    assert "Partners now reach second-level support within four hours." in message.body
    notice.refresh_from_db()
    assert (notice.status, notice.sent_at, notice.attempts) == ("sent", told_at, 1)
    stored = reload(followup)
    assert stored.status == Status.LOOP_CLOSED
    assert (stored.loop_closed_at, stored.loop_closed_by) == (told_at, cs_agent)
    new_events = stored.events.order_by("id")[events_before:]
    assert [(e.kind, e.new_value, e.actor) for e in new_events] == [
        (Kind.PARTNER_TOLD, "Faster support", cs_agent),
        (Kind.STATUS, Status.LOOP_CLOSED, cs_agent),
    ]


def test_a_second_send_of_the_same_notice_sends_nothing(followup, shipped_change, cs_agent):
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    notice = PartnerNotice.objects.get(followup=followup)
    assert notice_send(notice_id=notice.pk) is True
    events = followup.events.count()

    assert notice_send(notice_id=notice.pk) is False

    assert len(mail.outbox) == 1
    assert followup.events.count() == events


def test_telling_an_unresolved_followups_partner_records_it_without_closing(
    followup, shipped_change, cs_agent
):
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    notice_send(notice_id=PartnerNotice.objects.get(followup=followup).pk)

    stored = reload(followup)
    assert stored.status == Status.OPEN
    assert stored.loop_closed_at is not None
    # Once resolved, the loop can be closed by hand: the partner was told.
    to_resolved(stored, cs_agent)
    followup_transition(followup_id=followup.pk, to=Status.LOOP_CLOSED, by=cs_agent)
    assert reload(followup).status == Status.LOOP_CLOSED


def test_an_opted_out_contact_gets_no_notice_at_all(followup, shipped_change, cs_agent):
    """The preview marks them; the request queues the others only, so no notice sits failed."""
    to_resolved(followup, cs_agent)
    contact = followup.response.contact
    contact.opted_out_at = timezone.now()
    contact.save()
    assert change_notify_partners(change_id=shipped_change.pk, by=cs_agent) == 1  # the other
    assert not PartnerNotice.objects.filter(followup=followup).exists()
    stored = reload(followup)
    assert (stored.status, stored.loop_closed_at) == (Status.RESOLVED, None)


def test_a_contact_who_opts_out_after_the_notice_was_queued_gets_no_email(
    followup, shipped_change, cs_agent
):
    to_resolved(followup, cs_agent)
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    notice = PartnerNotice.objects.get(followup=followup)
    contact = followup.response.contact
    contact.complained_at = timezone.now()
    contact.save()

    assert notice_send(notice_id=notice.pk) is False

    assert mail.outbox == []
    notice.refresh_from_db()
    assert notice.status == PartnerNotice.Status.FAILED
    assert notice.last_error == "The contact opted out, bounced or complained."
    assert change_notify_partners(change_id=shipped_change.pk, by=cs_agent) == 0  # not again
    stored = reload(followup)
    assert (stored.status, stored.loop_closed_at) == (Status.RESOLVED, None)


class DisconnectingBackend(LocmemBackend):
    def send_messages(self, messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def test_a_failed_notice_is_retried_then_given_up(followup, shipped_change, cs_agent, settings):
    settings.EMAIL_BACKEND = f"{__name__}.DisconnectingBackend"
    settings.NPS_SEND_MAX_ATTEMPTS = 2
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    notice = PartnerNotice.objects.get(followup=followup)

    with pytest.raises(smtplib.SMTPServerDisconnected):  # the task retries with back-off
        notice_send(notice_id=notice.pk)
    notice.refresh_from_db()
    assert (notice.status, notice.attempts) == (PartnerNotice.Status.QUEUED, 1)
    assert notice.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"

    assert notice_send(notice_id=notice.pk) is False  # the last attempt: no more retries
    notice.refresh_from_db()
    assert (notice.status, notice.attempts) == (PartnerNotice.Status.FAILED, 2)
    assert reload(followup).loop_closed_at is None


def test_roles_are_what_the_personas_say(cs_agent, cs_manager, outsider):
    assert roles.is_cs(cs_agent) and not roles.is_cs_manager(cs_agent)
    assert roles.is_cs_manager(cs_manager)
    assert not roles.is_cs(outsider)


def test_asking_again_retries_a_failed_notice(
    followup, shipped_change, cs_agent, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = f"{__name__}.DisconnectingBackend"
    settings.NPS_SEND_MAX_ATTEMPTS = 1
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    notice = PartnerNotice.objects.get(followup=followup)
    assert notice_send(notice_id=notice.pk) is False
    notice.refresh_from_db()
    assert notice.status == PartnerNotice.Status.FAILED

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert change_notify_partners(change_id=shipped_change.pk, by=cs_agent) == 1

    notice.refresh_from_db()
    assert (notice.status, notice.attempts) == (PartnerNotice.Status.QUEUED, 0)
    assert [cb.args[0] for cb in callbacks] == [notice.pk]


def test_a_change_partners_were_told_about_stays_shipped(followup, shipped_change, cs_agent):
    to_resolved(followup, cs_agent)
    change_notify_partners(change_id=shipped_change.pk, by=cs_agent)
    notice_send(notice_id=PartnerNotice.objects.get(followup=followup).pk)
    shipped_at = Change.objects.get(pk=shipped_change.pk).shipped_at

    with pytest.raises(ValidationError, match="already told"):
        change_update_status(change_id=shipped_change.pk, status="in_progress", by=cs_agent)

    change = Change.objects.get(pk=shipped_change.pk)
    assert (change.status, change.shipped_at) == (Change.Status.SHIPPED, shipped_at)
