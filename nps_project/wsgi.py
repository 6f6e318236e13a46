"""
WSGI config for nps_project project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_project.settings")

application = get_wsgi_application()

# Import the URL configuration (and so the views) now rather than on the first request, then
# move everything loaded so far, which lives as long as the process, out of the cyclic garbage
# collector's scans (gc.freeze): a full collection in a busy worker then walks the objects of
# recent requests only, not all of Django, which shortens the pauses in the latency tail.
get_resolver().url_patterns  # noqa: B018
gc.freeze()
