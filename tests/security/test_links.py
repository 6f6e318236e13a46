"""Survey links: secret, hashed, expiring with the wave, rate limited per client, with no
Referer leak, no third-party script, and never printed in a log."""

import datetime as dt
import io
import logging
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from gunicorn.config import Config

from followups.services import partner_page_token_issue
from nps_project.gunicorn_logging import RedactingLogger
from nps_project.redaction import RedactTokensFilter, redact
from surveys import tokens
from surveys.models import InvitationToken, Response, Wave
from surveys.services import token_issue, waves_close_due
from tests.factories import InvitationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def link():
    invitation = InvitationFactory()
    return invitation, token_issue(invitation=invitation)


def respond_url(token):
    return reverse("surveys:respond", args=[token])


def test_a_token_carries_at_least_128_random_bits_and_only_its_hash_is_stored(link):
    invitation, token = link
    assert tokens.TOKEN_BYTES * 8 >= 128
    assert len(token) == tokens.TOKEN_LENGTH
    stored = list(InvitationToken.objects.values_list("token_hash", flat=True))
    assert stored == [tokens.hash_token(token)]
    assert token not in stored[0]


def test_the_link_stops_taking_answers_when_the_wave_closes(client, link):
    invitation, token = link
    Wave.objects.filter(pk=invitation.wave_id).update(
        closes_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert waves_close_due() == 1

    assert client.get(respond_url(token)).status_code == 410
    answer = client.post(respond_url(token), {"score": "3", "comment": "late"})

    assert answer.status_code == 410
    assert not Response.objects.exists()


@pytest.mark.parametrize(
    "name, policy",
    [("thanks", "no-referrer"), ("unsubscribe", "no-referrer"), ("respond", "no-referrer")],
)
def test_partner_pages_send_no_referrer_and_a_strict_csp_without_third_party_script(
    client, link, name, policy
):
    invitation, token = link
    client.post(respond_url(token), {"score": "9"})

    page = client.get(reverse(f"surveys:{name}", args=[token]))

    assert page.status_code == 200
    assert page["Referrer-Policy"] == policy
    csp = page["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "style-src 'self';" in csp + ";"  # no 'unsafe-inline' on partner pages
    assert "frame-ancestors 'none'" in csp
    html = page.content.decode()
    assert re.findall(r"<script(?![^>]*src=\"/static/)[^>]*>", html) == []


def test_an_unknown_link_and_the_partner_page_send_no_referrer(client):
    assert client.get(respond_url("A" * 32))["Referrer-Policy"] == "no-referrer"
    invitation = InvitationFactory()
    page_token = partner_page_token_issue(partner_id=invitation.contact.partner_id)
    page = client.get(reverse("partner-pages:page", args=[page_token]))
    assert page.status_code == 200
    assert page["Referrer-Policy"] == "no-referrer"


# --- Rate limits ------------------------------------------------------------------------------


def test_a_client_posting_too_often_gets_a_friendly_429_and_nothing_is_stored(settings, link):
    settings.NPS_LINK_WRITE_RATE = "3/m"
    invitation, token = link
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(3):
        assert client.post(respond_url(token), {"score": "4"}).status_code == 302
    Response.objects.all().delete()

    limited = client.post(respond_url(token), {"score": "4"})

    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert "Please wait a moment" in limited.content.decode()
    assert token not in limited.content.decode()
    assert not Response.objects.exists()
    # Another address is not limited.
    other = Client(REMOTE_ADDR="198.51.100.9")
    assert other.post(respond_url(token), {"score": "4"}).status_code == 302


def test_the_429_page_is_in_the_browsers_language(settings, link):
    settings.NPS_LINK_READ_RATE = "1/m"
    _invitation, token = link
    client = Client(REMOTE_ADDR="203.0.113.8", HTTP_ACCEPT_LANGUAGE="fr")
    assert client.get(respond_url(token)).status_code == 200

    limited = client.get(respond_url(token))

    assert limited.status_code == 429
    html = limited.content.decode()
    assert "Veuillez patienter un instant" in html
    assert "Rien de ce que vous avez déjà envoyé n’a été perdu." in html


def test_score_links_unsubscribe_and_partner_pages_share_the_read_limit(settings, link):
    settings.NPS_LINK_READ_RATE = "4/m"
    invitation, token = link
    page_token = partner_page_token_issue(partner_id=invitation.contact.partner_id)
    client = Client(REMOTE_ADDR="203.0.113.8")
    urls = [
        respond_url(token) + "?score=3",
        reverse("surveys:unsubscribe", args=[token]),
        reverse("partner-pages:page", args=[page_token]),
        respond_url("A" * 32),
    ]
    assert [client.get(url).status_code for url in urls] == [200, 200, 200, 404]
    assert [client.get(url).status_code for url in urls] == [429, 429, 429, 429]


def test_one_click_unsubscribe_is_limited_per_client(settings, link):
    settings.NPS_LINK_WRITE_RATE = "1/m"
    invitation, token = link
    url = reverse("surveys:unsubscribe", args=[token])
    client = Client(REMOTE_ADDR="203.0.113.9")
    assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(settings, link):
    settings.NPS_LINK_READ_RATE = "1/m"
    settings.NPS_TRUSTED_PROXY_COUNT = 1
    invitation, token = link
    proxy = Client(REMOTE_ADDR="10.0.0.1")
    first = proxy.get(respond_url(token), HTTP_X_FORWARDED_FOR="forged, 203.0.113.10")
    second = proxy.get(respond_url(token), HTTP_X_FORWARDED_FOR="203.0.113.11")
    third = proxy.get(respond_url(token), HTTP_X_FORWARDED_FOR="other, 203.0.113.10")
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]


def test_rate_limits_can_be_turned_off_and_a_failing_cache_lets_partners_through(
    settings, monkeypatch, link
):
    invitation, token = link
    settings.NPS_LINK_WRITE_RATE = "1/m"
    settings.NPS_RATE_LIMIT_ENABLE = False
    client = Client(REMOTE_ADDR="203.0.113.12")
    assert [client.post(respond_url(token), {"score": "8"}).status_code for _ in range(3)] == [
        302
    ] * 3

    settings.NPS_RATE_LIMIT_ENABLE = True

    def cache_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr("nps_project.ratelimit.hit", cache_down)
    assert client.post(respond_url(token), {"score": "9"}).status_code == 302
    assert Response.objects.get().score == 9


# --- Tokens never in logs -----------------------------------------------------------------------


def test_redact_replaces_survey_and_partner_page_tokens_but_not_the_brand_stylesheet():
    line = 'GET /s/AbC-_123/thanks/?lang=de "https://nps.example.com/p/XyZ/" /s/brand/3.css'
    assert redact(line) == (
        'GET /s/[redacted]/thanks/?lang=de "https://nps.example.com/p/[redacted]/" /s/brand/3.css'
    )


def test_djangos_not_found_warning_reaches_the_console_without_the_token(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokensFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    token = "Q" * 32
    try:
        assert client.get(respond_url(token)).status_code == 404
    finally:
        logger.removeHandler(handler)
    assert "Not Found: /s/[redacted]/" in stream.getvalue()
    assert token not in stream.getvalue()


def test_the_console_handler_of_the_settings_redacts():
    from django.conf import settings

    console = settings.LOGGING["handlers"]["console"]
    assert "redact_tokens" in console["filters"]
    assert settings.LOGGING["filters"]["redact_tokens"]["()"].endswith("RedactTokensFilter")


def test_gunicorns_access_log_prints_no_token_in_path_request_line_or_referer(tmp_path):
    cfg = Config()
    log_file = tmp_path / "access.log"
    cfg.set("accesslog", str(log_file))
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s "%(f)s" %(U)s %({referer}i)s')
    logger = RedactingLogger(cfg)
    token = "T0k3n_-" + "x" * 25

    class Resp:
        status = "302 Found"
        sent = 0
        headers = [("Location", f"/s/{token}/thanks/")]

    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": f"/s/{token}/?lang=de",
        "PATH_INFO": f"/s/{token}/",
        "QUERY_STRING": "lang=de",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.1",
        "HTTP_REFERER": f"https://nps.example.com/s/{token}/",
    }

    class Req:
        headers = [("REFERER", f"https://nps.example.com/p/{token}/")]

    logger.access(Resp(), Req(), environ, dt.timedelta(milliseconds=12))
    for handler in logger.access_log.handlers:
        handler.flush()
    line = log_file.read_text()

    assert token not in line
    assert line.count("[redacted]") == 4
    assert '"POST /s/[redacted]/?lang=de HTTP/1.1" 302' in line


def test_the_procfile_runs_gunicorn_with_the_redacting_logger():
    from django.conf import settings

    procfile = (settings.BASE_DIR / "Procfile").read_text()
    web = next(line for line in procfile.splitlines() if line.startswith("web:"))
    assert "--logger-class nps_project.gunicorn_logging.RedactingLogger" in web
