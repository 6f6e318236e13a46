"""The partner's pages, mounted at /s/: the token in the link is the partner's credential."""

from django.urls import path

from . import views

app_name = "surveys"

urlpatterns = [
    path("<str:token>/", views.respond, name="respond"),
    path("<str:token>/thanks/", views.thanks, name="thanks"),
    path("<str:token>/unsubscribe/", views.unsubscribe, name="unsubscribe"),
]
