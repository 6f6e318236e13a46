"""Follow-ups on responses, their append-only timeline, root causes and the change log."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RootCause(models.Model):
    name = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def monday_to_friday() -> list[int]:
    return [0, 1, 2, 3, 4]


class WorkingCalendar(models.Model):
    """The working week that SLA due times are counted in: business hours only, weekends and
    holidays skipped. The first calendar (by id) is the one in use; with none, Monday to Friday,
    9:00 to 17:00 UTC, no holidays."""

    name = models.CharField(max_length=100, unique=True, default="Default")
    time_zone = models.CharField(max_length=64, default="UTC", help_text=_("e.g. Europe/Berlin"))
    working_days = models.JSONField(
        default=monday_to_friday,
        blank=True,
        help_text=_("Working weekdays, Monday = 0 … Sunday = 6, e.g. [0, 1, 2, 3, 4]."),
    )
    day_starts = models.TimeField(default=dt.time(9, 0))
    day_ends = models.TimeField(default=dt.time(17, 0))
    first_contact_hours = models.PositiveIntegerField(
        default=16,
        help_text=_("Business hours to first contact when no rule says otherwise."),
    )
    resolution_hours = models.PositiveIntegerField(
        default=80, help_text=_("Business hours to resolution when no rule says otherwise.")
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(day_ends__gt=models.F("day_starts")),
                name="followups_calendar_day_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        errors = {}
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["time_zone"] = _("Unknown time zone: use a name like Europe/Berlin.")
        days = self.working_days
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, int) and 0 <= d <= 6 for d in days)
        ):
            errors["working_days"] = _("Give a list of weekdays from 0 (Monday) to 6 (Sunday).")
        if self.day_starts and self.day_ends and self.day_ends <= self.day_starts:
            errors["day_ends"] = _("The working day must end after it starts.")
        if errors:
            raise ValidationError(errors)


class Holiday(models.Model):
    calendar = models.ForeignKey(WorkingCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(
                fields=["calendar", "date"], name="followups_holiday_one_per_calendar_date"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class Priority(models.TextChoices):
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High")
    URGENT = "urgent", _("Urgent")


PRIORITY_RANK = {Priority.NORMAL: 0, Priority.HIGH: 1, Priority.URGENT: 2}


class FollowUpRule(models.Model):
    """Which responses get a follow-up, and how: ordered, first match wins.

    Every condition that is set must hold. Detractors get a follow-up even when no rule matches
    (with the calendar's default SLA); a response never gets more than one.
    """

    class Strategy(models.TextChoices):
        ACCOUNT_OWNER = "owner", _("Account owner, else round robin")
        ROUND_ROBIN = "round_robin", _("Round robin by open load")
        USER = "user", _("A named person")

    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0, help_text=_("Lower runs first."))
    is_active = models.BooleanField(default=True)
    # Conditions
    category = models.CharField(
        max_length=10,
        choices=[
            ("", _("Any category")),
            ("promoter", _("Promoter")),
            ("passive", _("Passive")),
            ("detractor", _("Detractor")),
        ],
        blank=True,
    )
    score_min = models.PositiveSmallIntegerField(null=True, blank=True)
    score_max = models.PositiveSmallIntegerField(null=True, blank=True)
    tiers = models.ManyToManyField(
        "surveys.Tier", blank=True, related_name="+", help_text=_("Empty = any tier.")
    )
    keywords = models.CharField(
        max_length=300,
        blank=True,
        help_text=_("The comment mentions any of these words (comma-separated, any case)."),
    )
    requires_comment = models.BooleanField(default=False, help_text=_("Only with a comment."))
    requires_wants_contact = models.BooleanField(
        default=False, help_text=_("Only when the partner asked to be contacted.")
    )
    # Effects
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    assignee_strategy = models.CharField(
        max_length=12, choices=Strategy.choices, default=Strategy.ACCOUNT_OWNER
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("For “a named person”; if inactive, the account owner or round robin."),
    )
    first_contact_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Business hours; empty = the calendar's default.")
    )
    resolution_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Business hours; empty = the calendar's default.")
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(score_min__isnull=True) | Q(score_min__lte=10))
                & (Q(score_max__isnull=True) | Q(score_max__lte=10)),
                name="followups_rule_scores_0_10",
            ),
            models.CheckConstraint(
                condition=Q(score_min__isnull=True)
                | Q(score_max__isnull=True)
                | Q(score_min__lte=models.F("score_max")),
                name="followups_rule_score_range_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        if self.score_min is not None and self.score_min > 10:
            errors["score_min"] = _("Scores go from 0 to 10.")
        if self.score_max is not None and self.score_max > 10:
            errors["score_max"] = _("Scores go from 0 to 10.")
        if (
            self.score_min is not None
            and self.score_max is not None
            and self.score_min > self.score_max
        ):
            errors["score_max"] = _("The highest score must not be below the lowest.")
        if self.assignee_strategy == self.Strategy.USER and self.assignee_id is None:
            errors["assignee"] = _("Choose the person for this rule.")
        if errors:
            raise ValidationError(errors)

    @property
    def keyword_list(self) -> list[str]:
        return [k.strip().lower() for k in self.keywords.split(",") if k.strip()]


class FollowUp(models.Model):
    class Kind(models.TextChoices):
        RESPONSE = "response", _("Response")
        NO_RESPONSE = "no_response", _("No response")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CONTACTED = "contacted", _("Contacted")
        ACTION_PLANNED = "planned", _("Action planned")
        RESOLVED = "resolved", _("Resolved")
        LOOP_CLOSED = "closed", _("Loop closed")
        CLOSED_NO_ACTION = "no_action", _("Closed without action")

    Priority = Priority

    OPEN_STATUSES = (Status.OPEN, Status.CONTACTED, Status.ACTION_PLANNED, Status.RESOLVED)

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.RESPONSE)
    # Exactly one follow-up per response: the database holds it. Empty for "no response".
    response = models.OneToOneField(
        "surveys.Response",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="followup",
    )
    # The invitation the follow-up is about: the response's, or the unanswered one.
    invitation = models.ForeignKey(
        "surveys.Invitation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="followups",
    )
    rule = models.ForeignKey(
        FollowUpRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="followups",
        help_text=_("The rule that made it; empty for the detractor default."),
    )
    partner = models.ForeignKey(
        "surveys.Partner", on_delete=models.CASCADE, related_name="followups"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="followups",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    due_at = models.DateTimeField(help_text=_("First contact is due by then."))
    resolution_due_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Resolution is due by then.")
    )
    first_contacted_at = models.DateTimeField(null=True, blank=True)
    # The contact's next answer after this one, for recovery figures.
    next_response = models.ForeignKey(
        "surveys.Response", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    root_cause = models.ForeignKey(RootCause, null=True, blank=True, on_delete=models.PROTECT)
    action_taken = models.TextField(blank=True)
    closed_reason = models.TextField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    loop_closed_at = models.DateTimeField(null=True, blank=True)
    loop_closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Bumped on every change; forms carry it so a stale edit is refused, not silently lost.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            # Serves the queue: open follow-ups of one assignee by due time.
            models.Index(
                fields=["assignee", "due_at"],
                name="followups_open_by_assignee",
                condition=Q(status__in=["open", "contacted", "planned", "resolved"]),
            ),
        ]
        constraints = [
            # A response follow-up has its response; a "no response" one its invitation only.
            models.CheckConstraint(
                condition=Q(kind="response", response__isnull=False)
                | Q(kind="no_response", response__isnull=True, invitation__isnull=False),
                name="followups_followup_kind_source",
            ),
            models.UniqueConstraint(
                fields=["invitation"],
                condition=Q(kind="no_response"),
                name="followups_one_no_response_per_invitation",
            ),
        ]

    def __str__(self) -> str:
        return f"Follow-up #{self.pk} · {self.partner}"

    def save(self, *args, **kwargs):
        # Every follow-up names its invitation, so pages reach contact, wave and program one way.
        if self.invitation_id is None and self.response_id is not None:
            self.invitation_id = self.response.invitation_id
        super().save(*args, **kwargs)

    @property
    def contact(self):
        return self.response.contact if self.response_id else self.invitation.contact

    @property
    def wave(self):
        return self.response.wave if self.response_id else self.invitation.wave

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def awaits_resolution(self) -> bool:
        return self.status in (self.Status.OPEN, self.Status.CONTACTED, self.Status.ACTION_PLANNED)

    def is_overdue(self, now=None) -> bool:
        """Late on first contact (not contacted by ``due_at``) or on resolution (not resolved
        by ``resolution_due_at``); ``overdue_q`` is the same rule in SQL."""
        return self.first_contact_overdue(now) or self.resolution_overdue(now)

    def first_contact_overdue(self, now=None) -> bool:
        now = now or timezone.now()
        return self.is_open and self.first_contacted_at is None and self.due_at < now

    def resolution_overdue(self, now=None) -> bool:
        now = now or timezone.now()
        due = self.resolution_due_at
        return self.awaits_resolution and due is not None and due < now

    @classmethod
    def overdue_q(cls, now) -> models.Q:
        """``is_overdue`` as a filter."""
        return Q(status__in=cls.OPEN_STATUSES, first_contacted_at__isnull=True, due_at__lt=now) | Q(
            status__in=(cls.Status.OPEN, cls.Status.CONTACTED, cls.Status.ACTION_PLANNED),
            resolution_due_at__lt=now,
        )


class FollowUpEvent(models.Model):
    """One line of a follow-up's timeline. Append-only: rows are never updated or deleted."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        ASSIGNED = "assigned", _("Assigned")
        STATUS = "status", _("Status changed")
        NOTE = "note", _("Note")
        CALL = "call", _("Call logged")
        EMAIL = "email", _("Email logged")
        CHANGE_LINKED = "linked", _("Linked to a change")
        PARTNER_TOLD = "told", _("Partner told")
        RESPONSE_EDITED = "edited", _("Response edited")
        ESCALATED = "escalated", _("Escalated")
        NOTIFIED = "notified", _("Email to staff")
        ANSWERED = "answered", _("Contact answered")

    followup = models.ForeignKey(FollowUp, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Empty when the system acted."),
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    old_value = models.CharField(max_length=200, blank=True)
    new_value = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on follow-up {self.followup_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Timeline events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Timeline events are append-only.")


class Change(models.Model):
    """Something done in response to feedback, linked to the follow-ups it answers."""

    class Category(models.TextChoices):
        PRODUCT = "product", _("Product")
        SUPPORT = "support", _("Support")
        PRICING = "pricing", _("Pricing & terms")
        PORTAL = "portal", _("Partner portal")
        ENABLEMENT = "enablement", _("Enablement & training")
        PROCESS = "process", _("Process")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        IN_PROGRESS = "in_progress", _("In progress")
        SHIPPED = "shipped", _("Shipped")

    title = models.CharField(max_length=200)
    description = models.TextField(
        help_text=_("What changed, in words a partner understands: it goes into the email.")
    )
    category = models.CharField(max_length=12, choices=Category.choices, default=Category.OTHER)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_changes",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PLANNED)
    shipped_at = models.DateTimeField(null=True, blank=True)
    followups = models.ManyToManyField(FollowUp, blank=True, related_name="changes")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="shipped", shipped_at__isnull=False) | ~Q(status="shipped"),
                name="followups_change_shipped_has_date",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class PartnerNotice(models.Model):
    """The "you told us, we did" email to one follow-up's contact about one shipped change.

    One per change and follow-up, claimed before sending, so a task run twice emails once.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="notices")
    followup = models.ForeignKey(FollowUp, on_delete=models.CASCADE, related_name="notices")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["change", "followup"], name="followups_notice_one_per_change_followup"
            ),
        ]

    def __str__(self) -> str:
        return f"Notice of {self.change} for follow-up {self.followup_id}"


class EscalationRule(models.Model):
    """When an open follow-up is this many business hours past a due time, escalate it once:
    raise its priority, tell the managers, note it on the timeline."""

    class Measure(models.TextChoices):
        FIRST_CONTACT = "first_contact", _("First contact overdue")
        RESOLUTION = "resolution", _("Resolution overdue")

    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    measure = models.CharField(
        max_length=14, choices=Measure.choices, default=Measure.FIRST_CONTACT
    )
    hours_overdue = models.PositiveIntegerField(
        default=0, help_text=_("Business hours past the due time; 0 = as soon as it is overdue.")
    )
    raise_priority_to = models.CharField(
        max_length=10, choices=Priority.choices, default=Priority.HIGH
    )
    notify_managers = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class Escalation(models.Model):
    """One escalation rule fired on one follow-up: at most once (the constraint)."""

    followup = models.ForeignKey(FollowUp, on_delete=models.CASCADE, related_name="escalations")
    rule = models.ForeignKey(EscalationRule, on_delete=models.CASCADE, related_name="escalations")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["followup", "rule"], name="followups_escalation_once_per_rule"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} on follow-up {self.followup_id}"


class StaffEmail(models.Model):
    """An email to a staff member about a follow-up (new assignment, escalation), claimed before
    sending so a task delivered twice emails once. One per timeline event and recipient."""

    class Kind(models.TextChoices):
        ASSIGNED = "assigned", _("Assigned")
        ESCALATED = "escalated", _("Escalated")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    followup = models.ForeignKey(FollowUp, on_delete=models.CASCADE, related_name="staff_emails")
    event = models.ForeignKey(FollowUpEvent, on_delete=models.CASCADE, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "recipient"], name="followups_staffemail_one_per_event_recipient"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} email for follow-up {self.followup_id}"


class PartnerPageToken(models.Model):
    """A secret link to a partner's "you told us, we did" page. Only its SHA-256 is stored; each
    partner email carries a fresh token, valid until ``expires_at``."""

    partner = models.ForeignKey(
        "surveys.Partner", on_delete=models.CASCADE, related_name="page_tokens"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"page token for partner {self.partner_id}"
