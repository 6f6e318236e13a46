"""Admin actions on contacts for data-subject requests: export as JSON, erase (after a
confirmation page). Both are recorded in the audit log (``audit.AuditEntry``)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse

from audit.services import Action, audit_record
from nps_project import roles

from . import privacy


@admin.action(description="Export personal data (JSON)", permissions=["resubscribe"])
def export_personal_data(modeladmin, request, queryset):
    if not roles.is_admin(request.user):  # the action list hides it; this guards a forged POST
        raise PermissionDenied
    contacts = list(queryset.order_by("pk").values_list("pk", flat=True))
    data = [privacy.contact_data_export(contact_id=pk) for pk in contacts]
    for pk in contacts:
        audit_record(
            actor=request.user,
            action=Action.EXPORT,
            target="contact",
            target_id=pk,
            request=request,
        )
    response = HttpResponse(
        json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False),
        content_type="application/json; charset=utf-8",
    )
    name = f"contact-{contacts[0]}" if len(contacts) == 1 else "contacts"
    response["Content-Disposition"] = f'attachment; filename="{name}-personal-data.json"'
    response["Cache-Control"] = "no-store"
    return response


@admin.action(description="Erase personal data (keeps scores)…", permissions=["resubscribe"])
def erase_personal_data(modeladmin, request, queryset):
    if not roles.is_admin(request.user):
        raise PermissionDenied
    if request.POST.get("confirm") != "yes":
        return TemplateResponse(
            request,
            "admin/surveys/contact/erase_confirm.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": "Erase personal data",
                "contacts": queryset.select_related("partner"),
                "opts": modeladmin.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )
    erased = sum(
        privacy.contact_erase(contact_id=pk, by=request.user, request=request)
        for pk in queryset.values_list("pk", flat=True)
    )
    modeladmin.message_user(
        request,
        f"Erased the personal data of {erased} contact(s); scores and segments are kept. "
        "Recorded in the audit log.",
        messages.SUCCESS,
    )
    return None
