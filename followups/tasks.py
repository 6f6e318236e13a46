"""Celery tasks for follow-ups: thin wrappers around idempotent services."""

from smtplib import SMTPException

from celery import shared_task

from . import services


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(SMTPException, ConnectionError, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def send_partner_notice(notice_id: int) -> bool:
    """Email one "you told us, we did" notice; closes its follow-up's loop."""
    return services.notice_send(notice_id=notice_id)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(SMTPException, ConnectionError, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def send_staff_email(email_id: int) -> bool:
    """Email a staff member about a follow-up (assigned to them, or escalated)."""
    return services.staff_email_send(email_id=email_id)


@shared_task
def reconcile_followups() -> dict:
    """Beat, every five minutes: repair detractors without a follow-up and stuck emails."""
    return {
        "followups_created": services.followups_reconcile(),
        "notices_requeued": services.notices_requeue_stale(),
        "staff_emails_requeued": services.staff_emails_requeue_stale(),
    }


@shared_task
def escalate_overdue_followups() -> int:
    """Beat, every five minutes: escalate open follow-ups past their due times, once per rule."""
    return services.followups_escalate_due()


@shared_task
def create_no_response_followups() -> int:
    """Beat, every fifteen minutes: a "no response" follow-up for each silent key contact."""
    return services.followups_for_silent_key_contacts()
