"""Writes for follow-ups and changes. Each state change writes its timeline event in the same
transaction; views, tasks and commands call these functions, never the models directly."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from smtplib import SMTPException

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from nps_project import roles
from surveys.models import Invitation, Partner, Response, Wave
from surveys.tokens import hash_token, looks_like_token, new_token
from webhooks import payloads

from .models import (
    PRIORITY_RANK,
    Change,
    Escalation,
    EscalationRule,
    FollowUp,
    FollowUpEvent,
    FollowUpRule,
    PartnerNotice,
    PartnerPageToken,
    RootCause,
    StaffEmail,
    WorkingCalendar,
)
from .sla import Calendar, add_business_hours

logger = logging.getLogger(__name__)
User = get_user_model()

Status = FollowUp.Status

# Which status may follow which. "Loop closed" is reached only by telling the partner.
TRANSITIONS: dict[str, set[str]] = {
    Status.OPEN: {
        Status.CONTACTED,
        Status.ACTION_PLANNED,
        Status.RESOLVED,
        Status.CLOSED_NO_ACTION,
    },
    Status.CONTACTED: {Status.ACTION_PLANNED, Status.RESOLVED, Status.CLOSED_NO_ACTION},
    Status.ACTION_PLANNED: {Status.CONTACTED, Status.RESOLVED, Status.CLOSED_NO_ACTION},
    Status.RESOLVED: {Status.ACTION_PLANNED, Status.LOOP_CLOSED},
    Status.LOOP_CLOSED: set(),
    Status.CLOSED_NO_ACTION: {Status.OPEN},
}


class StaleFollowUpError(Exception):
    """Someone else changed the follow-up since the form was loaded."""


def _emit(event: str, build) -> None:
    """Emit a webhook event from inside the caller's transaction (sent after commit)."""
    from webhooks.services import event_emit

    event_emit(event=event, payload=build())


def _queue_staff_emails(followup: FollowUp, event: FollowUpEvent, recipients, *, kind: str):
    """One email per recipient about ``event``, sent by a task after commit."""
    from . import tasks

    rows = StaffEmail.objects.bulk_create(
        [
            StaffEmail(followup=followup, event=event, recipient=user, kind=kind)
            for user in recipients
            if user is not None and user.email
        ]
    )
    for row in rows:
        tasks.send_staff_email.delay_on_commit(row.pk)


# --- Creation and assignment ----------------------------------------------------------------


def followup_pick_assignee(
    *, partner, strategy: str = FollowUpRule.Strategy.ACCOUNT_OWNER, user=None
) -> User | None:
    """Who gets a new follow-up.

    - a named person (rule strategy "user"): that person if active, else as for the account owner;
    - the account owner, if active; else
    - round robin: the active CS staff member with the fewest open follow-ups (ties: the one
      assigned longest ago, then the oldest account).
    """
    Strategy = FollowUpRule.Strategy
    if strategy == Strategy.USER and user is not None and user.is_active:
        return user
    if strategy != Strategy.ROUND_ROBIN:
        owner = partner.account_owner
        if owner is not None and owner.is_active:
            return owner
    return (
        User.objects.filter(is_active=True, groups__name=roles.CS_STAFF)
        .annotate(
            open_load=Count("followups", filter=Q(followups__status__in=FollowUp.OPEN_STATUSES)),
            last_assigned=Max("followups__created_at"),
        )
        .order_by("open_load", F("last_assigned").asc(nulls_first=True), "pk")
        .first()
    )


def _assignment_note(assignee, partner, strategy: str) -> str:
    if assignee.pk == partner.account_owner_id:
        return _("Account owner")
    if strategy == FollowUpRule.Strategy.USER:
        return _("Named by the rule")
    return _("Round robin")


# --- Rules and the working calendar ---------------------------------------------------------


@dataclass(frozen=True)
class Sla:
    calendar: Calendar
    first_contact_hours: int
    resolution_hours: int


def working_sla() -> Sla:
    """The working calendar in use (the first one) with its default SLA hours."""
    row = WorkingCalendar.objects.order_by("pk").first()
    if row is None:
        return Sla(Calendar(), 16, 80)
    calendar = Calendar(
        time_zone=row.time_zone,
        working_days=frozenset(row.working_days or [0, 1, 2, 3, 4]),
        day_starts=row.day_starts,
        day_ends=row.day_ends,
        holidays=frozenset(row.holidays.values_list("date", flat=True)),
    )
    return Sla(calendar, row.first_contact_hours, row.resolution_hours)


def active_rules() -> list[FollowUpRule]:
    return list(
        FollowUpRule.objects.filter(is_active=True)
        .select_related("assignee")
        .prefetch_related("tiers")
        .order_by("position", "pk")
    )


def rule_matches(rule: FollowUpRule, response: Response) -> bool:
    """Every condition the rule sets holds for the response. Reads only prefetched tiers."""
    if rule.category and response.category != rule.category:
        return False
    if rule.score_min is not None and response.score < rule.score_min:
        return False
    if rule.score_max is not None and response.score > rule.score_max:
        return False
    tiers = {t.name.lower() for t in rule.tiers.all()}
    if tiers and (response.tier or "").lower() not in tiers:
        return False
    comment = (response.comment or "").lower()
    if rule.requires_comment and not comment.strip():
        return False
    keywords = rule.keyword_list
    if keywords and not any(k in comment for k in keywords):
        return False
    if rule.requires_wants_contact and not getattr(response, "wants_contact", False):
        return False
    return True


