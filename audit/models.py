"""The audit log: who viewed or exported partners' answers, and who exported or erased a
contact's personal data. Append-only: rows are written by ``audit.services`` and never changed.

Changes to follow-ups are not repeated here: each follow-up's timeline
(``followups.models.FollowUpEvent``) already records every change of status, owner or note with
its actor and time, in the same transaction as the change.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        EXPORT = "export", "Exported"
        ERASE = "erase", "Erased"
        ANONYMISE = "anonymise", "Anonymised"

    # Null for the system (the retention task); SET_NULL keeps the entry if the user goes,
    # ``actor_name`` keeps who it was.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_entries",
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    # What was seen or changed: "followup", "partner", "comments", "responses.csv",
    # "segments.csv", "api.responses", "contact", "program".
    target = models.CharField(max_length=40)
    target_id = models.CharField(max_length=40, blank=True)
    # Filters of a list or export, row counts; never the answers themselves.
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "audit entries"
        indexes = [
            # Serves "what did this person see": the admin's filter by actor, newest first.
            models.Index(fields=["actor", "-created_at"], name="audit_entry_actor_time"),
            # Serves "who saw this follow-up / erased this contact".
            models.Index(fields=["target", "target_id"], name="audit_entry_target"),
        ]

    def __str__(self) -> str:
        who = self.actor_name or "system"
        return f"{who} {self.action} {self.target} {self.target_id}".strip()
