"""Follow-ups on responses, their append-only timeline, root causes and the change log."""

from __future__ import annotations

from django.conf import settings
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


class FollowUp(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CONTACTED = "contacted", _("Contacted")
        ACTION_PLANNED = "planned", _("Action planned")
        RESOLVED = "resolved", _("Resolved")
        LOOP_CLOSED = "closed", _("Loop closed")
        CLOSED_NO_ACTION = "no_action", _("Closed without action")

    class Priority(models.TextChoices):
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    OPEN_STATUSES = (Status.OPEN, Status.CONTACTED, Status.ACTION_PLANNED, Status.RESOLVED)

    # Exactly one follow-up per response: the database holds it.
    response = models.OneToOneField(
        "surveys.Response", on_delete=models.CASCADE, related_name="followup"
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
    first_contacted_at = models.DateTimeField(null=True, blank=True)
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

    def __str__(self) -> str:
        return f"Follow-up #{self.pk} · {self.partner}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def is_overdue(self, now=None) -> bool:
        now = now or timezone.now()
        return self.is_open and self.first_contacted_at is None and self.due_at < now


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
