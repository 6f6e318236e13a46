"""Delivery health for staff and the provider's bounce/complaint events, mounted at /delivery/."""

from django.urls import path

from . import delivery

app_name = "delivery"

urlpatterns = [
    path("", delivery.health, name="health"),
    path("waves/<int:wave_id>/", delivery.wave_health, name="wave"),
    path("events/", delivery.provider_events, name="events"),
]
