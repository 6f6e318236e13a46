"""The partner's public "you told us, we did" page, reached by a secret link from an email."""

from django.urls import path

from . import views

app_name = "partner-pages"

urlpatterns = [
    path("<str:token>/", views.partner_page, name="page"),
]
