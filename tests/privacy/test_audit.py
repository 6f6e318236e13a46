"""The audit log records who viewed or exported partners' answers; follow-up changes are on the
follow-up's own timeline (FollowUpEvent, with actor and time), which the log does not repeat."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEntry
from followups.models import FollowUpEvent
from followups.services import followup_transition
from surveys.services import response_submit
from tests.factories import InvitationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def followup(cs_agent):
    invitation = InvitationFactory(contact__partner__account_owner=cs_agent)
    return response_submit(invitation_id=invitation.pk, score=2, comment="Slow").followup


def _entry():
    entry = AuditEntry.objects.get()
    return entry.actor.username, entry.action, entry.target, entry.target_id


def test_opening_a_followup_is_recorded(client, cs_agent, followup):
    client.force_login(cs_agent)
    client.get(reverse("followups:detail", args=[followup.pk]))
    assert _entry() == ("sam", "view", "followup", str(followup.pk))
    assert AuditEntry.objects.get().ip_address == "127.0.0.1"


def test_opening_a_partner_page_is_recorded(client, cs_agent, followup):
    client.force_login(cs_agent)
    client.get(reverse("scoring:partner-detail", args=[followup.partner_id]))
    assert _entry() == ("sam", "view", "partner", str(followup.partner_id))


def test_the_comments_list_is_recorded_with_its_filters(client, cs_agent, followup):
    client.force_login(cs_agent)
    client.get(reverse("scoring:comment-list"), {"category": "detractor", "q": "slow"})
    assert _entry() == ("sam", "view", "comments", "")
    assert AuditEntry.objects.get().detail == {"category": "detractor", "q": "slow"}


@pytest.mark.parametrize(
    "name, target", [("responses", "responses.csv"), ("segments", "segments.csv")]
)
def test_csv_exports_are_recorded(client, cs_agent, followup, name, target):
    client.force_login(cs_agent)
    answer = client.get(reverse(f"scoring:export-{name}"))
    b"".join(answer.streaming_content)
    assert _entry() == ("sam", "export", target, "")


def test_the_api_response_list_and_one_response_are_recorded(cs_agent, followup):
    api = APIClient()
    api.force_authenticate(cs_agent)
    api.get("/api/v1/responses/", {"category": "detractor"})
    api.get(f"/api/v1/responses/{followup.response_id}/")
    entries = list(AuditEntry.objects.order_by("pk").values_list("target", "target_id", "detail"))
    assert entries == [
        ("api.responses", "", {"category": "detractor"}),
        ("api.responses", str(followup.response_id), {}),
    ]


def test_refused_requests_are_not_recorded_as_views(client, outsider, followup):
    client.force_login(outsider)
    assert client.get(reverse("followups:detail", args=[followup.pk])).status_code == 403
    assert APIClient().get("/api/v1/responses/").status_code == 401
    assert not AuditEntry.objects.exists()


def test_followup_changes_are_on_the_timeline_with_who_and_when(cs_agent, followup):
    followup_transition(followup_id=followup.pk, to="contacted", by=cs_agent)
    event = FollowUpEvent.objects.filter(followup=followup, kind="status").latest("pk")
    assert (event.actor, event.old_value, event.new_value) == (cs_agent, "open", "contacted")
    assert event.created_at is not None


def test_the_audit_log_is_read_only_and_for_admins(client, admin_user, cs_manager, followup):
    client.force_login(cs_manager)
    changelist = reverse("admin:audit_auditentry_changelist")
    assert client.get(changelist).status_code in (302, 403)
    client.force_login(admin_user)
    assert client.get(changelist).status_code == 200
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
