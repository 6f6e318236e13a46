"""Delivery: the provider's bounce and complaint events, and delivery health per wave for staff.

Bounce and complaint events (``POST /delivery/events/``)
    A small JSON format any provider's webhook can be mapped to (or a script can post), signed
    with the shared secret ``NPS_DELIVERY_EVENTS_SECRET``::

        POST /delivery/events/
        Content-Type: application/json
        X-NPS-Timestamp: 1807174800                       (Unix seconds, within 5 minutes)
        X-NPS-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the secret>

        {"events": [
          {"type": "bounce", "email": "anna@example.com", "bounce_type": "hard",
           "reason": "550 5.1.1 user unknown", "at": "2027-04-15T09:00:00+00:00"},
          {"type": "complaint", "email": "ben@example.com"}
        ]}

    ``bounce_type`` is ``hard`` (the default) or ``soft``; soft bounces change nothing. The reply
    is 200 with the counts, 400 listing every bad event (nothing is recorded then), 403 for a
    missing, stale or wrong signature, or when no secret is configured. Events for unknown
    addresses are counted and ignored. The same events from a file: ``manage.py record_bounces``.

Delivery health (``/delivery/`` and ``/delivery/waves/<id>/``)
    For customer-success staff: per wave, invited, sent, failed (with the reasons), cancelled,
    bounced, complained, opted out, reminded, responded and the response rate, each from one
    aggregate query. "Form opened" is deliberately not counted: opening a link records nothing,
    because mail security scanners open every link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from followups.views import cs_required

from . import services
from .models import Invitation, Wave

SIGNATURE_MAX_AGE = 300  # seconds
EVENTS_MAX_BYTES = 1024 * 1024

# --- Selectors ------------------------------------------------------------------------------

_STATUS = "invitations__status"


def waves_with_delivery():
    """Waves (not skipped ones) with their delivery counts, newest first: one query, because
    every count is a conditional aggregate over the same invitation rows (the response and
    contact joins are one-to-one, so nothing is counted twice)."""
    return (
        Wave.objects.exclude(status=Wave.Status.SKIPPED)
        .select_related("program")
        .annotate(
            invited=Count("invitations"),
            sent=Count("invitations", filter=Q(**{_STATUS: Invitation.Status.SENT})),
            failed=Count("invitations", filter=Q(**{_STATUS: Invitation.Status.FAILED})),
            cancelled=Count("invitations", filter=Q(**{_STATUS: Invitation.Status.CANCELLED})),
            pending=Count(
                "invitations",
                filter=Q(
                    **{f"{_STATUS}__in": [Invitation.Status.QUEUED, Invitation.Status.SENDING]}
                ),
            ),
            bounced=Count("invitations", filter=Q(invitations__contact__bounced_at__isnull=False)),
            complained=Count(
                "invitations", filter=Q(invitations__contact__complained_at__isnull=False)
            ),
            opted_out=Count(
                "invitations", filter=Q(invitations__contact__opted_out_at__isnull=False)
            ),
            reminded=Count("invitations", filter=Q(invitations__reminders_sent__gt=0)),
            reminders=Sum("invitations__reminders_sent", default=0),
            responded=Count("invitations__response"),
        )
        .order_by("-opens_at", "-pk")
    )


def response_rate(wave) -> float | None:
    """Responses per email sent, in percent; None before anything was sent."""
    return 100 * wave.responded / wave.sent if wave.sent else None


def failure_reasons(wave: Wave, *, limit: int = 20) -> list[dict]:
    """The reasons failed invitations of ``wave`` were given up on, commonest first."""
    return list(
        Invitation.objects.filter(wave=wave, status=Invitation.Status.FAILED)
        .values("last_error")
        .annotate(n=Count("pk"))
        .order_by("-n", "last_error")[:limit]
    )


# --- Staff pages ----------------------------------------------------------------------------


@require_GET
@cs_required
def health(request):
    page = Paginator(waves_with_delivery(), 25).get_page(request.GET.get("page"))
    rows = [(wave, response_rate(wave)) for wave in page.object_list]
    return render(request, "surveys/delivery_health.html", {"page": page, "rows": rows})


@require_GET
@cs_required
def wave_health(request, wave_id: int):
    wave = get_object_or_404(waves_with_delivery(), pk=wave_id)
    context = {"wave": wave, "rate": response_rate(wave), "reasons": failure_reasons(wave)}
    return render(request, "surveys/delivery_wave.html", context)


# --- Provider events ------------------------------------------------------------------------


def signature_for(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-NPS-Signature`` value of a body sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _check_signature(request) -> None:
    secret = settings.NPS_DELIVERY_EVENTS_SECRET
    if not secret:
        raise PermissionDenied("Delivery events are not enabled: no shared secret is set.")
    timestamp = request.headers.get("X-NPS-Timestamp", "")
    given = request.headers.get("X-NPS-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SIGNATURE_MAX_AGE:
        raise PermissionDenied("Missing or stale X-NPS-Timestamp.")
    if not hmac.compare_digest(given, signature_for(secret, timestamp, request.body)):
        raise PermissionDenied("Bad X-NPS-Signature.")


@csrf_exempt
@require_POST
def provider_events(request):
    """Record signed bounce and complaint events (the format is in this module's docstring)."""
    if len(request.body) > EVENTS_MAX_BYTES:
        return JsonResponse(
            {"errors": ["The body is larger than 1 MB; send fewer events."]}, status=400
        )
    try:
        _check_signature(request)
    except PermissionDenied as exc:
        return JsonResponse({"errors": [str(exc)]}, status=403)
    try:
        payload = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"errors": ["The body is not JSON."]}, status=400)
    events = payload.get("events") if isinstance(payload, dict) else payload
    try:
        report = services.delivery_events_record(events=events)
    except ValidationError as exc:
        return JsonResponse({"errors": exc.messages}, status=400)
    return JsonResponse(
        {
            "bounced": len(report.bounced),
            "complained": len(report.complained),
            "already_marked": report.already_marked,
            "soft_bounces": report.soft_bounces,
            "unknown": len(report.unknown),
        }
    )
