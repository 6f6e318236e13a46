"""Writes for webhooks: subscribing, emitting events, and delivering them.

``event_emit`` is the one entry point for the rest of the product. It is safe inside a
transaction: it writes one delivery row per interested subscription and enqueues their sending
with ``delay_on_commit``, so a rolled-back transaction sends nothing.

``delivery_attempt`` claims the row (pending -> sending, a conditional UPDATE) before it posts,
so a task delivered twice posts once. Timeouts, connection errors, 408, 429 and 5xx answers are
retried with exponential back-off; other answers fail the delivery at once. Every failed attempt
counts against the subscription; ``NPS_WEBHOOK_DISABLE_AFTER`` failures in a row disable it and
its owner is emailed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import dataclass
from smtplib import SMTPException
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from . import payloads, signing
from .models import Delivery, Subscription

logger = logging.getLogger(__name__)

EVENTS = tuple(Subscription.Event.values)
USER_AGENT = "PartnerNPS-Webhooks/1.0"
# A row claimed ("sending") for longer than this belonged to a worker that died.
STALE_AFTER = dt.timedelta(minutes=15)


def _setting(name: str, default):
    return getattr(settings, name, default)


def timeout_seconds() -> float:
    return float(_setting("NPS_WEBHOOK_TIMEOUT", 5.0))


def max_attempts() -> int:
    return int(_setting("NPS_WEBHOOK_MAX_ATTEMPTS", 8))


def disable_after() -> int:
    return int(_setting("NPS_WEBHOOK_DISABLE_AFTER", 10))


def backoff_seconds(attempts: int) -> int:
    """30 s, 1 min, 2 min, ... doubling after each failed attempt, at most 30 minutes (well under
    Redis' visibility timeout, so a countdown task is not redelivered early)."""
    base = int(_setting("NPS_WEBHOOK_BACKOFF_BASE", 30))
    return min(base * 2 ** max(attempts - 1, 0), 1800)


def _dumps(value) -> bytes:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), sort_keys=True).encode()


# --- Subscriptions --------------------------------------------------------------------------


def validate_subscription(*, url: str, events, fmt: str) -> dict:
    """The cleaned fields, or ``ValidationError`` with a message per field."""
    errors = {}
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        errors["url"] = [_("Give an http:// or https:// URL.")]
    if not isinstance(events, list | tuple) or not events:
        errors["events"] = [_("Choose at least one event.")]
    else:
        unknown = sorted({str(e) for e in events} - set(EVENTS))
        if unknown:
            errors["events"] = [
                _("Unknown event: %(names)s. Choose from %(choices)s.")
                % {"names": ", ".join(unknown), "choices": ", ".join(EVENTS)}
            ]
    if fmt not in Subscription.Format.values:
        errors["format"] = [_("Choose json or slack.")]
    if errors:
        raise ValidationError(errors)
    return {"url": url, "events": sorted(set(events)), "format": fmt}


def subscription_create(
    *, url: str, events: list[str], by, fmt: str = "json", description: str = ""
) -> Subscription:
    """A new active subscription owned by ``by`` with a fresh secret (returned on the object;
    the API shows it only in this answer)."""
    clean = validate_subscription(url=url, events=events, fmt=fmt)
    return Subscription.objects.create(
        **clean, description=description.strip(), owner=by, secret=signing.new_secret()
    )


