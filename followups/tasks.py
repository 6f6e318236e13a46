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


@shared_task
def reconcile_followups() -> dict:
    """Beat, every five minutes: repair detractors without a follow-up and stuck notices."""
    return {
        "followups_created": services.followups_reconcile(),
        "notices_requeued": services.notices_requeue_stale(),
    }
