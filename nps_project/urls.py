from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import outbox

urlpatterns = [
    path("", include("followups.urls")),
    path("s/", include("surveys.urls")),
    path("p/", include("followups.public_urls")),
    path("reports/", include("scoring.urls")),
    path("delivery/", include("surveys.delivery_urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("outbox/", outbox.outbox_list, name="outbox"),
    path("outbox/<str:name>/", outbox.outbox_message, name="outbox-message"),
]

if settings.NPS_BENCH_VIEWS:  # bench/load.py's ceilings; never in production
    urlpatterns.append(path("bench/", include("nps_project.bench_views")))
