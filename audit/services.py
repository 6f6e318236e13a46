"""Writing the audit log. Views, API views and admin actions call ``audit_record``."""

from __future__ import annotations

from .models import AuditEntry

Action = AuditEntry.Action


def _ip(request) -> str | None:
    if request is None:
        return None
    from nps_project.security import client_ip

    return client_ip(request)


def audit_record(
    *,
    actor,
    action: str,
    target: str,
    target_id: int | str | None = "",
    detail: dict | None = None,
    request=None,
) -> AuditEntry:
    """Append one entry: ``actor`` (a user, or None for the system) did ``action`` on
    ``target`` (``target_id``). ``detail`` holds filters and counts, never personal data.
    One INSERT; it joins the caller's transaction if there is one."""
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEntry.objects.create(
        actor=actor if is_user else None,
        actor_name=actor.get_username() if is_user else "",
        action=action,
        target=target,
        target_id="" if target_id is None else str(target_id),
        detail=detail or {},
        ip_address=_ip(request),
    )


def query_detail(request, *names: str) -> dict:
    """The non-empty query parameters of ``request`` (optionally only ``names``), for
    ``detail``: which filters a list or an export was made with."""
    params = request.GET
    keys = names or tuple(params.keys())
    return {k: params.get(k) for k in keys if params.get(k) not in (None, "")}
