"""The Django admin of the survey side: lists, programs, waves, and the partner CSV import.

Admins configure (superusers, or staff in the "Admin" group: they get every surveys permission
here without per-model grants). Invitations and responses are read-only records of what
happened; token hashes are never shown anywhere.
"""

from __future__ import annotations

import datetime as dt
import io

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from nps_project import roles

from . import privacy_admin, services
from .importing import HEADER, partners_import
from .models import Contact, Invitation, Partner, PartnerType, Program, Response, Tier, Wave
from .schedule import Cadence

IMPORT_MAX_BYTES = 5 * 1024 * 1024


class AdminRoleMixin:
    """Members of the "Admin" group may do here what a superuser may, without model grants."""

    def has_module_permission(self, request):
        return roles.is_admin(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return roles.is_admin(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return roles.is_admin(request.user) or super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return roles.is_admin(request.user) or super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return roles.is_admin(request.user) or super().has_delete_permission(request, obj)


class ReadOnlyAdminMixin:
    """A record of what happened: viewable, never added or edited by hand."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _count_of(model, fk: str):
    """A correlated COUNT subquery per row: one query for the whole list, no row fan-out and
    no GROUP BY in the paginator's counts."""
    return Coalesce(
        Subquery(
            model.objects.filter(**{fk: OuterRef("pk")})
            .order_by()
            .values(fk)
            .annotate(n=Count("pk"))
            .values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


# --- Lists ----------------------------------------------------------------------------------


@admin.register(Tier)
class TierAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = ("name", "rank")
    list_editable = ("rank",)
    search_fields = ("name",)


@admin.register(PartnerType)
class PartnerTypeAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = ("name", "rank")
    list_editable = ("rank",)
    search_fields = ("name",)


# --- Partners and contacts ------------------------------------------------------------------


# The admin writes partners and contacts through the same services as the API and the CSV
# import (surveys.services): the forms check with ``partner_validate`` / ``contact_validate``,
# so every problem shows on the form with the services' own messages before anything is saved,
# and the saves call ``partner_create`` / ``partner_update`` / ``contact_create`` /
# ``contact_update`` (names and emails stripped, emails lower-cased and unique in any case,
# owners on the customer-success team, ``updated_at`` left alone when nothing changed).

PARTNER_FIELDS = ("name", "tier", "partner_type", "region", "account_owner", "is_active")
CONTACT_FIELDS = ("partner", "name", "email", "language", "is_active", "is_key")


def _given(form, names) -> dict:
    """The form's cleaned values of ``names`` it has (an inline contact has no partner)."""
    return {name: form.cleaned_data[name] for name in names if name in form.cleaned_data}


def _service_errors_on(form, exc: ValidationError) -> None:
    """A service's ValidationError as the form's errors, each on its field when the form has it."""
    for field, messages_ in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


def _adopt(obj, saved) -> None:
    """Make the admin's object the row the service saved: the admin goes on with ``obj``
    (inlines are saved against it, the history and the redirect name it)."""
    for field in obj._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


class PartnerAdminForm(forms.ModelForm):
    class Meta:
        model = Partner
        fields = PARTNER_FIELDS

    def clean(self):
        cleaned = super().clean()
        checked = ("name", "tier", "partner_type", "region", "account_owner")
        try:
            services.partner_validate(
                partner_id=self.instance.pk,
                # A field that failed its own check is not checked again.
                **{name: cleaned.get(name, services.UNCHANGED) for name in checked},
            )
        except ValidationError as exc:
            _service_errors_on(self, exc)
        return cleaned


class ContactAdminForm(forms.ModelForm):
    """On the contact page and as a row of the partner page (there without a partner field)."""

    class Meta:
        model = Contact
        fields = CONTACT_FIELDS

    def clean(self):
        cleaned = super().clean()
        checked = ("partner", "name", "email", "language")
        try:
            services.contact_validate(
                contact_id=self.instance.pk,
                **{name: cleaned.get(name, services.UNCHANGED) for name in checked},
            )
        except ValidationError as exc:
            _service_errors_on(self, exc)
        return cleaned


class ContactInlineFormSet(forms.BaseInlineFormSet):
    """The partner page's contacts, saved through the contact services."""

    def clean(self):
        super().clean()
        # Two rows of one submission with the same email in another letter case: each passes
        # on its own (the other is not saved yet), so compare them here.
        seen: dict[str, int] = {}
        for index, form in enumerate(self.forms):
            if not form.has_changed() or self._should_delete_form(form):
                continue
            email = (form.cleaned_data.get("email") or "").strip().lower()
            if email and email in seen:
                form.add_error("email", f"Row {seen[email] + 1} has this email address too.")
            seen.setdefault(email, index)

    # The row's "partner" is this page's partner (the formset adds it to each row).
    ROW_FIELDS = tuple(name for name in CONTACT_FIELDS if name != "partner")

    def save_new(self, form, commit=True):
        return services.contact_create(partner=self.instance, **_given(form, self.ROW_FIELDS))

    def save_existing(self, form, obj, commit=True):
        return services.contact_update(contact_id=obj.pk, **_given(form, self.ROW_FIELDS))


class ContactInline(AdminRoleMixin, admin.TabularInline):
    model = Contact
    form = ContactAdminForm
    formset = ContactInlineFormSet
    fields = ("name", "email", "language", "is_active", "is_key", "opted_out_at", "bounced_at")
    readonly_fields = ("opted_out_at", "bounced_at")
    extra = 0
    show_change_link = True


@admin.register(Partner)
class PartnerAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "tier",
        "partner_type",
        "region",
        "account_owner",
        "is_active",
        "contact_count",
    )
    list_filter = (
        "is_active",
        "tier",
        "partner_type",
        "region",
        ("account_owner", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("tier", "partner_type", "account_owner")
    search_fields = ("name", "region")
    autocomplete_fields = ("account_owner",)
    form = PartnerAdminForm
    readonly_fields = ("created_at", "updated_at")
    inlines = (ContactInline,)

    def save_model(self, request, obj, form, change):
        data = _given(form, PARTNER_FIELDS)
        if change:
            saved = services.partner_update(partner_id=obj.pk, **data)
        else:
            saved = services.partner_create(**data)
        _adopt(obj, saved)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(contact_count=_count_of(Contact, "partner"))

    @admin.display(description="contacts", ordering="contact_count")
    def contact_count(self, obj):
        return obj.contact_count

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="surveys_partner_import",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": roles.is_admin(request.user)}
        return super().changelist_view(request, extra_context=extra_context)

    def import_view(self, request):
        """Upload a partners CSV; shows every bad row, or the counts of what changed."""
        if not roles.is_admin(request.user):
            raise PermissionDenied
        report = None
        if request.method == "POST":
            form = PartnerImportForm(request.POST, request.FILES)
            if form.is_valid():
                report = partners_import(
                    file=io.StringIO(form.cleaned_data["text"], newline=""),
                    dry_run=form.cleaned_data["dry_run"],
                )
                if report.ok and not report.dry_run:
                    messages.success(request, f"Imported partners: {report.summary()}")
        else:
            form = PartnerImportForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Import partners (CSV)",
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "header": HEADER,
        }
        return TemplateResponse(request, "admin/surveys/partner/import.html", context)


class PartnerImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8, comma-separated, one row per contact, at most 5 MB.",
    )
    dry_run = forms.BooleanField(
        required=False,
        label="Dry run",
        help_text="Check the file and show what would change; write nothing.",
    )

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is None:
            return cleaned
        if upload.size > IMPORT_MAX_BYTES:
            raise forms.ValidationError("The file is larger than 5 MB; split it into parts.")
        try:
            cleaned["text"] = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError(
                "The file is not UTF-8 text; save it as “CSV UTF-8” and upload it again."
            ) from None
        return cleaned


@admin.register(Contact)
class ContactAdmin(AdminRoleMixin, admin.ModelAdmin):
    form = ContactAdminForm
    list_display = (
        "name",
        "email",
        "partner",
        "language",
        "is_active",
        "is_key",
        "opted_out_at",
        "bounced_at",
        "complained_at",
    )
    list_filter = (
        "is_key",
        "language",
        ("opted_out_at", admin.EmptyFieldListFilter),
        ("bounced_at", admin.EmptyFieldListFilter),
        ("complained_at", admin.EmptyFieldListFilter),
        "is_active",
    )
    list_select_related = ("partner",)
    search_fields = ("email", "name", "partner__name")
    autocomplete_fields = ("partner",)
    readonly_fields = (
        "opted_out_at",
        "bounced_at",
        "bounce_reason",
        "complained_at",
        "created_at",
        "updated_at",
    )
    fields = (
        "partner",
        "name",
        "email",
        "language",
        "is_active",
        "is_key",
        "opted_out_at",
        "bounced_at",
        "bounce_reason",
        "complained_at",
        "created_at",
        "updated_at",
    )
    actions = (
        "resubscribe",
        "clear_delivery_block",
        privacy_admin.export_personal_data,
        privacy_admin.erase_personal_data,
    )

    def save_model(self, request, obj, form, change):
        data = _given(form, CONTACT_FIELDS)
        if change:
            saved = services.contact_update(contact_id=obj.pk, **data)
        else:
            saved = services.contact_create(**data)
        _adopt(obj, saved)

    def has_resubscribe_permission(self, request):
        return roles.is_admin(request.user)

    @admin.action(description="Re-subscribe (clear the opt-out)", permissions=["resubscribe"])
    def resubscribe(self, request, queryset):
        if not roles.is_admin(request.user):  # the action list hides it; this guards a forged POST
            raise PermissionDenied
        contacts = services.contacts_resubscribe(contact_ids=queryset.values_list("pk", flat=True))
        for contact in contacts:
            self.log_change(request, contact, "Re-subscribed: cleared the opt-out.")
        skipped = queryset.count() - len(contacts)
        self.message_user(
            request,
            f"Re-subscribed {len(contacts)} contact(s); {skipped} were not opted out.",
            messages.SUCCESS,
        )

    @admin.action(
        description="Clear the bounce and spam complaint (the address works again)",
        permissions=["resubscribe"],
    )
    def clear_delivery_block(self, request, queryset):
        if not roles.is_admin(request.user):
            raise PermissionDenied
        contacts = services.contacts_clear_delivery_block(
            contact_ids=queryset.values_list("pk", flat=True)
        )
        for contact in contacts:
            what = " and ".join(
                text
                for text, when in (
                    (f"the bounce ({contact.bounce_reason or 'no reason'})", contact.bounced_at),
                    ("the spam complaint", contact.complained_at),
                )
                if when
            )
            self.log_change(request, contact, f"Cleared {what}.")
        self.message_user(
            request,
            f"Cleared {len(contacts)} contact(s); the others had no bounce or complaint.",
            messages.SUCCESS,
        )


# --- Programs and waves ---------------------------------------------------------------------


def _format_wave_date(when: dt.datetime, zone) -> str:
    local = when.astimezone(zone)
    utc = when.astimezone(dt.UTC)
    return f"{local:%a %d %b %Y, %H:%M} {zone.key} ({utc:%Y-%m-%d %H:%M} UTC)"


PREVIEW_TOKEN = "preview-not-a-real-link-000000000"


def _sample_invitation(program: Program, language: str) -> Invitation:
    """An unsaved invitation of a sample contact, to render a program's email for a preview."""
    partner = Partner(name="Example Partner Ltd", region="EMEA")
    contact = Contact(name="Alex Example", email="alex@partner.example", language=language)
    contact.partner = partner
    opens_at = timezone.now()
    wave = Wave(
        program=program,
        label="Preview",
        opens_at=opens_at,
        closes_at=opens_at + dt.timedelta(days=program.response_window_days or 14),
    )
    return Invitation(wave=wave, contact=contact)


@admin.register(Program)
class ProgramAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = ("name", "is_active", "frequency", "time_zone", "next_wave")
    list_filter = ("is_active", "frequency")
    search_fields = ("name",)
    readonly_fields = ("upcoming_waves", "email_preview", "created_at", "updated_at")
    fieldsets = (
        (
            "Wording",
            {
                "fields": (
                    "name",
                    "is_active",
                    "sender_name",
                    "subject",
                    "intro",
                    "question",
                    "why_prompt",
                    "extra_questions",
                ),
                "description": (
                    "Wording left at its default is translated into the contact's language; "
                    "wording you write is sent as written."
                ),
            },
        ),
        (
            "Branding",
            {"fields": ("logo_url", "brand_colour", "email_preview")},
        ),
        (
            "Audience",
            {
                "fields": ("tiers", "partner_types", "regions"),
                "description": "An empty selection means everyone.",
            },
        ),
        (
            "Cadence",
            {
                "fields": (
                    "frequency",
                    "anchor_month",
                    "anchor_day",
                    "send_hour",
                    "time_zone",
                    "starts_on",
                    "response_window_days",
                    "upcoming_waves",
                )
            },
        ),
        (
            "Reminders, throttle and send rate",
            {
                "fields": (
                    "reminder_days",
                    "max_reminders",
                    "throttle_days",
                    "send_rate_per_minute",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    actions = ("pause", "resume")

    @admin.action(description="Pause the schedule (no new waves)")
    def pause(self, request, queryset):
        for program in queryset.filter(is_active=True):
            Program.objects.filter(pk=program.pk).update(is_active=False)
            self.log_change(request, program, "Paused the schedule.")
        self.message_user(request, "Paused. Open waves keep running until they close.")

    @admin.action(description="Resume the schedule")
    def resume(self, request, queryset):
        for program in queryset.filter(is_active=False):
            Program.objects.filter(pk=program.pk).update(is_active=True)
            self.log_change(request, program, "Resumed the schedule.")
        self.message_user(
            request,
            "Resumed. The current period's wave opens at the next tick if it is still "
            "open for answers; missed periods are recorded as skipped.",
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/email-preview/<str:language>/",
                self.admin_site.admin_view(self.email_preview_view),
                name="surveys_program_email_preview",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="invitation email preview")
    def email_preview(self, obj):
        if obj is None or obj.pk is None:
            return "Save the program to preview its invitation email."
        return format_html_join(
            " · ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:surveys_program_email_preview", args=[obj.pk, code]), name)
                for code, name in settings.LANGUAGES
            ),
        )

    def email_preview_view(self, request, object_id, language):
        """The invitation email of this program as a sample contact in ``language`` gets it:
        subject, sender, the plain-text part and the HTML part (in a sandboxed frame). Its links
        carry a placeholder, not a real token, and nothing is stored or sent."""
        program = self.get_object(request, object_id)
        if program is None or not self.has_view_permission(request, program):
            raise PermissionDenied
        if language not in dict(settings.LANGUAGES):
            raise Http404
        message = services.invitation_message(
            invitation=_sample_invitation(program, language), token=PREVIEW_TOKEN
        )
        (html, _mimetype), *_ = message.alternatives
        context = {
            **self.admin_site.each_context(request),
            "title": f"Invitation email preview: {program.name}",
            "opts": self.model._meta,
            "original": program,
            "message": message,
            "html": html,
            "language": language,
            "languages": [
                (
                    code,
                    name,
                    reverse("admin:surveys_program_email_preview", args=[program.pk, code]),
                )
                for code, name in settings.LANGUAGES
            ],
        }
        return TemplateResponse(request, "admin/surveys/program/email_preview.html", context)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name in ("tiers", "partner_types"):
            kwargs["widget"] = forms.CheckboxSelectMultiple
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @staticmethod
    def _upcoming(obj: Program) -> list[dt.datetime] | None:
        try:
            return Cadence.of(obj).upcoming(timezone.now())
        except (ValueError, TypeError):
            return None

    @admin.display(description="next wave")
    def next_wave(self, obj):
        dates = self._upcoming(obj)
        if not dates:
            return "-"
        return _format_wave_date(dates[0], Cadence.of(obj).zone)

    @admin.display(description="next four waves open")
    def upcoming_waves(self, obj):
        if obj is None or obj.pk is None:
            return "Save the program to see its wave dates."
        dates = self._upcoming(obj)
        if dates is None:
            return "Fix the cadence to see the wave dates."
        zone = Cadence.of(obj).zone
        return format_html(
            "<ul>{}</ul>",
            format_html_join("", "<li>{}</li>", ((_format_wave_date(d, zone),) for d in dates)),
        )


@admin.register(Wave)
class WaveAdmin(AdminRoleMixin, admin.ModelAdmin):
    list_display = (
        "program",
        "label",
        "status",
        "opens_at",
        "closes_at",
        "invitation_count",
        "response_count",
    )
    list_filter = ("status", "program")
    list_select_related = ("program",)
    search_fields = ("label", "program__name")
    fields = (
        "program",
        "label",
        "period_start",
        "status",
        "opens_at",
        "closes_at",
        "invitation_count",
        "response_count",
        "created_at",
        "updated_at",
    )
    readonly_fields = (
        "program",
        "label",
        "period_start",
        "opens_at",
        "closes_at",
        "invitation_count",
        "response_count",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request, *args):
        return False  # the beat tick opens waves

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                invitation_count=_count_of(Invitation, "wave"),
                response_count=_count_of(Response, "wave"),
            )
        )

    @admin.display(description="invitations", ordering="invitation_count")
    def invitation_count(self, obj):
        return obj.invitation_count

    @admin.display(description="responses", ordering="response_count")
    def response_count(self, obj):
        return obj.response_count


# --- Records: invitations and responses (tokens are never shown) ----------------------------


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, AdminRoleMixin, admin.ModelAdmin):
    list_display = (
        "contact_email",
        "partner",
        "wave",
        "status",
        "attempts",
        "sent_at",
        "reminders_sent",
        "answered",
    )
    list_filter = ("status", "wave__program", "wave")
    list_select_related = ("contact__partner", "wave__program", "response")
    search_fields = ("contact__email",)
    fields = (
        "wave",
        "contact",
        "status",
        "attempts",
        "last_error",
        "enqueued_at",
        "next_attempt_at",
        "claimed_at",
        "sent_at",
        "reminders_sent",
        "last_reminded_at",
        "first_opened_at",
        "created_at",
        "updated_at",
    )

    @admin.display(description="email", ordering="contact__email")
    def contact_email(self, obj):
        return obj.contact.email

    @admin.display(description="partner", ordering="contact__partner__name")
    def partner(self, obj):
        return obj.contact.partner.name

    @admin.display(description="answered", boolean=True)
    def answered(self, obj):
        return hasattr(obj, "response")


@admin.register(Response)
class ResponseAdmin(ReadOnlyAdminMixin, AdminRoleMixin, admin.ModelAdmin):
    list_display = (
        "submitted_at",
        "contact_email",
        "partner",
        "wave",
        "score",
        "category",
        "short_comment",
    )
    list_filter = ("category", "program", "wave", "tier", "partner_type", "region")
    list_select_related = ("contact", "partner", "wave__program")
    search_fields = ("contact__email",)
    date_hierarchy = "submitted_at"
    fields = (
        "wave",
        "partner",
        "contact",
        "score",
        "category",
        "comment",
        "language",
        "tier",
        "partner_type",
        "region",
        "account_owner",
        "submitted_at",
        "updated_at",
    )

    @admin.display(description="email", ordering="contact__email")
    def contact_email(self, obj):
        return obj.contact.email

    @admin.display(description="comment")
    def short_comment(self, obj):
        return obj.comment if len(obj.comment) <= 80 else obj.comment[:79] + "…"
