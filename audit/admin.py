"""The audit log in the admin: read-only, for admins."""

from django.contrib import admin

from nps_project import roles

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_name", "action", "target", "target_id", "ip_address"]
    list_filter = ["action", "target"]
    search_fields = ["actor_name", "target_id"]
    date_hierarchy = "created_at"
    list_select_related = ["actor"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_view_permission(self, request, obj=None):
        return roles.is_admin(request.user)

    def has_module_permission(self, request):
        return roles.is_admin(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
