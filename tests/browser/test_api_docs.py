"""``/api/docs/`` in a real browser (Debian's Chromium through Playwright): Swagger UI, served
from this site (drf-spectacular-sidecar), renders every operation of the schema under the
site's Content-Security-Policy, with no CSP violation and no request to another origin; a
logged-in admin tries an operation out with the session (a read, and a write with the CSRF
header the docs page adds).

With NPS_SCREENSHOTS_DIR set it saves api-docs.png there (else into a temporary folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token

from nps_project import roles
from tests.factories import PASSWORD, PartnerFactory, UserFactory

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("NPS_SCREENSHOTS_DIR")
METHODS = ("get", "post", "put", "patch", "delete")

# Runs before any script of the page (through DevTools, so the page's CSP does not apply to
# it): records every CSP violation the browser reports to the page.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push({directive: e.violatedDirective, blocked: e.blockedURI,
                               sample: e.sample});
});
"""


@pytest.fixture
def page(live_server):
    """A page that records its console, its uncaught errors and every URL it requests."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's Chromium is missing: run scripts/ensure-browser.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        page.console_messages_seen = []
        page.errors_seen = []
        page.urls_requested = []
        page.on("console", lambda m: page.console_messages_seen.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page.errors_seen.append(str(e)))
        page.on("request", lambda r: page.urls_requested.append(r.url))
        yield page
        context.close()
        browser.close()


def operation_count() -> int:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sum(1 for item in schema["paths"].values() for method in item if method in METHODS)


def open_docs(page, base: str) -> None:
    page.goto(base + reverse("api:docs"))
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)


def status_shown(operation) -> str:
    """The status code of the answer Swagger UI shows under an executed operation."""
    cell = operation.locator(".live-responses-table tbody .response-col_status").first
    cell.wait_for()
    return cell.inner_text().strip()


def csp_problems(page) -> list[str]:
    """CSP violations reported to the page and CSP messages on the console."""
    events = page.evaluate("window.__cspViolations")
    console = [m for m in page.console_messages_seen if "Content Security Policy" in m]
    return [json.dumps(e) for e in events] + console


def test_swagger_ui_renders_every_operation_under_the_sites_csp(
    transactional_db, live_server, page, tmp_path
):
    base = live_server.url
    open_docs(page, base)

    # Every operation of the schema is on the page, under the API's title and description.
    assert page.locator(".swagger-ui .opblock").count() == operation_count()
    assert "Partner NPS API" in page.locator(".swagger-ui .info .title").inner_text()
    description = page.locator(".swagger-ui .info .description").inner_text()
    assert "Authorization: Token <key>" in description
    assert "POST /api/v1/tokens/" in description
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "api-docs.png"))
    assert (folder / "api-docs.png").stat().st_size > 10_000

    nps = page.locator(".opblock-get:has([data-path='/api/v1/nps/'])")
    assert nps.count() == 1

    # Open one operation: its parameters and answers render too.
    nps.locator(".opblock-summary").click()
    body = nps.locator(".opblock-body")
    body.locator(".parameters-container").wait_for()
    assert "group_by" in body.inner_text()
    assert "429" in body.locator(".responses-wrapper").inner_text()

    # No CSP violation, no script error, nothing fetched from another origin.
    assert csp_problems(page) == []
    assert page.errors_seen == []
    origins = {urlsplit(url).netloc for url in page.urls_requested if not url.startswith("data:")}
    assert origins == {urlsplit(base).netloc}, page.urls_requested
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/" in u for u in page.urls_requested)


def test_the_recorder_sees_a_violation_so_none_above_means_none(
    transactional_db, live_server, page
):
    """The policy still refuses inline script on the docs page, and the check above would
    have seen it: an inline script added to the page is blocked and reported."""
    open_docs(page, live_server.url)
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__inlineRan = true'; document.body.append(s); }"
    )
    page.wait_for_function("window.__cspViolations.length > 0")
    assert page.evaluate("window.__inlineRan === undefined")
    assert [json.loads(v)["directive"] for v in csp_problems(page) if v.startswith("{")] == [
        "script-src-elem"
    ]


def test_a_logged_in_admin_tries_out_a_read_and_a_write_with_the_session(
    transactional_db, live_server, page
):
    base = live_server.url
    admin = UserFactory(username="ada", role=roles.ADMIN, is_staff=True, is_superuser=True)
    PartnerFactory(name="Northwind Traders")
    page.goto(base + reverse("login"))
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    open_docs(page, base)

    # A read: the partner list, answered 200 with the partner in it.
    partners = page.locator(".opblock-get:has([data-path='/api/v1/partners/'])")
    partners.locator(".opblock-summary").click()
    partners.locator("button.try-out__btn").click()
    partners.locator("button.execute").click()
    assert status_shown(partners) == "200"
    assert "Northwind Traders" in partners.locator(".live-responses-table").inner_text()

    # A write: issue the admin a token. The session needs the CSRF header, which the docs
    # page's script adds.
    issue = page.locator(".opblock-post:has([data-path='/api/v1/tokens/'])")
    issue.locator(".opblock-summary").click()
    issue.locator("button.try-out__btn").click()
    issue.locator("textarea.body-param__text").fill(json.dumps({"user": admin.pk}))
    issue.locator("button.execute").click()
    assert status_shown(issue) == "201"
    assert Token.objects.filter(user=admin).count() == 1
    assert Token.objects.get(user=admin).key in issue.locator(".live-responses-table").inner_text()

    assert csp_problems(page) == []
    assert page.errors_seen == []
