"""Admin for follow-ups and changes.

The workflow (status, assignee, links, partner emails) runs through the services on the staff
pages, which write the timeline; here those fields are read-only so the admin cannot bypass it.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from nps_project import roles

from . import services
from .models import (
    Change,
    EscalationRule,
    FollowUp,
    FollowUpEvent,
    FollowUpRule,
    Holiday,
    PartnerNotice,
    RootCause,
    StaffEmail,
    WorkingCalendar,
)


class AdminOnlyMixin:
    """Configuration only admins may see and change (rules, calendar, escalation)."""

    def has_module_permission(self, request):
        return roles.is_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return roles.is_admin(request.user)

    def has_add_permission(self, request, *args):
        return roles.is_admin(request.user)

    def has_change_permission(self, request, obj=None):
        return roles.is_admin(request.user)

    def has_delete_permission(self, request, obj=None):
        return roles.is_admin(request.user)


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class FollowUpEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The timeline, append-only: shown, never added to, edited or deleted here."""

    model = FollowUpEvent
    fields = ("created_at", "actor", "kind", "old_value", "new_value", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


@admin.register(FollowUp)
class FollowUpAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "partner",
        "score",
        "status",
        "priority",
        "assignee",
        "due_at",
        "first_contacted_at",
    )
    list_select_related = ("partner", "assignee", "response")
    list_filter = ("kind", "status", "priority", "partner__tier", "assignee", "root_cause")
    search_fields = ("=id", "partner__name", "response__comment", "response__contact__email")
    date_hierarchy = "created_at"
    ordering = ("due_at", "id")
    inlines = [FollowUpEventInline]
    # Priority and due time are plain fields; everything the timeline records is read-only.
    fields = (
        "open_in_app",
        "kind",
        "partner",
        "response",
        "invitation",
        "rule",
        "status",
        "assignee",
        "priority",
        "due_at",
        "resolution_due_at",
        "first_contacted_at",
        "next_response",
        "root_cause",
        "action_taken",
        "closed_reason",
        "resolved_at",
        "loop_closed_at",
        "loop_closed_by",
        "version",
        "created_at",
        "updated_at",
    )
    readonly_fields = tuple(f for f in fields if f not in ("priority", "due_at"))

    def has_add_permission(self, request):
        # Follow-ups come from detractor responses, never by hand.
        return False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("partner", "response", "assignee", "root_cause", "loop_closed_by")
        )

    @admin.display(description=_("Score"), ordering="response__score")
    def score(self, obj):
        return obj.response.score if obj.response_id else "—"

    @admin.display(description=_("Staff page"))
    def open_in_app(self, obj):
        return format_html(
            '<a href="{}">{}</a>', reverse("followups:detail", args=[obj.pk]), _("Open")
        )


@admin.register(RootCause)
class RootCauseAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active")
    list_editable = ("is_active",)
    search_fields = ("name",)

    def has_delete_permission(self, request, obj=None):
        # Root causes are referenced by resolved follow-ups: deactivate them instead.
        return False


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    list_display = ("title", "category", "status", "shipped_at", "owner", "followup_count")
    list_filter = ("status", "category")
    list_select_related = ("owner",)
    search_fields = ("title", "description")
    fields = (
        "title",
        "description",
        "category",
        "owner",
        "status",
        "shipped_at",
        "linked_followups",
        "created_by",
        "created_at",
        "updated_at",
    )
    # Status and links change through the services (actions below, or the staff page), which
    # write the follow-ups' timelines and stamp the shipping date.
    readonly_fields = (
        "status",
        "shipped_at",
        "linked_followups",
        "created_by",
        "created_at",
        "updated_at",
    )
    actions = ["mark_in_progress", "mark_shipped"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_followup_count=Count("followups"))

    def has_add_permission(self, request):
        # Logged on the staff page, which links the follow-ups and writes their timeline.
        return False

    @admin.display(description=_("Follow-ups"), ordering="_followup_count")
    def followup_count(self, obj):
        return obj._followup_count

    @admin.display(description=_("Linked follow-ups"))
    def linked_followups(self, obj):
        followups = obj.followups.select_related("partner").order_by("partner__name")
        return (
            format_html_join(
                ", ",
                '<a href="{}">#{} {}</a>',
                (
                    (reverse("admin:followups_followup_change", args=[f.pk]), f.pk, f.partner.name)
                    for f in followups
                ),
            )
            or "—"
        )

    def _set_status(self, request, queryset, status):
        done = 0
        for change in queryset:
            try:
                services.change_update_status(change_id=change.pk, status=status, by=request.user)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{change}: {exc}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, _("%(n)d change(s) updated.") % {"n": done})

    @admin.action(description=_("Mark selected changes in progress"))
    def mark_in_progress(self, request, queryset):
        self._set_status(request, queryset, Change.Status.IN_PROGRESS)

    @admin.action(description=_("Mark selected changes shipped"))
    def mark_shipped(self, request, queryset):
        self._set_status(request, queryset, Change.Status.SHIPPED)


