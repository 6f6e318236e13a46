"""Reads for the follow-up pages. Each returns a queryset with its joins applied, so a page's
query count does not grow with its rows."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)
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
        # Late on first contact or on resolution (FollowUp.is_overdue).
        "overdue": FollowUp.overdue_q(now),
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
        queryset = queryset.filter(invitation__wave__program=filters["program"])
    if filters.get("kind"):
        queryset = queryset.filter(kind=filters["kind"])
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
    """The follow-ups of one queue tab, what needs doing first on top: the overdue ones (late
    on first contact or on resolution), then the first contacts still to make by their due
    time, then the contacted ones by the time they are due to be resolved (none set: last)."""
    now = now or timezone.now()
    condition = _tab_conditions(user, now)[tab]
    queryset = FollowUp.objects.filter(condition).select_related(
        "partner__tier",
        "assignee",
        "response",
        "invitation__contact",
        "invitation__wave__program",
    )
    queryset = queue_filter(queryset, filters or {})
    if tab == "closed":
        return queryset.order_by("-updated_at", "-id")
    not_contacted = Q(first_contacted_at__isnull=True)
    return queryset.order_by(
        Case(
            When(FollowUp.overdue_q(now), then=Value(0)),
            When(not_contacted, then=Value(1)),
            default=Value(2),
        ),
        Case(When(not_contacted, then=F("due_at")), default=F("resolution_due_at")).asc(
            nulls_last=True
        ),
        "id",
    )


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
        "invitation__contact",
        "invitation__wave__program",
        "rule",
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
        .select_related("invitation__wave", "assignee")
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
        change.followups.select_related("partner", "response", "invitation__contact", "assignee")
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


# --- Loop KPIs and recovery -----------------------------------------------------------------


def kpi_rows(*, program=None) -> list:
    """One ``kpis.Row`` per follow-up on a response, from one query."""
    from .kpis import Row

    queryset = FollowUp.objects.filter(kind=FollowUp.Kind.RESPONSE)
    if program is not None:
        queryset = queryset.filter(response__program=program)
    values = queryset.values_list(
        "assignee__username",
        "response__program__name",
        "created_at",
        "due_at",
        "first_contacted_at",
        "status",
        "loop_closed_at",
        "root_cause_id",
        "response__category",
        "next_response__score",
    )
    return [
        Row(
            owner=owner or "(unassigned)",
            program=program_name or "",
            created_at=created,
            due_at=due,
            first_contacted_at=contacted,
            status=status,
            loop_closed=loop_closed is not None,
            has_root_cause=cause is not None,
            detractor=category == Response.Category.DETRACTOR,
            next_score=next_score,
        )
        for (
            owner,
            program_name,
            created,
            due,
            contacted,
            status,
            loop_closed,
            cause,
            category,
            next_score,
        ) in values
    ]


def _recovery_counts(prefix: str = "") -> dict:
    """Recovered / stayed / no answer yet among detractors whose loop was closed."""
    loop = Q(
        **{
            f"{prefix}kind": FollowUp.Kind.RESPONSE,
            f"{prefix}loop_closed_at__isnull": False,
            f"{prefix}response__category": Response.Category.DETRACTOR,
        }
    )
    return {
        "recovered": Count(
            f"{prefix}id",
            filter=loop & Q(**{f"{prefix}next_response__score__gte": 7}),
        ),
        "stayed": Count(
            f"{prefix}id",
            filter=loop & Q(**{f"{prefix}next_response__score__lt": 7}),
        ),
        "no_answer": Count(
            f"{prefix}id",
            filter=loop & Q(**{f"{prefix}next_response__isnull": True}),
        ),
    }


def recovery_by_owner() -> list[dict]:
    """Per assignee, how detractors whose loop was closed answered next; one query."""
    return list(
        FollowUp.objects.values("assignee__username")
        .annotate(**_recovery_counts())
        .filter(Q(recovered__gt=0) | Q(stayed__gt=0) | Q(no_answer__gt=0))
        .order_by("assignee__username")
    )


def recovery_by_change() -> list[dict]:
    """Per change, how the detractors whose loop it closed answered next; one query."""
    return list(
        Change.objects.values("pk", "title", "status")
        .annotate(**_recovery_counts("followups__"))
        .filter(Q(recovered__gt=0) | Q(stayed__gt=0) | Q(no_answer__gt=0))
        .order_by("title", "pk")
    )


# --- The partner's public page --------------------------------------------------------------


def partner_shipped_changes(partner) -> QuerySet:
    """Shipped changes linked to the partner's feedback, newest first."""
    return (
        partner_changes(partner).filter(status=Change.Status.SHIPPED).order_by("-shipped_at", "-id")
    )