def subscription_update(
    *,
    subscription_id: int,
    url: str | None = None,
    events: list[str] | None = None,
    fmt: str | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> Subscription:
    """Edit a subscription. Re-activating one resets its failure count."""
    with transaction.atomic():
        sub = Subscription.objects.select_for_update().get(pk=subscription_id)
        clean = validate_subscription(
            url=sub.url if url is None else url,
            events=sub.events if events is None else events,
            fmt=sub.format if fmt is None else fmt,
        )
        sub.url, sub.events, sub.format = clean["url"], clean["events"], clean["format"]
        if description is not None:
            sub.description = description.strip()
        if is_active is True and not sub.is_active:
            sub.is_active, sub.consecutive_failures = True, 0
            sub.disabled_at, sub.disabled_reason = None, ""
        elif is_active is False and sub.is_active:
            sub.is_active, sub.disabled_at = False, timezone.now()
            sub.disabled_reason = _("Disabled by an admin.")
        sub.save()
    return sub


def subscription_rotate_secret(*, subscription_id: int) -> Subscription:
    sub = Subscription.objects.get(pk=subscription_id)
    sub.secret = signing.new_secret()
    sub.save(update_fields=["secret", "updated_at"])
    return sub


# --- Emitting -------------------------------------------------------------------------------


def event_emit(*, event: str, payload: dict) -> uuid.UUID | None:
    """Queue ``event`` with ``payload`` (its ``data``) for every active subscription to it.

    Safe inside a transaction: rows are written in it and sending starts after commit. Returns
    the event id shared by all its deliveries, or None when nobody subscribes.
    """
    if event not in EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}.")
    data = json.loads(_dumps(payload))  # JSON-clean now, so a bad payload fails in the caller
    subscriptions = [
        sub
        for sub in Subscription.objects.filter(is_active=True).only("id", "events", "format")
        if event in sub.events
        and (sub.format != Subscription.Format.SLACK or payloads.wants_slack(event, data))
    ]
    if not subscriptions:
        return None
    event_id = uuid.uuid4()
    envelope = {
        "id": str(event_id),
        "event": event,
        "created_at": timezone.now().isoformat(),
        "data": data,
    }
    from . import tasks

    for sub in subscriptions:
        delivery = Delivery.objects.create(
            subscription=sub, event_id=event_id, event=event, payload=envelope
        )
        tasks.deliver_webhook.delay_on_commit(delivery.pk)
    return event_id


# --- Delivering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    status: str  # a Delivery.Status value, or "skipped" when the row could not be claimed
    retry_in: int | None = None  # seconds until the next attempt, when one is due


def delivery_body(delivery: Delivery) -> bytes:
    if delivery.subscription.format == Subscription.Format.SLACK:
        envelope = delivery.payload
        return _dumps({"text": payloads.slack_text(envelope["event"], envelope["data"])})
    return _dumps(delivery.payload)


