"""The REST API: /api/v1/ (the resources), /api/schema/ (OpenAPI 3) and /api/docs/."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from . import docs, views

app_name = "api"

router = DefaultRouter()
router.register("partners", views.PartnerViewSet, basename="partner")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("programs", views.ProgramViewSet, basename="program")
router.register("waves", views.WaveViewSet, basename="wave")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("responses", views.ResponseViewSet, basename="response")
router.register("followups", views.FollowUpViewSet, basename="followup")
router.register("followup-events", views.FollowUpEventViewSet, basename="followup-event")
router.register("changes", views.ChangeViewSet, basename="change")
router.register("webhooks/subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("webhooks/deliveries", views.DeliveryViewSet, basename="delivery")
router.register("tokens", views.TokenViewSet, basename="token")

urlpatterns = [
    path("v1/nps/", views.NpsView.as_view(), name="nps"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs.api_docs, name="docs"),
    re_path(r"^.*$", views.not_found, name="not-found"),
]
