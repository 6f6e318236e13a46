"""Changes through the API: create, edit, link follow-ups, ship, tell the partners."""

import pytest

from followups.models import Change, PartnerNotice
from tests.api.conftest import error
from tests.factories import ChangeFactory, FollowUpFactory

pytestmark = pytest.mark.django_db

CHANGES = "/api/v1/changes/"


def test_agent_logs_a_change_linked_to_followups(api, cs_agent):
    followups = FollowUpFactory.create_batch(2)
    answer = api(cs_agent).post(
        CHANGES,
        {
            "title": "Faster support",
            "description": "Support answers within four hours.",
            "category": "support",
            "followup_ids": [f.pk for f in followups],
        },
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["followups"] == sorted(f.pk for f in followups)
    assert (body["owner"]["username"], body["created_by"]["username"]) == ("sam", "sam")
    assert body["status"] == "planned"


def test_change_with_an_unknown_followup_writes_nothing(api, cs_agent):
    answer = api(cs_agent).post(
        CHANGES,
        {"title": "T", "description": "D", "category": "support", "followup_ids": [999999]},
    )
    assert answer.status_code == 400
    assert error(answer)["message"] == "Unknown follow-up: 999999"
    assert Change.objects.count() == 0


def test_bad_change_input_is_400(api, cs_agent):
    answer = api(cs_agent).post(
        CHANGES, {"title": "", "category": "vibes", "followup_ids": ["one"]}
    )
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "title": ["This field may not be blank."],
        "description": ["This field is required."],
        "category": ['"vibes" is not a valid choice.'],
        "followup_ids": {"0": ["A valid integer is required."]},
    }


def test_edit_and_ship_then_notify(api, cs_agent, django_capture_on_commit_callbacks):
    change = ChangeFactory()
    followup = FollowUpFactory()
    client = api(cs_agent)
    answer = client.patch(f"{CHANGES}{change.pk}/", {"title": "Renamed", "status": "in_progress"})
    assert answer.status_code == 200
    assert (answer.json()["title"], answer.json()["status"]) == ("Renamed", "in_progress")

    answer = client.post(f"{CHANGES}{change.pk}/notify/")
    assert answer.status_code == 400
    assert error(answer)["message"] == "Ship the change before telling partners about it."

    answer = client.post(f"{CHANGES}{change.pk}/link/", {"followup_ids": [followup.pk]})
    assert answer.status_code == 200
    assert answer.json()["linked"] == 1
    assert (
        client.post(f"{CHANGES}{change.pk}/link/", {"followup_ids": [followup.pk]}).json()["linked"]
        == 0
    )

    answer = client.post(f"{CHANGES}{change.pk}/ship/")
    assert answer.status_code == 200
    assert answer.json()["shipped_at"] is not None

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer = client.post(f"{CHANGES}{change.pk}/notify/")
    assert answer.status_code == 202
    assert answer.json() == {"queued": 1}
    assert len(callbacks) == 1
    assert PartnerNotice.objects.filter(change=change, followup=followup).count() == 1


def test_blank_title_edit_is_refused(api, cs_agent):
    change = ChangeFactory(title="Keep me")
    answer = api(cs_agent).patch(f"{CHANGES}{change.pk}/", {"title": "   "})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {"title": ["This field may not be blank."]}
    change.refresh_from_db()
    assert change.title == "Keep me"


def test_outsider_cannot_see_or_log_changes(api, outsider):
    change = ChangeFactory()
    client = api(outsider)
    assert client.get(f"{CHANGES}{change.pk}/").status_code == 403
    assert (
        client.post(CHANGES, {"title": "T", "description": "D", "category": "support"}).status_code
        == 403
    )


def test_unknown_change_is_404(api, cs_agent):
    assert api(cs_agent).post(f"{CHANGES}999999/ship/").status_code == 404


def test_change_list_query_budget(api, cs_agent, django_assert_num_queries):
    for change in ChangeFactory.create_batch(10):
        change.followups.add(FollowUpFactory())
    # groups, count, the page with owner and creator joined, the linked follow-up ids.
    with django_assert_num_queries(4):
        assert api(cs_agent).get(CHANGES).json()["count"] == 10