def _post(delivery: Delivery, body: bytes) -> tuple[int | None, str, bool]:
    """POST the body; returns (status code or None, error text, retryable)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.SIGNATURE_HEADER: signing.signature_header(delivery.subscription.secret, body),
        signing.EVENT_ID_HEADER: str(delivery.event_id),
        signing.EVENT_HEADER: delivery.event,
    }
    try:
        answer = requests.post(
            delivery.subscription.url,
            data=body,
            headers=headers,
            timeout=timeout_seconds(),
            allow_redirects=False,
        )
    except requests.Timeout:
        return None, _("Timed out after %(s)s seconds.") % {"s": timeout_seconds()}, True
    except requests.ConnectionError as exc:
        return None, f"Connection error: {exc}"[:1000], True
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:1000], False
    code = answer.status_code
    if 200 <= code < 300:
        return code, "", False
    retryable = code >= 500 or code in (408, 429)
    return code, f"HTTP {code}: {answer.text[:300]}", retryable


def delivery_attempt(*, delivery_id: int, now: dt.datetime | None = None) -> AttemptResult:
    """Claim one due delivery, post it, and record the outcome. Idempotent: a delivery that is
    not pending (or not yet due) is skipped."""
    now = now or timezone.now()
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return AttemptResult("skipped")
    delivery = Delivery.objects.select_related("subscription__owner").get(pk=delivery_id)
    sub = delivery.subscription
    if not sub.is_active:
        Delivery.objects.filter(pk=delivery_id).update(
            status=Delivery.Status.FAILED, error=_("The subscription is disabled.")
        )
        return AttemptResult(Delivery.Status.FAILED)
    body = delivery_body(delivery)
    started = time.monotonic()
    code, error, retryable = _post(delivery, body)
    duration_ms = int((time.monotonic() - started) * 1000)
    finished = timezone.now()
    if not error:
        Delivery.objects.filter(pk=delivery_id).update(
            status=Delivery.Status.DELIVERED,
            response_code=code,
            duration_ms=duration_ms,
            error="",
            delivered_at=finished,
            next_attempt_at=None,
        )
        Subscription.objects.filter(pk=sub.pk, consecutive_failures__gt=0).update(
            consecutive_failures=0
        )
        return AttemptResult(Delivery.Status.DELIVERED)
    logger.warning(
        "Webhook delivery %s failed (attempt %s): %s", delivery_id, delivery.attempts, error
    )
    still_active = _count_failure(sub, reason=error, now=finished)
    retry = retryable and still_active and delivery.attempts < max_attempts()
    retry_in = backoff_seconds(delivery.attempts) if retry else None
    Delivery.objects.filter(pk=delivery_id).update(
        status=Delivery.Status.PENDING if retry else Delivery.Status.FAILED,
        response_code=code,
        duration_ms=duration_ms,
        error=error,
        next_attempt_at=finished + dt.timedelta(seconds=retry_in) if retry else None,
    )
    return AttemptResult(
        Delivery.Status.PENDING if retry else Delivery.Status.FAILED, retry_in=retry_in
    )


def _count_failure(sub: Subscription, *, reason: str, now: dt.datetime) -> bool:
    """Add one failure to the subscription's run; disable it at the limit. Returns whether the
    subscription is still active."""
    Subscription.objects.filter(pk=sub.pk).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    failures = Subscription.objects.values_list("consecutive_failures", flat=True).get(pk=sub.pk)
    if failures < disable_after():
        return True
    disabled = Subscription.objects.filter(pk=sub.pk, is_active=True).update(
        is_active=False,
        disabled_at=now,
        disabled_reason=(
            _("Disabled after %(n)s failed deliveries in a row. Last error: %(error)s")
            % {"n": failures, "error": reason}
        )[:300],
    )
    if disabled:  # only the worker that disabled it tells the owner
        Delivery.objects.filter(subscription_id=sub.pk, status=Delivery.Status.PENDING).update(
            status=Delivery.Status.FAILED, error=_("The subscription was disabled.")
        )
        _email_owner_disabled(sub, failures=failures, reason=reason)
    return False


def _email_owner_disabled(sub: Subscription, *, failures: int, reason: str) -> None:
    from nps_project.emailing import render_email

    owner = sub.owner
    if owner is None or not owner.email:
        logger.error("Webhook subscription %s disabled; it has no owner to email.", sub.pk)
        return
    message = render_email(
        "webhook_disabled",
        {"subscription": sub, "failures": failures, "reason": reason, "owner": owner},
        to=owner.email,
    )
    try:
        message.send()
    except (SMTPException, OSError):
        logger.exception("Could not email %s that subscription %s was disabled.", owner, sub.pk)


def deliveries_due(*, now: dt.datetime | None = None, limit: int = 1000) -> list[int]:
    """The reconciliation sweep: put deliveries stuck in "sending" (their worker died) back in
    the queue, and return the pending ones that are due, oldest first, for re-enqueueing."""
    now = now or timezone.now()
    Delivery.objects.filter(
        status=Delivery.Status.SENDING, claimed_at__lt=now - STALE_AFTER
    ).update(status=Delivery.Status.PENDING, next_attempt_at=F("claimed_at"))
    due = Delivery.objects.filter(status=Delivery.Status.PENDING).filter(
        Q(next_attempt_at__isnull=True, created_at__lt=now - dt.timedelta(minutes=1))
        | Q(next_attempt_at__lte=now - dt.timedelta(minutes=1))
    )
    return list(due.order_by("pk").values_list("pk", flat=True)[:limit])
