"""The ``data`` of each webhook event, built from model rows, and its Slack text.

The services that emit events call these builders, so every receiver gets the same shape.
Each builder reads only the given rows and their ``select_related`` parents.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import NoReverseMatch, reverse


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _user(user) -> dict | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.get_username(), "email": user.email}


def _followup_url(followup_id: int) -> str | None:
    try:
        return settings.SITE_URL + reverse("followups:detail", args=[followup_id])
    except NoReverseMatch:
        return None


def response_data(response) -> dict:
    """``response.created``: a partner answered for the first time (revisions are not sent)."""
    return {
        "response_id": response.pk,
        "program_id": response.program_id,
        "wave_id": response.wave_id,
        "partner": {"id": response.partner_id, "name": response.partner.name},
        "contact_id": response.contact_id,
        "score": response.score,
        "category": response.category,
        "comment": response.comment,
        "tier": response.tier,
        "partner_type": response.partner_type,
        "region": response.region,
        "submitted_at": _iso(response.submitted_at),
    }


def followup_data(followup) -> dict:
    """``followup.created`` and ``followup.overdue``."""
    response = followup.response  # None for a "no response" follow-up
    return {
        "followup_id": followup.pk,
        "kind": getattr(followup, "kind", "response"),
        "response_id": followup.response_id,
        "partner": {"id": followup.partner_id, "name": followup.partner.name},
        "score": response.score if response is not None else None,
        "comment": response.comment if response is not None else "",
        "status": followup.status,
        "priority": followup.priority,
        "assignee": _user(followup.assignee),
        "due_at": _iso(followup.due_at),
        "url": _followup_url(followup.pk),
    }


def status_change_data(followup, *, old_status: str, by) -> dict:
    """``followup.status_changed``."""
    return {
        "followup_id": followup.pk,
        "partner": {"id": followup.partner_id, "name": followup.partner.name},
        "old_status": old_status,
        "new_status": followup.status,
        "actor": _user(by),
        "url": _followup_url(followup.pk),
    }


def change_data(change) -> dict:
    """``change.shipped``."""
    return {
        "change_id": change.pk,
        "title": change.title,
        "description": change.description,
        "category": change.category,
        "status": change.status,
        "shipped_at": _iso(change.shipped_at),
        "followup_ids": sorted(change.followups.values_list("pk", flat=True)),
    }


def loop_closed_data(followup, *, change) -> dict:
    """``loop.closed``: the partner was told what changed."""
    return {
        "followup_id": followup.pk,
        "partner": {"id": followup.partner_id, "name": followup.partner.name},
        "change_id": change.pk,
        "change_title": change.title,
        "loop_closed_at": _iso(followup.loop_closed_at),
        "loop_closed_by": _user(followup.loop_closed_by),
    }


def wants_slack(event: str, data: dict) -> bool:
    """Slack subscriptions get detractor alerts, not every promoter: a response is posted only
    when it is a detractor's; the other events always."""
    if event == "response.created":
        return data.get("category") == "detractor"
    return True


def slack_text(event: str, data: dict) -> str:
    partner = (data.get("partner") or {}).get("name", "a partner")
    link = f" <{data['url']}|Open follow-up>" if data.get("url") else ""
    comment = data.get("comment") or ""
    quoted = f"\n> {comment[:500]}" if comment else ""
    if event == "response.created":
        return f":rotating_light: Detractor alert: {partner} scored {data.get('score')}/10.{quoted}"
    if event == "followup.created":
        assignee = (data.get("assignee") or {}).get("username", "nobody yet")
        return (
            f":rotating_light: Detractor alert: {partner} scored {data.get('score')}/10; "
            f"follow-up #{data.get('followup_id')} is assigned to {assignee}.{link}{quoted}"
        )
    if event == "followup.overdue":
        return f":alarm_clock: Follow-up #{data.get('followup_id')} for {partner} is overdue.{link}"
    if event == "followup.status_changed":
        return (
            f"Follow-up #{data.get('followup_id')} for {partner} moved from "
            f"{data.get('old_status')} to {data.get('new_status')}.{link}"
        )
    if event == "change.shipped":
        return f":rocket: Shipped: {data.get('title')}"
    if event == "loop.closed":
        title = data.get("change_title")
        return f":white_check_mark: Loop closed with {partner}: told about “{title}”."
    return f"{event}: {data}"
