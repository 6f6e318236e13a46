"""The partner's pages, mounted at /s/: the token in the link is the partner's credential.

Links stay short: ``/s/<32-character token>/`` and ``?score=N`` for a score button.
"""

from django.urls import path

from . import views

app_name = "surveys"

urlpatterns = [
    path("brand/<int:program_id>.css", views.brand_css, name="brand-css"),
    path("<str:token>/", views.respond, name="respond"),
    path("<str:token>/thanks/", views.thanks, name="thanks"),
    path("<str:token>/unsubscribe/", views.unsubscribe, name="unsubscribe"),
    path("<str:token>/updates/", views.updates, name="updates"),
]
