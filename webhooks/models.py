"""Webhook subscriptions and their deliveries.

A delivery is one event for one subscription: one row per (subscription, event id), a database
constraint, so an event is never queued twice for the same receiver. The row is claimed with a
conditional UPDATE before it is sent, so a task delivered twice posts once.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Subscription(models.Model):
    class Event(models.TextChoices):
        RESPONSE_CREATED = "response.created", _("Response created")
        FOLLOWUP_CREATED = "followup.created", _("Follow-up created")
        FOLLOWUP_STATUS_CHANGED = "followup.status_changed", _("Follow-up status changed")
        FOLLOWUP_OVERDUE = "followup.overdue", _("Follow-up overdue")
        CHANGE_SHIPPED = "change.shipped", _("Change shipped")
        LOOP_CLOSED = "loop.closed", _("Loop closed")

    class Format(models.TextChoices):
        JSON = "json", _("JSON (signed)")
        SLACK = "slack", _("Slack incoming webhook")

    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text=_('Event names, e.g. ["followup.created"].'))
    # Kept in clear because every delivery is signed with it; shown to the admin only once, in
    # the answer that creates the subscription.
    secret = models.CharField(max_length=80, editable=False)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.JSON)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_subscriptions",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.events)})"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The same id for every subscription that receives the event: receivers de-duplicate by it.
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=40)
    # The JSON envelope as sent: {"id", "event", "created_at", "data"}.
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"],
                name="webhooks_delivery_one_per_subscription_event",
            ),
        ]
        indexes = [
            # Serves the reconciliation sweep: "pending or stuck deliveries that are due".
            models.Index(
                fields=["status", "next_attempt_at"],
                name="webhooks_delivery_due_idx",
                condition=Q(status__in=["pending", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.event_id} to subscription {self.subscription_id}"
