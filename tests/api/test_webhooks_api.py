"""Webhook subscriptions, the delivery log and API tokens: admins only."""

import pytest
from rest_framework.authtoken.models import Token

from tests.api.conftest import error
from webhooks.models import Subscription

pytestmark = pytest.mark.django_db

SUBS = "/api/v1/webhooks/subscriptions/"


def test_admin_subscribes_and_sees_the_secret_once(api, admin_user):
    client = api(admin_user)
    answer = client.post(
        SUBS, {"url": "https://hooks.example.com/nps", "events": ["followup.created"]}
    )
    assert answer.status_code == 201, answer.json()
    secret = answer.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert answer.json()["owner"]["username"] == "ada"
    sub_id = answer.json()["id"]
    assert "secret" not in client.get(f"{SUBS}{sub_id}/").json()
    assert secret not in client.get(SUBS).content.decode()
    rotated = client.post(f"{SUBS}{sub_id}/rotate-secret/").json()["secret"]
    assert rotated != secret
    assert Subscription.objects.get().secret == rotated


def test_bad_subscription_input_is_400(api, admin_user):
    answer = api(admin_user).post(
        SUBS, {"url": "ftp://x", "events": ["partner.deleted"], "format": "xml"}
    )
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "url": ["Enter a valid URL."],
        "events": {"0": ['"partner.deleted" is not a valid choice.']},
        "format": ['"xml" is not a valid choice.'],
    }
    assert api(admin_user).post(SUBS, {"url": "https://x.example", "events": []}).status_code == 400


def test_reactivating_resets_the_failure_count(api, admin_user):
    sub = Subscription.objects.create(
        url="https://x.example",
        events=["loop.closed"],
        secret="s",
        is_active=False,
        consecutive_failures=10,
    )
    answer = api(admin_user).patch(f"{SUBS}{sub.pk}/", {"is_active": True})
    assert answer.status_code == 200
    assert (answer.json()["is_active"], answer.json()["consecutive_failures"]) == (True, 0)


def test_staff_and_managers_cannot_manage_webhooks(api, cs_manager):
    answer = api(cs_manager).get(SUBS)
    assert answer.status_code == 403
    assert error(answer)["message"] == "Only an admin can manage webhooks."
    assert api(cs_manager).get("/api/v1/webhooks/deliveries/").status_code == 403


def test_admin_issues_and_revokes_a_token(api, admin_user, cs_agent):
    client = api(admin_user)
    answer = client.post("/api/v1/tokens/", {"user": cs_agent.pk})
    assert answer.status_code == 201
    key = answer.json()["key"]
    assert Token.objects.get(user=cs_agent).key == key
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["user"]["username"] for t in listed] == ["sam"]
    assert key not in client.get("/api/v1/tokens/").content.decode()
    assert client.delete(f"/api/v1/tokens/{cs_agent.pk}/").status_code == 204
    assert not Token.objects.filter(user=cs_agent).exists()
    assert client.delete(f"/api/v1/tokens/{cs_agent.pk}/").status_code == 404


def test_agent_cannot_issue_tokens(api, cs_agent):
    assert api(cs_agent).post("/api/v1/tokens/", {"user": cs_agent.pk}).status_code == 403
