"""Authentication, roles, throttling, error shape, and the schema."""

import re

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from followups.models import Change
from tests.api.conftest import error
from tests.factories import PASSWORD, PartnerFactory

pytestmark = pytest.mark.django_db

PARTNERS = "/api/v1/partners/"


def csp_of(answer) -> dict[str, list[str]]:
    """The answer's Content-Security-Policy as {directive: [sources]}."""
    directives = (d.split() for d in answer["Content-Security-Policy"].split(";") if d.strip())
    return {name: sources for name, *sources in directives}


def test_anonymous_request_is_401_with_a_token_challenge():
    answer = APIClient().get(PARTNERS)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == "Token"
    assert error(answer) == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
        "fields": {},
    }


def test_unknown_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    answer = client.get(PARTNERS)
    assert answer.status_code == 401
    assert error(answer)["code"] == "authentication_failed"
    assert error(answer)["message"] == "Invalid token."


def test_token_of_a_cs_agent_reads_partners(cs_agent):
    PartnerFactory(name="Acme Networks")
    token = Token.objects.create(user=cs_agent)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    answer = client.get(PARTNERS)
    assert answer.status_code == 200
    assert [p["name"] for p in answer.json()["results"]] == ["Acme Networks"]


def test_session_login_reads_partners(client, cs_agent):
    client.login(username="sam", password=PASSWORD)
    assert client.get(PARTNERS).status_code == 200


def test_session_write_without_csrf_token_is_refused(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="ada", password=PASSWORD)
    answer = client.post(PARTNERS, {"name": "X", "tier": "Gold", "partner_type": "Reseller"})
    assert answer.status_code == 403
    assert "CSRF" in error(answer)["message"]


def test_outsider_without_a_cs_role_gets_403(api, outsider):
    answer = api(outsider).get(PARTNERS)
    assert answer.status_code == 403
    assert error(answer) == {
        "code": "permission_denied",
        "message": "The API is for the customer-success team.",
        "fields": {},
    }


def test_outsider_token_gets_403_on_every_read_endpoint(api, outsider):
    client = api(outsider)
    for path in [
        "/api/v1/partners/",
        "/api/v1/contacts/",
        "/api/v1/programs/",
        "/api/v1/waves/",
        "/api/v1/invitations/",
        "/api/v1/responses/",
        "/api/v1/followups/",
        "/api/v1/followup-events/",
        "/api/v1/changes/",
        "/api/v1/nps/",
        "/api/v1/webhooks/subscriptions/",
        "/api/v1/webhooks/deliveries/",
        "/api/v1/tokens/",
    ]:
        assert client.get(path).status_code == 403, path


def test_inactive_users_token_is_refused(cs_agent):
    token = Token.objects.create(user=cs_agent)
    cs_agent.is_active = False
    cs_agent.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    answer = client.get(PARTNERS)
    assert answer.status_code == 401
    assert error(answer)["message"] == "User inactive or deleted."


@override_settings(
    REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "2/minute"}}
)
def test_a_user_over_the_rate_gets_429_with_retry_after(api, cs_agent, cs_manager):
    client = api(cs_agent)
    assert client.get(PARTNERS).status_code == 200
    assert client.get(PARTNERS).status_code == 200
    answer = client.get(PARTNERS)
    assert answer.status_code == 429
    assert error(answer)["code"] == "throttled"
    assert int(answer["Retry-After"]) > 0
    # The limit is per user: another user is not held back.
    assert api(cs_manager).get(PARTNERS).status_code == 200


def test_unknown_api_path_is_a_json_404(api, cs_agent):
    answer = api(cs_agent).get("/api/v1/nothing-here/")
    assert answer.status_code == 404
    assert error(answer)["code"] == "not_found"


def test_unknown_object_is_404_without_detail(api, cs_agent):
    answer = api(cs_agent).get("/api/v1/partners/999999/")
    assert answer.status_code == 404
    assert error(answer) == {"code": "not_found", "message": "Not found.", "fields": {}}


def test_malformed_json_is_400(api, admin_user):
    answer = api(admin_user).post(PARTNERS, data='{"name": ', content_type="application/json")
    assert answer.status_code == 400
    assert error(answer)["code"] == "parse_error"


def test_method_not_allowed_is_405(api, cs_agent):
    answer = api(cs_agent).put("/api/v1/waves/1/", {})
    assert answer.status_code == 405
    assert error(answer)["code"] == "method_not_allowed"


def test_schema_is_served_and_valid_without_warnings(client, tmp_path):
    answer = client.get("/api/schema/?format=json")
    assert answer.status_code == 200
    schema = answer.json()
    assert schema["info"]["title"] == "Partner NPS API"
    assert "/api/v1/nps/" in schema["paths"]
    assert "Error" in schema["components"]["schemas"]
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml"))


def test_no_schema_component_exposes_a_token_hash_or_secret_outside_creation(client):
    schema = client.get("/api/schema/?format=json").json()
    for name, component in schema["components"]["schemas"].items():
        props = set(component.get("properties", {}))
        assert "token_hash" not in props, name
        assert "tokens" not in props, name
        if "secret" in props:
            assert name == "SubscriptionCreated", name
        if "key" in props:
            assert name in {"TokenCreated", "NpsGroup"}, name  # NpsGroup's key is a group key


def test_docs_page_is_swagger_ui_from_this_site_with_no_inline_script(client):
    answer = client.get("/api/docs/")
    assert answer.status_code == 200
    html = answer.content.decode()
    assert '<div id="swagger-ui"></div>' in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == [
        '<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js">',
        '<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/'
        'swagger-ui-standalone-preset.js">',
        '<script src="/api/docs/?script=">',
    ]
    assert "//" not in html.replace("<!DOCTYPE html>", "")  # no other origin, no CDN
    assert "no-store" in answer["Cache-Control"]

    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script["Content-Type"] == "application/javascript"
    assert 'url: "/api/schema/"' in script.content.decode()
    assert '"validatorUrl": null' in script.content.decode()  # no badge from validator.swagger.io
    assert "no-store" in script["Cache-Control"]  # it carries the CSRF token


def test_the_docs_page_narrows_the_sites_csp_and_loosens_nothing(client):
    docs = csp_of(client.get("/api/docs/"))
    site = csp_of(client.get("/login/"))
    assert docs["script-src"] == site["script-src"] == ["'self'"]
    assert docs["img-src"] == ["'self'", "data:"]
    assert site["img-src"] == ["'self'", "data:", "https:"]
    assert {k: v for k, v in docs.items() if k != "img-src"} == {
        k: v for k, v in site.items() if k != "img-src"
    }


def test_huge_ids_are_400_not_500(api, admin_user):
    client = api(admin_user)
    answer = client.get("/api/v1/responses/?program=99999999999999999999999")
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "program": ["Ensure this value is less than or equal to 9223372036854775807."]
    }


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_form_body_is_415_because_the_api_reads_json_only(api, admin_user, content_type):
    body = "&".join(f"followup_ids={n}" for n in range(1200))
    answer = api(admin_user).post("/api/v1/changes/", data=body, content_type=content_type)
    assert answer.status_code == 415
    assert error(answer)["code"] == "unsupported_media_type"
    assert not Change.objects.exists()


def test_unknown_api_path_answers_404_to_a_post_with_a_session_cookie(client, cs_agent):
    client.force_login(cs_agent)
    answer = client.post("/api/v1/contacts/1.5/")
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
