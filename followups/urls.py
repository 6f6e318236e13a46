from django.urls import path

from . import views

app_name = "followups"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("followups/bulk-assign/", views.bulk_assign, name="bulk-assign"),
    path("followups/<int:pk>/", views.detail, name="detail"),
    path("followups/<int:pk>/contact/", views.log_contact, name="log-contact"),
    path("followups/<int:pk>/status/", views.transition, name="transition"),
    path("followups/<int:pk>/assign/", views.assign, name="assign"),
    path("followups/<int:pk>/link-change/", views.link_change, name="link-change"),
    path("kpis/", views.kpis, name="kpis"),
    path("changes/", views.change_list, name="change-list"),
    path("changes/new/", views.change_create, name="change-create"),
    path("changes/<int:pk>/", views.change_detail, name="change-detail"),
    path("changes/<int:pk>/status/", views.change_status, name="change-status"),
    path("changes/<int:pk>/link/", views.change_link, name="change-link"),
    path("changes/<int:pk>/notify/", views.change_notify, name="change-notify"),
]