def rule_for_response(response: Response, rules: list[FollowUpRule] | None = None):
    """The first active rule (by position) that matches, or None."""
    for rule in active_rules() if rules is None else rules:
        if rule_matches(rule, response):
            return rule
    return None


# --- Creation -------------------------------------------------------------------------------


def _followup_create(
    *,
    partner,
    invitation_id: int,
    kind: str,
    response: Response | None = None,
    rule: FollowUpRule | None = None,
    priority: str,
    sla_from: dt.datetime,
    now: dt.datetime,
    created_note: str,
) -> FollowUp:
    """Create one follow-up with its "created" and "assigned" events, queue the assignee's email
    and emit ``followup.created``. Runs inside the caller's transaction."""
    strategy = rule.assignee_strategy if rule else FollowUpRule.Strategy.ACCOUNT_OWNER
    assignee = followup_pick_assignee(
        partner=partner, strategy=strategy, user=rule.assignee if rule else None
    )
    sla = working_sla()
    first_hours = (
        rule.first_contact_hours
        if rule and rule.first_contact_hours is not None
        else sla.first_contact_hours
    )
    resolution_hours = (
        rule.resolution_hours
        if rule and rule.resolution_hours is not None
        else sla.resolution_hours
    )
    followup = FollowUp.objects.create(
        kind=kind,
        response=response,
        invitation_id=invitation_id,
        partner=partner,
        rule=rule,
        assignee=assignee,
        priority=priority,
        due_at=add_business_hours(sla_from, first_hours, sla.calendar),
        resolution_due_at=add_business_hours(sla_from, resolution_hours, sla.calendar),
        created_at=now,
    )
    FollowUpEvent.objects.create(
        followup=followup,
        kind=FollowUpEvent.Kind.CREATED,
        new_value=created_note,
        note=_("Rule: %(name)s") % {"name": rule.name} if rule else "",
        created_at=now,
    )
    if assignee is not None:
        event = FollowUpEvent.objects.create(
            followup=followup,
            kind=FollowUpEvent.Kind.ASSIGNED,
            new_value=assignee.get_username(),
            note=_assignment_note(assignee, partner, strategy),
            created_at=now,
        )
        _queue_staff_emails(followup, event, [assignee], kind=StaffEmail.Kind.ASSIGNED)
    _emit("followup.created", lambda: payloads.followup_data(followup))
    return followup


def _note_answer_of_silent_contact(response: Response, now: dt.datetime) -> None:
    """A key contact answered after their "no response" follow-up was made: say so on it."""
    for followup in FollowUp.objects.filter(
        invitation_id=response.invitation_id, kind=FollowUp.Kind.NO_RESPONSE
    ):
        FollowUpEvent.objects.create(
            followup=followup,
            kind=FollowUpEvent.Kind.ANSWERED,
            new_value=f"score {response.score}",
            note=response.comment,
            created_at=now,
        )


def followups_link_next_response(*, response: Response) -> int:
    """Link ``response`` as the next answer of the contact's earlier follow-ups that have none
    (for recovery figures). Returns how many were linked."""
    return (
        FollowUp.objects.filter(
            kind=FollowUp.Kind.RESPONSE,
            response__contact_id=response.contact_id,
            response__submitted_at__lt=response.submitted_at,
            next_response__isnull=True,
        )
        .exclude(response__wave_id=response.wave_id)
        .update(next_response=response)
    )


def followup_for_response(
    *,
    response: Response,
    revised_from: int | None = None,
    now: dt.datetime | None = None,
    sla_from: dt.datetime | None = None,
    repair: bool = False,
) -> FollowUp | None:
    """Give a response its one follow-up if a rule (or being a detractor) calls for one.

    Ordered rules, first match wins; a detractor that no rule matches still gets a follow-up
    with the calendar's default SLA. Idempotent: a second call for the same response returns the
    existing follow-up (and notes a revised answer on it: ``revised_from`` is the score before the
    revision). Called by ``surveys.services.response_settle`` and by the reconciliation sweep.
    On a first answer it also notes the answer on a "no response" follow-up of the same
    invitation, and links the answer as the next response of the contact's earlier follow-ups
    (not when ``repair``-ing: that was done then). Due times count in business hours from
    ``sla_from`` (default ``now``), so a follow-up repaired or settled late is due when it would
    have been.
    """
    now = now or timezone.now()
    sla_from = sla_from or now
    existing = FollowUp.objects.filter(response=response).first()
    if existing is not None:
        if revised_from is not None:
            FollowUpEvent.objects.create(
                followup=existing,
                kind=FollowUpEvent.Kind.RESPONSE_EDITED,
                old_value=str(revised_from),
                new_value=str(response.score),
                note=response.comment,
                created_at=now,
            )
        return existing
    if revised_from is None and not repair:
        _note_answer_of_silent_contact(response, now)
        followups_link_next_response(response=response)
    rule = rule_for_response(response)
    if rule is None and response.category != Response.Category.DETRACTOR:
        return None
    if rule is not None:
        priority = rule.priority
    else:
        priority = FollowUp.Priority.HIGH if response.score <= 3 else FollowUp.Priority.NORMAL
    with transaction.atomic():
        return _followup_create(
            partner=response.partner,
            invitation_id=response.invitation_id,
            kind=FollowUp.Kind.RESPONSE,
            response=response,
            rule=rule,
            priority=priority,
            sla_from=sla_from,
            now=now,
            created_note=f"score {response.score}",
        )


