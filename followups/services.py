"""Writes for follow-ups and changes. Each state change writes its timeline event in the same
transaction; views, tasks and commands call these functions, never the models directly."""

from __future__ import annotations

import datetime as dt
import logging
from smtplib import SMTPException

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from nps_project import roles
from surveys.models import Response

from .models import Change, FollowUp, FollowUpEvent, PartnerNotice, RootCause
from .sla import add_business_days

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


# --- Creation and assignment ----------------------------------------------------------------


def followup_pick_assignee(*, partner) -> User | None:
    """The partner's account owner if active, else the customer-success staff member with the
    fewest open follow-ups (ties: the one assigned longest ago, then the oldest account)."""
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


def followup_for_response(
    *,
    response: Response,
    revised_from: tuple | None = None,
    now: dt.datetime | None = None,
    sla_from: dt.datetime | None = None,
) -> FollowUp | None:
    """Make sure a detractor response has its one follow-up; note a revised answer on it.

    Idempotent: a second call for the same response returns the existing follow-up. Called
    inside ``response_submit``'s transaction, and by the reconciliation sweep. The due time
    counts from ``sla_from`` (default ``now``), so a follow-up repaired late is due when it
    would have been.
    """
    now = now or timezone.now()
    sla_from = sla_from or now
    existing = FollowUp.objects.filter(response=response).first()
    if existing is not None:
        if revised_from is not None and revised_from != (response.score, response.comment):
            FollowUpEvent.objects.create(
                followup=existing,
                kind=FollowUpEvent.Kind.RESPONSE_EDITED,
                old_value=str(revised_from[0]),
                new_value=str(response.score),
                note=response.comment,
                created_at=now,
            )
        return existing
    if response.category != Response.Category.DETRACTOR:
        return None
    assignee = followup_pick_assignee(partner=response.partner)
    with transaction.atomic():
        followup = FollowUp.objects.create(
            response=response,
            partner=response.partner,
            assignee=assignee,
            priority=FollowUp.Priority.HIGH if response.score <= 3 else FollowUp.Priority.NORMAL,
            due_at=add_business_days(sla_from, settings.NPS_FOLLOWUP_SLA_BUSINESS_DAYS),
            created_at=now,
        )
        FollowUpEvent.objects.create(
            followup=followup,
            kind=FollowUpEvent.Kind.CREATED,
            new_value=f"score {response.score}",
            created_at=now,
        )
        if assignee is not None:
            FollowUpEvent.objects.create(
                followup=followup,
                kind=FollowUpEvent.Kind.ASSIGNED,
                new_value=assignee.get_username(),
                note=_("Account owner")
                if assignee.pk == response.partner.account_owner_id
                else _("Round robin"),
                created_at=now,
            )
    return followup


def followups_reconcile(*, limit: int = 1000) -> int:
    """Create the follow-up of every detractor response that lacks one (up to ``limit`` per run).
    Returns how many were created.

    The ids are read first: iterating a cursor over the table being repaired is undefined on
    SQLite. Each repair has its own transaction; one that a concurrent ``response_submit`` got to
    first is skipped.
    """
    missing = list(
        Response.objects.filter(category=Response.Category.DETRACTOR, followup__isnull=True)
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
                followup_for_response(response=response, sla_from=response.updated_at)
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
    FollowUpEvent.objects.create(
        followup=followup,
        actor=by,
        kind=FollowUpEvent.Kind.ASSIGNED,
        old_value=old,
        new_value=assignee.get_username() if assignee else "",
    )
    return followup


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
    followup.status = to
    _bump(followup, *fields)
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
    return change


def change_ship(*, change_id: int, by) -> Change:
    return change_update_status(change_id=change_id, status=Change.Status.SHIPPED, by=by)


def notice_recipients(change: Change):
    """The follow-ups of a change whose partner can be told: not yet told of this change."""
    return (
        change.followups.exclude(notices__change=change, notices__status=PartnerNotice.Status.SENT)
        .select_related("response__contact", "partner")
        .order_by("partner__name")
    )


@transaction.atomic
def change_notify_partners(*, change_id: int, by) -> int:
    """Queue the "you told us, we did" email to every linked follow-up's contact.

    Only for a shipped change. One notice per change and follow-up (a constraint): asking twice
    queues nothing new, except that failed notices are queued again. Sending happens in Celery
    after commit. Returns how many were queued.
    """
    _check_can_log_changes(by)
    change = Change.objects.select_for_update().get(pk=change_id)
    if change.status != Change.Status.SHIPPED:
        raise ValidationError(_("Ship the change before telling partners about it."))
    followup_ids = list(change.followups.values_list("pk", flat=True))
    if not followup_ids:
        raise ValidationError(_("Link the follow-ups this change answers first."))
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
        PartnerNotice.objects.filter(change=change, status=PartnerNotice.Status.FAILED).values_list(
            "pk", flat=True
        )
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


def notice_message(notice: PartnerNotice, connection=None):
    from nps_project.emailing import render_email, sender
    from surveys.services import supported_language

    contact = notice.followup.response.contact
    program = notice.followup.response.program
    context = {
        "contact": contact,
        "partner": notice.followup.partner,
        "program": program,
        "change": notice.change,
        "response": notice.followup.response,
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
        "followup__response__contact",
        "followup__response__program",
        "requested_by",
    ).get(pk=notice_id)
    contact = notice.followup.response.contact
    if contact.opted_out_at is not None or contact.bounced_at is not None:
        PartnerNotice.objects.filter(pk=notice_id).update(
            status=PartnerNotice.Status.FAILED, last_error="The contact opted out or bounced."
        )
        return False
    try:
        notice_message(notice).send()
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
        if followup.loop_closed_at is None:
            followup.loop_closed_at, followup.loop_closed_by = now, notice.requested_by
            fields += ["loop_closed_at", "loop_closed_by"]
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
