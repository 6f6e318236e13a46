from django.contrib import admin

from .models import Theme


@admin.register(Theme)
class ThemeAdmin(admin.ModelAdmin):
    list_display = ["name", "keywords", "is_active", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "keywords"]