def followups_reconcile(*, limit: int = 1000) -> int:
    """Create the follow-up of every detractor response that lacks one (up to ``limit`` per run).
    Returns how many were created.

    The ids are read first: iterating a cursor over the table being repaired is undefined on
    SQLite. Each repair has its own transaction; one that a concurrent settle got to first is
    skipped. Answers not settled yet are ``surveys.services.responses_settle_pending``'s.
    """
    missing = list(
        Response.objects.filter(
            category=Response.Category.DETRACTOR,
            followup__isnull=True,
            settle_state=Response.SettleState.DONE,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    repaired = 0
    for response_id in missing:
        try:
            with transaction.atomic():
                response = Response.objects.select_related("partner__account_owner").get(
                    pk=response_id
                )
                if FollowUp.objects.filter(response=response).exists():
                    continue
                # The answer became a detractor at its last save: the SLA counts from then.
                followup_for_response(response=response, sla_from=response.updated_at, repair=True)
                repaired += 1
        except IntegrityError:
            continue
    if repaired:
        logger.warning("Reconciliation created %s missing follow-ups", repaired)
    return repaired


# --- Permissions ----------------------------------------------------------------------------


def can_edit_followup(user, followup: FollowUp) -> bool:
    """Managers edit any follow-up; staff those assigned to them or unassigned."""
    if roles.is_cs_manager(user):
        return True
    return roles.is_cs(user) and followup.assignee_id in (None, user.pk)


def _locked(followup_id: int, *, by, version: int | None) -> FollowUp:
    followup = FollowUp.objects.select_for_update().select_related("partner").get(pk=followup_id)
    if not can_edit_followup(by, followup):
        raise PermissionDenied(_("You can only change follow-ups assigned to you or unassigned."))
    if version is not None and version != followup.version:
        raise StaleFollowUpError(
            _(
                "Someone else changed this follow-up while you were looking at it. "
                "Your change was not saved; here is the current state."
            )
        )
    return followup


def _bump(followup: FollowUp, *fields: str) -> None:
    followup.version = F("version") + 1
    followup.save(update_fields=[*fields, "version", "updated_at"])
    followup.refresh_from_db(fields=["version"])


# --- Work on a follow-up --------------------------------------------------------------------


@transaction.atomic
def followup_assign(
    *, followup_id: int, assignee: User | None, by, version: int | None = None
) -> FollowUp:
    """Give the follow-up to ``assignee`` (None: unassign). Managers may reassign anything;
    staff may take an unassigned follow-up for themselves."""
    followup = _locked(followup_id, by=by, version=version)
    if followup.assignee_id == (assignee.pk if assignee else None):
        return followup
    if not roles.is_cs_manager(by) and (assignee is None or assignee.pk != by.pk):
        raise PermissionDenied(_("Only a manager can give a follow-up to someone else."))
    if assignee is not None and not roles.is_cs(assignee):
        raise ValidationError(
            _("%(name)s is not on the customer-success team.") % {"name": assignee.get_username()}
        )
    old = followup.assignee.get_username() if followup.assignee else ""
    followup.assignee = assignee
    _bump(followup, "assignee")
    event = FollowUpEvent.objects.create(
        followup=followup,
        actor=by,
        kind=FollowUpEvent.Kind.ASSIGNED,
        old_value=old,
        new_value=assignee.get_username() if assignee else "",
    )
    if assignee is not None and assignee.pk != by.pk:
        _queue_staff_emails(followup, event, [assignee], kind=StaffEmail.Kind.ASSIGNED)
    return followup


@transaction.atomic
def followups_bulk_assign(*, followup_ids, assignee: User | None, by) -> int:
    """A manager gives many follow-ups to ``assignee`` at once, each reassignment logged on its
    timeline. All or nothing: an unknown follow-up refuses the whole batch. Returns how many
    changed hands."""
    if not roles.is_cs_manager(by):
        raise PermissionDenied(_("Only a manager can reassign follow-ups."))
    try:
        wanted = sorted({int(pk) for pk in followup_ids})
    except (TypeError, ValueError):
        raise ValidationError(_("Follow-ups are named by their numbers.")) from None
    if not wanted:
        raise ValidationError(_("Choose at least one follow-up."))
    found = set(FollowUp.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if missing := [pk for pk in wanted if pk not in found]:
        raise ValidationError(
            _("Unknown follow-up: %(ids)s") % {"ids": ", ".join(map(str, missing))}
        )
    changed = 0
    for pk in wanted:
        before = FollowUp.objects.filter(pk=pk).values_list("assignee_id", flat=True).get()
        followup_assign(followup_id=pk, assignee=assignee, by=by)
        changed += before != (assignee.pk if assignee else None)
    return changed


@transaction.atomic
def followup_log_contact(
    *, followup_id: int, by, kind: str, note: str, version: int | None = None
) -> FollowUp:
    """Log a call, an email or a note. A call or email is the first contact if none was logged;
    an open follow-up then moves to "contacted"."""
    if kind not in (FollowUpEvent.Kind.NOTE, FollowUpEvent.Kind.CALL, FollowUpEvent.Kind.EMAIL):
        raise ValidationError(_("Unknown kind of entry."))
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": _("Write what was said or done.")})
    followup = _locked(followup_id, by=by, version=version)
    FollowUpEvent.objects.create(followup=followup, actor=by, kind=kind, note=note)
    fields = []
    if kind != FollowUpEvent.Kind.NOTE and followup.first_contacted_at is None:
        followup.first_contacted_at = timezone.now()
        fields.append("first_contacted_at")
        if followup.status == Status.OPEN:
            FollowUpEvent.objects.create(
                followup=followup,
                actor=by,
                kind=FollowUpEvent.Kind.STATUS,
                old_value=Status.OPEN,
                new_value=Status.CONTACTED,
            )
            followup.status = Status.CONTACTED
            fields.append("status")
    _bump(followup, *fields)
    if "status" in fields:
        _emit(
            "followup.status_changed",
            lambda: payloads.status_change_data(followup, old_status=Status.OPEN, by=by),
        )
    return followup


@transaction.atomic
def followup_transition(
    *,
    followup_id: int,
    to: str,
    by,
    note: str = "",
    root_cause: RootCause | None = None,
    action_taken: str = "",
    closed_reason: str = "",
    version: int | None = None,
) -> FollowUp:
    """Move a follow-up to status ``to``. A transition to the current status is a no-op.

    Resolving needs a root cause and the action taken; closing without action needs a reason;
    "loop closed" is reached through ``notice_send`` (the partner was told), never by hand.
    """
    followup = _locked(followup_id, by=by, version=version)
    if followup.status == to:
        return followup
    if to not in Status.values:
        raise ValidationError(_("Unknown status."))
    if to == Status.LOOP_CLOSED and followup.loop_closed_at is None:
        raise ValidationError(
            _(
                "The loop is closed when the partner is told what changed: link this follow-up "
                "to a shipped change and send the partner email."
            )
        )
    if to not in TRANSITIONS[followup.status]:
        raise ValidationError(
            _("A follow-up cannot go from “%(old)s” to “%(new)s”.")
            % {"old": followup.get_status_display(), "new": Status(to).label}
        )
    fields = ["status"]
    if to == Status.RESOLVED:
        action_taken = (action_taken or "").strip()
        errors = {}
        if root_cause is None:
            errors["root_cause"] = _("Choose the root cause.")
        if not action_taken:
            errors["action_taken"] = _("Describe the action taken.")
        if errors:
            raise ValidationError(errors)
        followup.root_cause, followup.action_taken = root_cause, action_taken
        followup.resolved_at = timezone.now()
        fields += ["root_cause", "action_taken", "resolved_at"]
    if to == Status.CLOSED_NO_ACTION:
        closed_reason = (closed_reason or "").strip()
        if not closed_reason:
            raise ValidationError({"closed_reason": _("Say why no action is needed.")})
        followup.closed_reason = closed_reason
        fields.append("closed_reason")
    if to == Status.CONTACTED and followup.first_contacted_at is None:
        followup.first_contacted_at = timezone.now()
        fields.append("first_contacted_at")
    FollowUpEvent.objects.create(
        followup=followup,
        actor=by,
        kind=FollowUpEvent.Kind.STATUS,
        old_value=followup.status,
        new_value=to,
        note=(note or action_taken or closed_reason or "").strip(),
    )
    old_status = followup.status
    followup.status = to
    _bump(followup, *fields)
    _emit(
        "followup.status_changed",
        lambda: payloads.status_change_data(followup, old_status=old_status, by=by),
    )
    return followup


# --- Changes --------------------------------------------------------------------------------


def _check_can_log_changes(by) -> None:
    if not roles.is_cs(by):
        raise PermissionDenied(_("Only customer-success staff can log changes."))


@transaction.atomic
def change_create(
    *, title: str, description: str, category: str, by, owner=None, followup_ids=()
) -> Change:
    _check_can_log_changes(by)
    title, description = (title or "").strip(), (description or "").strip()
    errors = {}
    if not title:
        errors["title"] = _("Give the change a title.")
    if not description:
        errors["description"] = _("Describe what changed: partners will read it.")
    if category not in Change.Category.values:
        errors["category"] = _("Choose a category.")
    if owner is not None and not roles.is_cs(owner):
        errors["owner"] = _("%(name)s is not on the customer-success team.") % {
            "name": owner.get_username()
        }
    if errors:
        raise ValidationError(errors)
    change = Change.objects.create(
        title=title, description=description, category=category, owner=owner or by, created_by=by
    )
    if followup_ids:
        change_link_followups(change_id=change.pk, followup_ids=followup_ids, by=by)
    return change


@transaction.atomic
def change_link_followups(*, change_id: int, followup_ids, by) -> int:
    """Link follow-ups to a change; linking one twice is a no-op. Returns how many were new."""
    _check_can_log_changes(by)
    change = Change.objects.select_for_update().get(pk=change_id)
    try:
        wanted = {int(pk) for pk in followup_ids}
    except (TypeError, ValueError):
        raise ValidationError(_("Follow-ups are named by their numbers.")) from None
    found = set(FollowUp.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    if wanted - found:
        raise ValidationError(
            _("Unknown follow-up: %(ids)s") % {"ids": ", ".join(map(str, sorted(wanted - found)))}
        )
    already = set(change.followups.filter(pk__in=wanted).values_list("pk", flat=True))
    new = sorted(wanted - already)
    change.followups.add(*new)
    FollowUpEvent.objects.bulk_create(
        [
            FollowUpEvent(
                followup_id=pk,
                actor=by,
                kind=FollowUpEvent.Kind.CHANGE_LINKED,
                new_value=change.title[:200],
            )
            for pk in new
        ]
    )
    return len(new)


@transaction.atomic
def change_update_status(*, change_id: int, status: str, by) -> Change:
    """Move a change between planned, in progress and shipped; shipping stamps the date."""
    _check_can_log_changes(by)
    if status not in Change.Status.values:
        raise ValidationError({"status": _("Unknown status.")})
    change = Change.objects.select_for_update().get(pk=change_id)
    if change.status == status:
        return change
    if change.notices.filter(status=PartnerNotice.Status.SENT).exists():
        raise ValidationError(
            {"status": _("Partners were already told this change shipped; it stays shipped.")}
        )
    change.status = status
    change.shipped_at = timezone.now() if status == Change.Status.SHIPPED else None
    change.save(update_fields=["status", "shipped_at", "updated_at"])
    if status == Change.Status.SHIPPED:
        _emit("change.shipped", lambda: payloads.change_data(change))
    return change


def change_ship(*, change_id: int, by) -> Change:
    return change_update_status(change_id=change_id, status=Change.Status.SHIPPED, by=by)


def notice_recipients(change: Change):
    """The follow-ups of a change whose partner can be told: not yet told of this change."""
    return (
        change.followups.exclude(notices__change=change, notices__status=PartnerNotice.Status.SENT)
        .select_related("response", "invitation__contact", "invitation__wave__program", "partner")
        .order_by("partner__name")
    )


# A follow-up whose contact can be emailed: not opted out, bounced or complained.
_EMAILABLE_CONTACT = Q(
    invitation__contact__opted_out_at__isnull=True,
    invitation__contact__bounced_at__isnull=True,
    invitation__contact__complained_at__isnull=True,
)


def contact_can_be_told(contact) -> bool:
    """Whether a "you told us, we did" email may go to ``contact``."""
    return (
        contact.opted_out_at is None
        and contact.bounced_at is None
        and (contact.complained_at is None)
    )


@transaction.atomic
def change_notify_partners(*, change_id: int, by) -> int:
    """Queue the "you told us, we did" email to every linked follow-up's contact.

    Only for a shipped change. One notice per change and follow-up (a constraint): asking twice
    queues nothing new, except that failed notices are queued again. A contact who opted out,
    bounced or complained gets none (the preview says so; staff tell them another way and close
    the loop by hand). Sending happens in Celery after commit. Returns how many were queued.
    """
    _check_can_log_changes(by)
    change = Change.objects.select_for_update().get(pk=change_id)
    if change.status != Change.Status.SHIPPED:
        raise ValidationError(_("Ship the change before telling partners about it."))
    if not change.followups.exists():
        raise ValidationError(_("Link the follow-ups this change answers first."))
    followup_ids = list(change.followups.filter(_EMAILABLE_CONTACT).values_list("pk", flat=True))
    # Only follow-ups without a notice of this change get one: a notice already queued is in the
    # hands of its task (and of the stale sweep), so asking twice enqueues nothing new.
    told = set(
        PartnerNotice.objects.filter(change=change, followup_id__in=followup_ids).values_list(
            "followup_id", flat=True
        )
    )
    new_ids = [pk for pk in followup_ids if pk not in told]
    PartnerNotice.objects.bulk_create(
        [PartnerNotice(change=change, followup_id=pk, requested_by=by) for pk in new_ids],
        ignore_conflicts=True,
    )
    # A notice that failed (its retries ran out) is tried again when staff ask again.
    failed = list(
        PartnerNotice.objects.filter(
            change=change, status=PartnerNotice.Status.FAILED, followup_id__in=followup_ids
        ).values_list("pk", flat=True)
    )
    PartnerNotice.objects.filter(pk__in=failed).update(
        status=PartnerNotice.Status.QUEUED, attempts=0, requested_by=by
    )
    queued = list(
        PartnerNotice.objects.filter(
            Q(followup_id__in=new_ids) | Q(pk__in=failed),
            change=change,
            status=PartnerNotice.Status.QUEUED,
        ).values_list("pk", flat=True)
    )
    from . import tasks

    for pk in queued:
        tasks.send_partner_notice.delay_on_commit(pk)
    return len(queued)


def notice_message(notice: PartnerNotice, connection=None, partner_page_url: str = ""):
    """The partner email of one notice. ``partner_page_url`` is the personal link to the
    partner's "you told us, we did" page (issued by ``notice_send``; a preview passes none)."""
    from nps_project.emailing import render_email, sender
    from surveys.services import supported_language

    invitation = notice.followup.invitation
    contact = invitation.contact
    program = invitation.wave.program
    context = {
        "contact": contact,
        "partner": notice.followup.partner,
        "program": program,
        "change": notice.change,
        "response": notice.followup.response,
        "partner_page_url": partner_page_url,
    }
    with translation.override(supported_language(contact.language)):
        return render_email(
            "partner_notice",
            context,
            to=contact.email,
            from_email=sender(program.sender_name),
            connection=connection,
        )


def notice_send(*, notice_id: int) -> bool:
    """Email one partner notice and close its follow-up's loop. Returns True if sent now.

    Claims the notice (queued -> sending) first, so a task delivered twice sends once. After the
    email, in one transaction: the notice is marked sent, and the follow-up records that its
    partner was told, moving to "loop closed" if it was resolved.
    """
    claimed = PartnerNotice.objects.filter(pk=notice_id, status=PartnerNotice.Status.QUEUED).update(
        status=PartnerNotice.Status.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return False
    notice = PartnerNotice.objects.select_related(
        "change",
        "followup__partner",
        "followup__response",
        "followup__invitation__contact",
        "followup__invitation__wave__program",
        "requested_by",
    ).get(pk=notice_id)
    contact = notice.followup.invitation.contact
    if not contact_can_be_told(contact):  # opted out after the notice was queued
        PartnerNotice.objects.filter(pk=notice_id).update(
            status=PartnerNotice.Status.FAILED,
            last_error="The contact opted out, bounced or complained.",
        )
        return False
    page_url = partner_page_url(partner_page_token_issue(partner_id=notice.followup.partner_id))
    try:
        notice_message(notice, partner_page_url=page_url).send()
    except (SMTPException, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        if notice.attempts >= settings.NPS_SEND_MAX_ATTEMPTS:
            # Give up: without this the stale sweep would queue the notice again forever.
            logger.warning("Partner notice %s failed for good: %s", notice_id, reason)
            PartnerNotice.objects.filter(pk=notice_id).update(
                status=PartnerNotice.Status.FAILED, last_error=reason
            )
            return False
        PartnerNotice.objects.filter(pk=notice_id).update(
            status=PartnerNotice.Status.QUEUED, last_error=reason
        )
        raise
    now = timezone.now()
    with transaction.atomic():
        PartnerNotice.objects.filter(pk=notice_id).update(
            status=PartnerNotice.Status.SENT, sent_at=now, last_error=""
        )
        followup = FollowUp.objects.select_for_update().get(pk=notice.followup_id)
        FollowUpEvent.objects.create(
            followup=followup,
            actor=notice.requested_by,
            kind=FollowUpEvent.Kind.PARTNER_TOLD,
            new_value=notice.change.title[:200],
            note=_("Emailed %(email)s about “%(title)s”.")
            % {"email": contact.email, "title": notice.change.title},
            created_at=now,
        )
        fields = []
        newly_closed = followup.loop_closed_at is None
        if newly_closed:
            followup.loop_closed_at, followup.loop_closed_by = now, notice.requested_by
            fields += ["loop_closed_at", "loop_closed_by"]
        old_status = followup.status
        if followup.status == Status.RESOLVED:
            FollowUpEvent.objects.create(
                followup=followup,
                actor=notice.requested_by,
                kind=FollowUpEvent.Kind.STATUS,
                old_value=followup.status,
                new_value=Status.LOOP_CLOSED,
                created_at=now,
            )
            followup.status = Status.LOOP_CLOSED
            fields.append("status")
        if fields:
            _bump(followup, *fields)
        if followup.status != old_status:
            _emit(
                "followup.status_changed",
                lambda: payloads.status_change_data(
                    followup, old_status=old_status, by=notice.requested_by
                ),
            )
        if newly_closed:
            _emit("loop.closed", lambda: payloads.loop_closed_data(followup, change=notice.change))
    return True


def notices_requeue_stale(*, older_than: dt.timedelta = dt.timedelta(minutes=15)) -> int:
    """Queue again the notices left "sending" by a worker that died, and enqueue the queued."""
    from . import tasks

    cutoff = timezone.now() - older_than
    PartnerNotice.objects.filter(status=PartnerNotice.Status.SENDING, claimed_at__lt=cutoff).update(
        status=PartnerNotice.Status.QUEUED
    )
    pending = list(
        PartnerNotice.objects.filter(
            status=PartnerNotice.Status.QUEUED, created_at__lt=cutoff
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in pending:
        tasks.send_partner_notice.delay_on_commit(pk)
    return len(pending)


# --- Emails to staff ------------------------------------------------------------------------


def staff_email_message(email: StaffEmail, connection=None):
    from nps_project.emailing import render_email

    followup = email.followup
    context = {
        "recipient": email.recipient,
        "followup": followup,
        "partner": followup.partner,
        "response": followup.response,
        "contact": followup.invitation.contact if followup.invitation_id else None,
        "event": email.event,
        "url": settings.SITE_URL + reverse("followups:detail", args=[followup.pk]),
    }
    name = "followup_escalated" if email.kind == StaffEmail.Kind.ESCALATED else "followup_assigned"
    return render_email(name, context, to=email.recipient.email, connection=connection)


def staff_email_send(*, email_id: int) -> bool:
    """Send one staff email; claimed (queued -> sending) first, so a task run twice sends once.
    Once sent, the follow-up's timeline records it. Returns True if sent now."""
    claimed = StaffEmail.objects.filter(pk=email_id, status=StaffEmail.Status.QUEUED).update(
        status=StaffEmail.Status.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return False
    email = StaffEmail.objects.select_related(
        "recipient",
        "event",
        "followup__partner",
        "followup__response",
        "followup__invitation__contact",
    ).get(pk=email_id)
    if not email.recipient.is_active or not email.recipient.email:
        StaffEmail.objects.filter(pk=email_id).update(
            status=StaffEmail.Status.FAILED, last_error="The recipient is inactive or has no email."
        )
        return False
    try:
        staff_email_message(email).send()
    except (SMTPException, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        final = email.attempts >= settings.NPS_SEND_MAX_ATTEMPTS
        StaffEmail.objects.filter(pk=email_id).update(
            status=StaffEmail.Status.FAILED if final else StaffEmail.Status.QUEUED,
            last_error=reason,
        )
        if final:
            return False
        raise
    now = timezone.now()
    with transaction.atomic():
        StaffEmail.objects.filter(pk=email_id).update(
            status=StaffEmail.Status.SENT, sent_at=now, last_error=""
        )
        FollowUpEvent.objects.create(
            followup_id=email.followup_id,
            kind=FollowUpEvent.Kind.NOTIFIED,
            new_value=email.recipient.get_username(),
            note=_("Emailed %(email)s: %(what)s.")
            % {"email": email.recipient.email, "what": email.get_kind_display().lower()},
            created_at=now,
        )
    return True


def staff_emails_requeue_stale(*, older_than: dt.timedelta = dt.timedelta(minutes=15)) -> int:
    """Queue again staff emails left "sending" by a dead worker, and enqueue old queued ones."""
    from . import tasks

    cutoff = timezone.now() - older_than
    StaffEmail.objects.filter(status=StaffEmail.Status.SENDING, claimed_at__lt=cutoff).update(
        status=StaffEmail.Status.QUEUED
    )
    pending = list(
        StaffEmail.objects.filter(
            status=StaffEmail.Status.QUEUED, created_at__lt=cutoff
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in pending:
        tasks.send_staff_email.delay_on_commit(pk)
    return len(pending)


# --- Escalation -----------------------------------------------------------------------------

# Open, and not yet resolved: the follow-ups whose resolution can still be late.
UNRESOLVED = (Status.OPEN, Status.CONTACTED, Status.ACTION_PLANNED)


def _overdue_for(rule: EscalationRule):
    """Follow-ups past the rule's due time (not yet its extra hours), as (filter, due field)."""
    if rule.measure == EscalationRule.Measure.RESOLUTION:
        return Q(status__in=UNRESOLVED, resolution_due_at__isnull=False), "resolution_due_at"
    return Q(status__in=FollowUp.OPEN_STATUSES, first_contacted_at__isnull=True), "due_at"


def managers_to_notify() -> list:
    return list(
        User.objects.filter(is_active=True, groups__name=roles.CS_MANAGER).distinct().order_by("pk")
    )


def followups_escalate_due(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """The beat sweep: apply every active escalation rule to the open follow-ups it has not been
    applied to and whose due time is that many business hours past. Closed follow-ups are never
    touched, whatever their age. Returns how many escalations were made.

    Candidates come oldest due first; since the threshold grows with the due time, the first one
    not yet past it ends that rule's batch.
    """
    now = now or timezone.now()
    # The most overdue rule first: a follow-up past several at once is escalated by that one,
    # which records the lesser ones as passed (one email, not one per rule).
    rules = list(
        EscalationRule.objects.filter(is_active=True).order_by("-hours_overdue", "position", "pk")
    )
    if not rules:
        return 0
    calendar = working_sla().calendar
    made = 0
    for rule in rules:
        condition, due_field = _overdue_for(rule)
        candidates = (
            FollowUp.objects.filter(condition, **{f"{due_field}__lt": now})
            .exclude(escalations__rule=rule)
            .order_by(due_field, "pk")
            .values_list("pk", due_field)[:limit]
        )
        for pk, due in list(candidates):
            if add_business_hours(due, rule.hours_overdue, calendar) > now:
                break
            if followup_escalate(followup_id=pk, rule=rule, now=now, calendar=calendar):
                made += 1
    return made


@transaction.atomic
def followup_escalate(
    *, followup_id: int, rule: EscalationRule, now: dt.datetime | None = None, calendar=None
) -> bool:
    """Escalate one follow-up by one rule, at most once (a unique constraint): raise its priority
    to the rule's (never lower it), note it on the timeline with how late it is, email the
    managers and emit ``followup.overdue``. The active rules of the same measure with fewer
    hours, past too, are recorded as applied with it (no email, no event of their own), so a
    follow-up found months late is escalated once, by the rule that fits. Locks the follow-up
    and checks again that it is open and overdue, so a follow-up closed meanwhile is left
    alone. Returns True if escalated now."""
    now = now or timezone.now()
    calendar = calendar or working_sla().calendar
    followup = (
        FollowUp.objects.select_for_update(of=("self",))
        .select_related("partner", "response", "assignee")
        .get(pk=followup_id)
    )
    condition, due_field = _overdue_for(rule)
    due = getattr(followup, due_field)
    still_due = FollowUp.objects.filter(condition, pk=followup_id).exists()
    if not still_due or due is None or add_business_hours(due, rule.hours_overdue, calendar) > now:
        return False
    try:
        with transaction.atomic():
            Escalation.objects.create(followup=followup, rule=rule, created_at=now)
    except IntegrityError:
        return False
    passed = list(
        EscalationRule.objects.filter(
            is_active=True, measure=rule.measure, hours_overdue__lt=rule.hours_overdue
        ).exclude(escalations__followup=followup)
    )
    Escalation.objects.bulk_create(
        [Escalation(followup=followup, rule=r, created_at=now) for r in passed],
        ignore_conflicts=True,
    )
    old_priority = followup.priority
    raise_to = max((rule, *passed), key=lambda r: PRIORITY_RANK[r.raise_priority_to])
    if PRIORITY_RANK[raise_to.raise_priority_to] > PRIORITY_RANK[followup.priority]:
        followup.priority = raise_to.raise_priority_to
        _bump(followup, "priority")
    event = FollowUpEvent.objects.create(
        followup=followup,
        kind=FollowUpEvent.Kind.ESCALATED,
        # The timeline shows "old -> new" only when the priority went up.
        old_value=old_priority if old_priority != followup.priority else "",
        new_value=followup.priority,
        note=_("%(rule)s: due %(due)s, %(late)s late.")
        % {
            "rule": rule.name,
            "due": timezone.localtime(due).strftime("%Y-%m-%d %H:%M %Z"),
            "late": timesince(due, now, depth=1),
        },
        created_at=now,
    )
    if rule.notify_managers:
        _queue_staff_emails(followup, event, managers_to_notify(), kind=StaffEmail.Kind.ESCALATED)
    _emit("followup.overdue", lambda: payloads.followup_data(followup))
    return True


# --- Silence is a signal --------------------------------------------------------------------


def followups_for_silent_key_contacts(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """The beat sweep: a key contact who has not answered ``no_response_followup_days`` into an
    open wave gets one "no response" follow-up (a constraint), for the account owner. Returns how
    many were created."""
    now = now or timezone.now()
    created = 0
    waves = Wave.objects.filter(
        status=Wave.Status.OPEN,
        opens_at__lte=now,
        closes_at__gt=now,
        program__no_response_followup_days__isnull=False,
    ).select_related("program")
    for wave in waves:
        if wave.opens_at + dt.timedelta(days=wave.program.no_response_followup_days) > now:
            continue
        ids = list(
            Invitation.objects.filter(
                wave=wave,
                status=Invitation.Status.SENT,
                contact__is_key=True,
                contact__opted_out_at__isnull=True,
                response__isnull=True,
            )
            .exclude(followups__kind=FollowUp.Kind.NO_RESPONSE)
            .order_by("pk")
            .values_list("pk", flat=True)[: limit - created]
        )
        for invitation_id in ids:
            if followup_for_silence(invitation_id=invitation_id, now=now):
                created += 1
        if created >= limit:
            break
    return created


def followup_for_silence(*, invitation_id: int, now: dt.datetime | None = None) -> FollowUp | None:
    """Create the "no response" follow-up of one unanswered invitation; None if it exists or the
    contact has answered meanwhile."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            invitation = (
                Invitation.objects.select_for_update(of=("self",))
                .select_related("contact__partner__account_owner", "wave")
                .get(pk=invitation_id)
            )
            if Response.objects.filter(invitation=invitation).exists():
                return None
            if FollowUp.objects.filter(
                invitation=invitation, kind=FollowUp.Kind.NO_RESPONSE
            ).exists():
                return None
            return _followup_create(
                partner=invitation.contact.partner,
                invitation_id=invitation.pk,
                kind=FollowUp.Kind.NO_RESPONSE,
                priority=FollowUp.Priority.NORMAL,
                sla_from=now,
                now=now,
                created_note=_("no response from %(name)s") % {"name": invitation.contact.name},
            )
    except IntegrityError:
        return None


# --- The partner's "you told us, we did" page -----------------------------------------------

PAGE_TOKEN_DAYS = 365


def partner_page_token_issue(*, partner_id: int, now: dt.datetime | None = None) -> str:
    """A fresh secret link token for the partner's page; only its hash is stored."""
    now = now or timezone.now()
    token = new_token()
    PartnerPageToken.objects.create(
        partner_id=partner_id,
        token_hash=hash_token(token),
        expires_at=now + dt.timedelta(days=PAGE_TOKEN_DAYS),
        created_at=now,
    )
    return token


def partner_page_url(token: str) -> str:
    return settings.SITE_URL + reverse("partner-pages:page", args=[token])


def partner_for_page_token(token, *, now: dt.datetime | None = None) -> Partner | None:
    """The partner a page link belongs to, or None (unknown, malformed or expired). Reads only."""
    if not isinstance(token, str) or not token.isascii() or not looks_like_token(token):
        return None
    now = now or timezone.now()
    return Partner.objects.filter(
        page_tokens__token_hash=hash_token(token), page_tokens__expires_at__gt=now
    ).first()


# --- Editing a change -----------------------------------------------------------------------
# (Imports here because this section was appended to the module.)

from typing import Any  # noqa: E402

from surveys.services import UNCHANGED  # noqa: E402


@transaction.atomic
def change_update(
    *,
    change_id: int,
    by,
    title: Any = UNCHANGED,
    description: Any = UNCHANGED,
    category: Any = UNCHANGED,
    owner: Any = UNCHANGED,
    status: Any = UNCHANGED,
) -> Change:
    """Edit a change's title, description, category or owner with ``change_create``'s rules,
    and move its status (through ``change_update_status``, which stamps the ship date), in one
    transaction; arguments left ``UNCHANGED`` stay as they are. Locks the change row. The owner
    must be on the customer-success team; ``owner=None`` leaves the change without one."""
    _check_can_log_changes(by)
    change = Change.objects.select_for_update().get(pk=change_id)
    errors = {}
    wanted: dict[str, Any] = {}
    if title is not UNCHANGED:
        wanted["title"] = title.strip() if isinstance(title, str) else ""
        if not wanted["title"]:
            errors["title"] = _("Give the change a title.")
        elif len(wanted["title"]) > Change._meta.get_field("title").max_length:
            errors["title"] = _("Use at most 200 characters.")
    if description is not UNCHANGED:
        wanted["description"] = description.strip() if isinstance(description, str) else ""
        if not wanted["description"]:
            errors["description"] = _("Describe what changed: partners will read it.")
    if category is not UNCHANGED:
        wanted["category"] = category
        if category not in Change.Category.values:
            errors["category"] = _("Choose a category.")
    if owner is not UNCHANGED:
        wanted["owner"] = owner
        if owner is not None and not roles.is_cs(owner):
            errors["owner"] = _not_on_team(owner)
    if status is not UNCHANGED and status not in Change.Status.values:
        errors["status"] = _("Unknown status.")
    if errors:
        raise ValidationError(errors)
    changed = []
    for name, value in wanted.items():
        current = change.owner_id if name == "owner" else getattr(change, name)
        if current != (value.pk if name == "owner" and value is not None else value):
            setattr(change, name, value)
            changed.append(name)
    if changed:
        change.save(update_fields=[*changed, "updated_at"])
    if status is not UNCHANGED:
        change = change_update_status(change_id=change_id, status=status, by=by)
    return change


def _not_on_team(user) -> str:
    return _("%(name)s is not on the customer-success team.") % {"name": user.get_username()}
