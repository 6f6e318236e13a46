"""Celery tasks for webhooks: thin wrappers around the idempotent services."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(delivery_id: int) -> str:
    """Post one delivery; schedule the next attempt after a retryable failure. Safe to run twice:
    the service claims the row first, so a second run is skipped."""
    result = services.delivery_attempt(delivery_id=delivery_id)
    if result.retry_in is not None:
        deliver_webhook.apply_async(args=[delivery_id], countdown=result.retry_in)
    return result.status


@shared_task
def reconcile_webhooks() -> int:
    """Beat, every five minutes: re-enqueue due deliveries whose task was lost."""
    due = services.deliveries_due()
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)
