"""Staff accounts: login throttling, strong passwords, production cookie and header settings,
CSRF on every staff action, and a clean `check --deploy`."""

import os
import subprocess
import sys

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import PASSWORD, FollowUpFactory

pytestmark = pytest.mark.django_db

LOGIN = "/login/"

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "NPS_SITE_URL": "https://nps.example.com",
    "DJANGO_ALLOWED_HOSTS": "nps.example.com",
    "CACHE_URL": "redis://127.0.0.1:6379/0",
    "DJANGO_SECRET_KEY": "only-for-check-deploy-0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
}


def _login(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password})


def test_five_wrong_passwords_lock_the_username_on_that_address_with_a_429(cs_agent):
    client = Client(REMOTE_ADDR="203.0.113.20")
    for _ in range(4):
        assert _login(client, "sam", "wrong-password").status_code == 200
    locked = _login(client, "sam", "wrong-password")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()

    # Even the right password is refused while locked.
    assert _login(client, "sam", PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address, or another username, is not locked.
    assert _login(Client(REMOTE_ADDR="198.51.100.20"), "sam", PASSWORD).status_code == 302
    # Five failures and the refused attempt while locked, all on that pair.
    assert AccessAttempt.objects.get(ip_address="203.0.113.20").failures_since_start == 6


def test_the_admin_login_is_throttled_too(admin_user):
    client = Client(REMOTE_ADDR="203.0.113.21")
    url = reverse("admin:login")
    for _ in range(5):
        client.post(url, {"username": "ada", "password": "nope"})
    assert client.post(url, {"username": "ada", "password": PASSWORD}).status_code == 429


def test_a_successful_login_resets_the_failures(cs_agent):
    client = Client(REMOTE_ADDR="203.0.113.22")
    for _ in range(3):
        _login(client, "sam", "wrong-password")
    assert _login(client, "sam", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize(
    "password", ["short-1A!", "password1234", "123456789012345", "sam-example-com"]
)
def test_weak_staff_passwords_are_refused(cs_agent, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=cs_agent)


def test_a_long_passphrase_is_accepted(cs_agent):
    validate_password("tidal-orchard-lantern-42", user=cs_agent)


def test_staff_actions_refuse_a_post_without_the_csrf_token(cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client = Client(enforce_csrf_checks=True)
    client.force_login(cs_agent)
    url = reverse("followups:transition", args=[followup.pk])

    answer = client.post(url, {"to": "contacted", "version": followup.version})

    assert answer.status_code == 403
    followup.refresh_from_db()
    assert followup.status == "open"


def _views(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _views(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_only_the_known_endpoints_skip_djangos_csrf_check():
    exempt = {
        path
        for path, view in _views()
        if getattr(view, "csrf_exempt", False) and not path.startswith("api/")
    }
    # The survey form and one-click unsubscribe (RFC 8058, mail clients send no cookie): the
    # link's secret is their only credential, so there is no ambient one for CSRF to protect
    # (see surveys/views.py); and the HMAC-signed delivery events. The API's views are
    # csrf_exempt for token clients; DRF's SessionAuthentication enforces CSRF for browser
    # sessions itself. Every staff page keeps Django's check.
    assert exempt == {"s/<str:token>/", "s/<str:token>/unsubscribe/", "delivery/events/"}


def test_an_api_post_with_a_session_but_no_csrf_token_is_refused(cs_manager):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cs_manager)
    answer = client.post("/api/v1/changes/", {"title": "x"}, content_type="application/json")
    assert answer.status_code == 403


def test_staff_pages_send_the_security_headers(client, cs_agent):
    client.force_login(cs_agent)
    page = client.get(reverse("followups:queue"))
    assert page.status_code == 200
    csp = page["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    assert "http:" not in csp and "*" not in csp
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin"
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"


def _production(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **PRODUCTION_ENV}
    # The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE in this process: not in production.
    for name in ("DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, *code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_make_cookies_secure_and_turn_on_hsts_and_the_https_redirect():
    done = _production(
        [
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='nps_project.settings';"
            "from django.conf import settings as s;"
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
            " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.DEBUG,"
            " s.CACHES['default']['BACKEND'].rsplit('.', 1)[-1])",
        ]
    )
    assert done.returncode == 0, done.stderr
    secure, csrf_secure, httponly, redirect, hsts, debug, cache = done.stdout.split()
    assert (secure, csrf_secure, httponly, redirect) == ("True", "True", "True", "True")
    assert (hsts, debug, cache) == ("31536000", "False", "RedisCache")


def test_check_deploy_is_clean_with_production_settings():
    done = _production(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_the_embedded_demo_on_http_keeps_plain_cookies():
    # No NPS_SITE_URL with https:// and no NPS_HTTPS: the demo on http://127.0.0.1 works.
    assert settings.NPS_HTTPS is False
    assert settings.SECURE_SSL_REDIRECT is False