@admin.register(PartnerNotice)
class PartnerNoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("change", "followup", "status", "attempts", "sent_at", "created_at")
    list_filter = ("status",)
    list_select_related = ("change", "followup__partner")
    search_fields = ("change__title", "followup__partner__name")
    readonly_fields = (
        "change",
        "followup",
        "requested_by",
        "status",
        "attempts",
        "last_error",
        "claimed_at",
        "sent_at",
        "created_at",
        "updated_at",
    )


@admin.register(FollowUpRule)
class FollowUpRuleAdmin(AdminOnlyMixin, admin.ModelAdmin):
    """Ordered: the first active rule that matches a response decides its follow-up."""

    list_display = (
        "position",
        "name",
        "is_active",
        "category",
        "score_min",
        "score_max",
        "priority",
        "assignee_strategy",
        "first_contact_hours",
    )
    list_display_links = ("name",)
    list_editable = ("position", "is_active")
    list_filter = ("is_active", "category", "assignee_strategy")
    filter_horizontal = ("tiers",)
    fieldsets = (
        (None, {"fields": ("name", "position", "is_active")}),
        (
            _("When (every condition set must hold)"),
            {
                "fields": (
                    "category",
                    ("score_min", "score_max"),
                    "tiers",
                    "keywords",
                    "requires_comment",
                    "requires_wants_contact",
                )
            },
        ),
        (
            _("Then"),
            {
                "fields": (
                    "priority",
                    "assignee_strategy",
                    "assignee",
                    ("first_contact_hours", "resolution_hours"),
                )
            },
        ),
    )


class HolidayInline(AdminOnlyMixin, admin.TabularInline):
    model = Holiday
    extra = 1


@admin.register(WorkingCalendar)
class WorkingCalendarAdmin(AdminOnlyMixin, admin.ModelAdmin):
    """The first calendar is the one SLA due times are counted in."""

    list_display = ("name", "time_zone", "day_starts", "day_ends", "first_contact_hours")
    inlines = [HolidayInline]


@admin.register(EscalationRule)
class EscalationRuleAdmin(AdminOnlyMixin, admin.ModelAdmin):
    list_display = (
        "position",
        "name",
        "is_active",
        "measure",
        "hours_overdue",
        "raise_priority_to",
        "notify_managers",
    )
    list_display_links = ("name",)
    list_editable = ("position", "is_active")


@admin.register(StaffEmail)
class StaffEmailAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("followup", "recipient", "kind", "status", "attempts", "sent_at")
    list_filter = ("kind", "status")
    list_select_related = ("followup__partner", "recipient")
    readonly_fields = (
        "followup",
        "event",
        "recipient",
        "kind",
        "status",
        "attempts",
        "last_error",
        "claimed_at",
        "sent_at",
        "created_at",
    )
