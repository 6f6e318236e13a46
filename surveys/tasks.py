"""Celery tasks for the survey side. Each is thin: it takes ids and calls one service, which is
idempotent, so a task delivered twice is harmless."""

from smtplib import SMTPException

from celery import shared_task

from . import services
from .models import Wave

# Only the opening of the SMTP connection raises out of a send service (nothing is claimed by
# then); every per-message failure is recorded on the row and taken up again by the sweep.
SEND_RETRY = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (SMTPException, ConnectionError, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "max_retries": 8,
}


@shared_task
def run_survey_tick() -> dict:
    """Beat, every minute: open due waves, close ended ones, enqueue unsent invitations (at
    most the rate limits' worth)."""
    opened = services.waves_open_due()
    closed = services.waves_close_due()
    enqueued = services.invitations_enqueue_due()
    return {"opened": [w.pk for w in opened], "closed": closed, "enqueued": enqueued}


@shared_task
def run_reminder_tick() -> int:
    """Beat, every five minutes: enqueue the reminders that are due."""
    return services.reminders_enqueue_due()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def populate_wave(wave_id: int) -> int:
    """Create a newly opened wave's invitations and enqueue their sending."""
    wave = Wave.objects.select_related("program").get(pk=wave_id)
    return services.invitations_create(wave=wave)


@shared_task(**SEND_RETRY)
def send_invitations(invitation_ids: list[int]) -> int:
    """Email one batch of invitations over one SMTP connection."""
    return services.invitations_send(invitation_ids=invitation_ids)


@shared_task(**SEND_RETRY)
def send_reminders(invitation_ids: list[int]) -> int:
    """Email one batch of reminders over one SMTP connection."""
    return services.reminders_send(invitation_ids=invitation_ids)


@shared_task
def settle_responses() -> int:
    """Beat, every few seconds: the new answers' follow-ups, webhooks and revision notes."""
    return services.responses_settle_pending()


@shared_task
def reconcile_surveys() -> int:
    """Beat, every five minutes: put invitations stuck in flight back in the queue."""
    return services.invitations_enqueue_due()


@shared_task
def apply_retention() -> dict:
    """Beat, daily: anonymise comments and contact details past their program's retention
    (``surveys.privacy.retention_apply``), recorded in the audit log as the system's doing."""
    from audit.services import Action, audit_record

    from .privacy import retention_apply

    report = retention_apply().as_dict()
    if any(report.values()):
        audit_record(actor=None, action=Action.ANONYMISE, target="retention", detail=report)
    return report
