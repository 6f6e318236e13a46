"""``/api/docs/``: Swagger UI over ``/api/schema/``, served entirely from this site.

The Swagger UI bundle, its stylesheet and favicon come from drf-spectacular-sidecar (static
files, collected like ours), so the page loads nothing from a CDN and works offline.

The site's Content-Security-Policy allows no inline script. drf-spectacular's *split* Swagger
view serves the page's start-up script as its own same-origin request (``/api/docs/?script``)
instead of inline, so the site-wide ``script-src 'self'`` holds unchanged. The docs page only
narrows the policy further (``DOCS_CSP``): its images may come from this site and ``data:``
URLs (Swagger UI's icons) but not from other ``https:`` origins, so nothing on it (e.g. Swagger
UI's online validator badge, also turned off in ``SWAGGER_UI_SETTINGS``) can reach another site.
"""

from __future__ import annotations

from csp.decorators import csp_replace
from django.views.decorators.cache import never_cache
from drf_spectacular.views import SpectacularSwaggerSplitView

# Replaces these directives of the site's policy (settings.CONTENT_SECURITY_POLICY) on the docs
# page and its start-up script only; every other directive is the site's.
DOCS_CSP = {"img-src": ["'self'", "data:"]}


class ApiDocsView(SpectacularSwaggerSplitView):
    url_name = "api:schema"
    title = "Partner NPS API"


# never_cache: the start-up script carries the visitor's CSRF token, which changes at login.
api_docs = never_cache(csp_replace(DOCS_CSP)(ApiDocsView.as_view()))
