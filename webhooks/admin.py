"""Admin for webhooks: subscriptions (the secret is shown once, when created) and the delivery
log, read-only."""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from . import services
from .models import Delivery, Subscription


class SubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = Subscription
        fields = ("url", "events", "format", "description", "is_active", "owner")

    def clean(self):
        data = super().clean()
        if not self.errors:
            # The service's own checks, so the admin refuses exactly what the API refuses.
            services.validate_subscription(
                url=data.get("url"), events=data.get("events"), fmt=data.get("format")
            )
        return data


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = (
        "url",
        "format",
        "is_active",
        "consecutive_failures",
        "disabled_at",
        "owner",
        "created_at",
    )
    list_filter = ("is_active", "format")
    search_fields = ("url", "description")
    fields = ("url", "events", "format", "description", "is_active", "owner")
    readonly_fields = ()

    def get_readonly_fields(self, request, obj=None):
        extra = ("consecutive_failures", "disabled_at", "disabled_reason", "created_at")
        return extra if obj is not None else ()

    def get_fields(self, request, obj=None):
        base = list(self.fields)
        return base + list(self.get_readonly_fields(request, obj))

    def save_model(self, request, obj, form, change):
        if change:
            services.subscription_update(
                subscription_id=obj.pk,
                url=obj.url,
                events=obj.events,
                fmt=obj.format,
                description=obj.description,
                is_active=obj.is_active,
            )
            return
        created = services.subscription_create(
            url=obj.url,
            events=obj.events,
            fmt=obj.format,
            description=obj.description,
            by=obj.owner or request.user,
        )
        obj.pk = created.pk
        messages.warning(
            request,
            _("The signing secret, shown this once: %(secret)s") % {"secret": created.secret},
        )


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "event",
        "event_id",
        "subscription",
        "status",
        "attempts",
        "response_code",
        "duration_ms",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event")
    search_fields = ("event_id", "subscription__url")
    list_select_related = ("subscription",)
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
