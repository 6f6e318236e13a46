"""A contact's data export (JSON) and erasure on request, by an admin, logged."""

import json

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from followups.models import FollowUpEvent
from surveys.models import Contact, InvitationToken, Response
from surveys.services import response_submit, token_issue
from tests.factories import InvitationFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:surveys_contact_changelist")


@pytest.fixture
def answered():
    invitation = InvitationFactory(contact__name="Jane Roe", contact__email="jane@acme.example")
    token_issue(invitation=invitation)
    response_submit(invitation_id=invitation.pk, score=4, comment="Onboarding was confusing")
    return invitation.contact


def _action(client, action, contact, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [contact.pk], **extra})


def test_an_admin_exports_a_contacts_data_as_json_and_it_is_logged(client, admin_user, answered):
    client.force_login(admin_user)

    answer = _action(client, "export_personal_data", answered)

    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("application/json")
    assert "attachment" in answer["Content-Disposition"]
    data = json.loads(answer.content)
    assert data["contact"]["email"] == "jane@acme.example"
    assert data["invitations"][0]["response"]["comment"] == "Onboarding was confusing"
    assert data["invitations"][0]["response"]["followup_status"] == "open"
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target, entry.target_id) == (
        admin_user,
        "export",
        "contact",
        str(answered.pk),
    )


def test_erasure_asks_for_confirmation_first_and_changes_nothing_until_then(
    client, admin_user, answered
):
    client.force_login(admin_user)

    page = _action(client, "erase_personal_data", answered)

    assert page.status_code == 200
    assert "cannot be undone" in page.content.decode()
    assert Contact.objects.get(pk=answered.pk).name == "Jane Roe"
    assert not AuditEntry.objects.exists()


def test_erasure_anonymises_the_contact_blanks_its_words_keeps_its_score_and_is_logged(
    client, admin_user, answered
):
    client.force_login(admin_user)
    followup = Response.objects.get(contact=answered).followup
    FollowUpEvent.objects.create(
        followup=followup, actor=admin_user, kind="call", note="Jane: onboarding is confusing"
    )

    answer = _action(client, "erase_personal_data", answered, confirm="yes")

    assert answer.status_code == 302
    contact = Contact.objects.get(pk=answered.pk)
    assert contact.name == "Anonymised contact"
    assert contact.email.endswith("@anonymised.invalid")
    assert not contact.is_active
    response = Response.objects.get(contact=contact)
    assert (response.score, response.comment, response.category) == (4, "", "detractor")
    assert not InvitationToken.objects.filter(invitation__contact=contact).exists()
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_id) == (admin_user, "erase", str(contact.pk))
    assert entry.detail["responses_blanked"] == 1
    # The follow-up's timeline keeps who did what when, not the words.
    call = followup.events.get(kind="call")
    assert (call.note, call.actor) == ("", admin_user)
    assert not followup.events.exclude(note="").exists()
    assert entry.detail["followup_notes_blanked"] == 1


@pytest.mark.parametrize("persona", ["cs_manager", "outsider"])
def test_only_admins_can_export_or_erase(client, request, answered, persona):
    client.force_login(request.getfixturevalue(persona))
    for action in ("export_personal_data", "erase_personal_data"):
        answer = _action(client, action, answered, confirm="yes")
        assert answer.status_code in (302, 403)
    assert Contact.objects.get(pk=answered.pk).name == "Jane Roe"
    assert not AuditEntry.objects.exists()
