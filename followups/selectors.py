"""Reads for the follow-up pages. Each returns a queryset with its joins applied, so a page's
query count does not grow with its rows."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from nps_project import roles
from surveys.models import Response

from .models import Change, FollowUp, FollowUpEvent, PartnerNotice

User = get_user_model()

OPEN = Q(status__in=FollowUp.OPEN_STATUSES)
CLOSED = ~OPEN

QUEUE_TABS = ("mine", "unassigned", "overdue", "team", "closed")


def _tab_conditions(user, now: dt.datetime) -> dict[str, Q]:
    return {
        "mine": OPEN & Q(assignee=user),
        "unassigned": OPEN & Q(assignee__isnull=True),
        # Not yet contacted and past the first-contact due time: the same rule as
        # FollowUp.is_overdue, written as SQL.
        "overdue": OPEN & Q(first_contacted_at__isnull=True, due_at__lt=now),
        "team": OPEN,
        "closed": CLOSED,
    }


def queue_filter(queryset: QuerySet, filters: dict) -> QuerySet:
    """Narrow follow-ups by the queue's filter form (its cleaned data; empty values ignored)."""
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    if filters.get("assignee"):
        queryset = queryset.filter(assignee=filters["assignee"])
    if filters.get("program"):
        queryset = queryset.filter(response__program=filters["program"])
    if filters.get("tier"):
        queryset = queryset.filter(partner__tier=filters["tier"])
    if filters.get("region"):
        queryset = queryset.filter(partner__region__iexact=filters["region"].strip())
    return queryset


def queue_tab_counts(*, user, filters: dict | None = None, now=None) -> dict[str, int]:
    """How many follow-ups each queue tab holds, in one conditional aggregate query."""
    now = now or timezone.now()
    queryset = queue_filter(FollowUp.objects.all(), filters or {})
    return queryset.aggregate(
        **{
            name: Count("id", filter=condition)
            for name, condition in _tab_conditions(user, now).items()
        }
    )


def queue_followups(*, user, tab: str, filters: dict | None = None, now=None) -> QuerySet:
    """The follow-ups of one queue tab, by due time (so overdue ones come first)."""
    now = now or timezone.now()
    condition = _tab_conditions(user, now)[tab]
    queryset = FollowUp.objects.filter(condition).select_related(
        "partner__tier",
        "assignee",
        "response__program",
        "response__wave",
    )
    queryset = queue_filter(queryset, filters or {})
    if tab == "closed":
        return queryset.order_by("-updated_at", "-id")
    return queryset.order_by("due_at", "id")


def cs_users() -> QuerySet:
    """Active users who may work follow-ups: CS staff, CS managers and admins."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name__in=roles.ALL_ROLES) | Q(is_superuser=True))
        .distinct()
        .order_by("username")
    )


# --- One follow-up --------------------------------------------------------------------------


def followup_detail(*, pk: int) -> FollowUp:
    """The follow-up with everything its page shows about it in one query. Raises DoesNotExist."""
    return FollowUp.objects.select_related(
        "response__contact",
        "response__wave",
        "response__program",
        "partner__tier",
        "partner__partner_type",
        "partner__account_owner",
        "assignee",
        "root_cause",
        "loop_closed_by",
    ).get(pk=pk)


def followup_timeline(followup: FollowUp) -> QuerySet:
    return FollowUpEvent.objects.filter(followup=followup).select_related("actor")


def partner_responses(partner) -> QuerySet:
    """All the partner's responses, newest wave first."""
    return (
        Response.objects.filter(partner=partner)
        .select_related("wave", "program", "contact")
        .order_by("-wave__opens_at", "-submitted_at", "-id")
    )


def partner_other_followups(followup: FollowUp) -> QuerySet:
    """The partner's other follow-ups, newest first."""
    return (
        FollowUp.objects.filter(partner_id=followup.partner_id)
        .exclude(pk=followup.pk)
        .select_related("response__wave", "assignee")
        .order_by("-created_at", "-id")
    )


def partner_changes(partner) -> QuerySet:
    """Changes linked to any of the partner's follow-ups."""
    return (
        Change.objects.filter(
            Exists(
                Change.followups.through.objects.filter(
                    change_id=OuterRef("pk"), followup__partner=partner
                )
            )
        )
        .select_related("owner")
        .order_by("-created_at", "-id")
    )


def linkable_changes(followup: FollowUp) -> QuerySet:
    """Changes a follow-up can still be linked to: not linked yet, and not shipped and announced."""
    announced = PartnerNotice.objects.filter(change_id=OuterRef("pk"))
    return (
        Change.objects.exclude(followups=followup)
        .exclude(Q(status=Change.Status.SHIPPED) & Exists(announced))
        .order_by("-created_at", "-id")
    )


# --- Changes --------------------------------------------------------------------------------


def change_list() -> QuerySet:
    return (
        Change.objects.select_related("owner")
        .annotate(followup_count=Count("followups", distinct=True))
        .order_by("-created_at", "-id")
    )


def change_detail(*, pk: int) -> Change:
    return Change.objects.select_related("owner", "created_by").get(pk=pk)


def change_linked_followups(change: Change) -> QuerySet:
    """The change's follow-ups, each with this change's notices prefetched as ``change_notices``."""
    return (
        change.followups.select_related("partner", "response__contact", "assignee")
        .prefetch_related(
            Prefetch(
                "notices",
                queryset=PartnerNotice.objects.filter(change=change),
                to_attr="change_notices",
            )
        )
        .order_by("partner__name", "id")
    )


def change_notice_counts(change: Change) -> dict[str, int]:
    """How many of the change's notices are in each status, in one query."""
    return change.notices.aggregate(
        **{status: Count("id", filter=Q(status=status)) for status in PartnerNotice.Status.values}
    )


def followups_linkable_to(change: Change) -> QuerySet:
    """Open follow-ups not yet linked to the change, soonest due first."""
    return (
        FollowUp.objects.filter(OPEN)
        .exclude(changes=change)
        .select_related("partner", "response")
        .order_by("due_at", "id")
    )
