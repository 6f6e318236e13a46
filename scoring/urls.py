from django.urls import path

from . import views

app_name = "scoring"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("partners/<int:pk>/", views.partner_detail, name="partner-detail"),
    path("comments/", views.comment_list, name="comment-list"),
    path("export/responses.csv", views.export_responses, name="export-responses"),
    path("export/segments.csv", views.export_segments, name="export-segments"),
]
