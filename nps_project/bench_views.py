"""Ceilings for ``bench/load.py``: the cheapest views this Django stack can serve, measured on
the same server, settings and middleware as the product's pages. Mounted under ``/bench/`` only
when ``NPS_BENCH_VIEWS`` is set (never in production: the INSERT view writes without a login).

- ``tiny``: GET, a few bytes, no database (the ceiling of the form's GET);
- ``insert``: POST, one INSERT of the posted number into ``bench_ceiling`` (a table
  ``bench/load.py`` creates), a few bytes back (the ceiling of the form's POST). Like the
  survey form, it takes no CSRF token, so the ceiling is not slowed by a check the form skips.
"""

from django.db import connection
from django.http import HttpResponse, HttpResponseBadRequest
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

TABLE = "bench_ceiling"


@require_GET
def tiny(request):
    return HttpResponse(b"ok", content_type="text/plain")


@csrf_exempt
@require_POST
def insert(request):
    try:
        number = int(request.POST.get("n", ""))
    except ValueError:
        return HttpResponseBadRequest(b"n must be a whole number", content_type="text/plain")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (n, note, created_at) VALUES (%s, %s, %s)",  # noqa: S608
            [number, request.POST.get("note", "")[:200], timezone.now()],
        )
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("tiny/", tiny, name="bench-tiny"),
    path("insert/", insert, name="bench-insert"),
]
