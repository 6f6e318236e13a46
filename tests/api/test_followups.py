"""Follow-ups through the API: the same rules as the web UI, via followups.services."""

import datetime as dt

import pytest

from followups.models import FollowUp, FollowUpEvent
from tests.api.conftest import error
from tests.factories import FollowUpFactory, InvitationFactory, root_cause

pytestmark = pytest.mark.django_db


def url(followup, action=""):
    return f"/api/v1/followups/{followup.pk}/" + (f"{action}/" if action else "")


def test_followup_list_query_budget_does_not_grow(api, cs_agent, django_assert_num_queries):
    FollowUpFactory.create_batch(15, assignee=cs_agent)
    # groups (the role check), count, the page with partner, assignee, response, root cause.
    with django_assert_num_queries(3):
        answer = api(cs_agent).get("/api/v1/followups/")
    assert answer.json()["count"] == 15
    first = answer.json()["results"][0]
    assert (first["score"], first["comment"], first["status"]) == (
        3,
        "Support takes days to answer.",
        "open",
    )


def test_filters_by_assignee_and_status(api, cs_agent, other_agent):
    mine = FollowUpFactory(assignee=cs_agent)
    FollowUpFactory(assignee=other_agent, status=FollowUp.Status.CONTACTED)
    client = api(cs_agent)
    answer = client.get(f"/api/v1/followups/?assignee={cs_agent.pk}")
    assert [f["id"] for f in answer.json()["results"]] == [mine.pk]
    assert client.get("/api/v1/followups/?status=contacted").json()["count"] == 1
    bad = client.get("/api/v1/followups/?status=done")
    assert bad.status_code == 400
    assert error(bad)["fields"] == {
        "status": ["Select a valid choice. done is not one of the available choices."]
    }


def test_agent_takes_an_unassigned_followup(api, cs_agent):
    followup = FollowUpFactory(assignee=None)
    answer = api(cs_agent).post(url(followup, "assign"), {"assignee": cs_agent.pk})
    assert answer.status_code == 200
    assert answer.json()["assignee"]["username"] == "sam"
    assert answer.json()["version"] == 2
    assert FollowUpEvent.objects.filter(followup=followup, kind="assigned").count() == 1


def test_agent_cannot_give_a_followup_to_someone_else(api, cs_agent, other_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    answer = api(cs_agent).post(url(followup, "assign"), {"assignee": other_agent.pk})
    assert answer.status_code == 403
    assert error(answer)["message"] == "Only a manager can give a follow-up to someone else."
    followup.refresh_from_db()
    assert followup.assignee == cs_agent


def test_manager_reassigns_but_not_to_an_outsider(api, cs_manager, cs_agent, other_agent, outsider):
    followup = FollowUpFactory(assignee=cs_agent)
    client = api(cs_manager)
    assert client.post(url(followup, "assign"), {"assignee": other_agent.pk}).status_code == 200
    answer = client.post(url(followup, "assign"), {"assignee": outsider.pk})
    assert answer.status_code == 400
    assert error(answer)["message"] == "otto is not on the customer-success team."
    answer = client.post(url(followup, "assign"), {"assignee": 999999})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {"assignee": ['Invalid pk "999999" - object does not exist.']}
    answer = client.post(url(followup, "assign"), {"assignee": "olga"})
    assert error(answer)["fields"] == {
        "assignee": ["Incorrect type. Expected pk value, received str."]
    }


def test_agent_cannot_change_another_agents_followup(api, cs_agent, other_agent):
    followup = FollowUpFactory(assignee=other_agent)
    client = api(cs_agent)
    # They may read it (the team's queue is visible) ...
    assert client.get(url(followup)).status_code == 200
    # ... but not change it.
    for action, body in [
        ("transition", {"to": "contacted"}),
        ("notes", {"note": "Called them."}),
    ]:
        answer = client.post(url(followup, action), body)
        assert answer.status_code == 403, action
        assert error(answer)["message"] == (
            "You can only change follow-ups assigned to you or unassigned."
        )
    assert FollowUpEvent.objects.filter(followup=followup).count() == 0


def test_transition_to_contacted_then_resolved(api, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client = api(cs_agent)
    answer = client.post(url(followup, "transition"), {"to": "contacted", "note": "Phoned."})
    assert answer.status_code == 200
    assert answer.json()["status"] == "contacted"
    assert answer.json()["first_contacted_at"] is not None
    cause = root_cause()
    answer = client.post(
        url(followup, "transition"),
        {"to": "resolved", "root_cause": cause.pk, "action_taken": "Escalated to support lead."},
    )
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["root_cause"]) == (
        "resolved",
        "Support responsiveness",
    )


def test_resolving_without_cause_or_action_is_400_with_both_fields(api, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    answer = api(cs_agent).post(url(followup, "transition"), {"to": "resolved"})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "root_cause": ["Choose the root cause."],
        "action_taken": ["Describe the action taken."],
    }
    followup.refresh_from_db()
    assert followup.status == "open"


def test_refused_transitions_and_unknown_status(api, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client = api(cs_agent)
    answer = client.post(url(followup, "transition"), {"to": "closed"})
    assert answer.status_code == 400
    assert error(answer)["message"].startswith("The loop is closed when the partner is told")
    answer = client.post(url(followup, "transition"), {"to": "done"})
    assert error(answer)["fields"] == {"to": ['"done" is not a valid choice.']}


def test_a_stale_version_is_409_and_changes_nothing(api, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client = api(cs_agent)
    assert client.post(url(followup, "notes"), {"note": "First.", "version": 1}).status_code == 200
    answer = client.post(url(followup, "transition"), {"to": "contacted", "version": 1})
    assert answer.status_code == 409
    assert error(answer)["code"] == "conflict"
    assert error(answer)["message"].startswith("Someone else changed this follow-up")
    followup.refresh_from_db()
    assert (followup.status, followup.version) == ("open", 2)


def test_logging_a_call_is_the_first_contact(api, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    answer = api(cs_agent).post(url(followup, "notes"), {"kind": "call", "note": "Spoke to Jo."})
    assert answer.status_code == 200
    assert answer.json()["status"] == "contacted"
    kinds = list(FollowUpEvent.objects.filter(followup=followup).values_list("kind", flat=True))
    assert kinds == ["call", "status"]


def test_empty_note_and_wrong_kind_are_400(api, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client = api(cs_agent)
    assert error(client.post(url(followup, "notes"), {"note": "  "}))["fields"] == {
        "note": ["This field may not be blank."]
    }
    assert error(client.post(url(followup, "notes"), {"note": "x", "kind": "fax"}))["fields"] == {
        "kind": ['"fax" is not a valid choice.']
    }
    assert error(client.post(url(followup, "notes"), {"note": "x", "version": "two"}))[
        "fields"
    ] == {"version": ["A valid integer is required."]}


def test_unknown_followup_is_404(api, cs_agent):
    answer = api(cs_agent).post("/api/v1/followups/999999/notes/", {"note": "x"})
    assert answer.status_code == 404


def test_outsider_cannot_act_on_a_followup(api, outsider):
    followup = FollowUpFactory(assignee=None)
    answer = api(outsider).post(url(followup, "assign"), {"assignee": outsider.pk})
    assert answer.status_code == 403


def test_events_are_cursor_paginated_oldest_first(api, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client = api(cs_agent)
    for n in range(3):
        client.post(url(followup, "notes"), {"note": f"Note {n}"})
    page = client.get(f"/api/v1/followup-events/?followup={followup.pk}&page_size=2").json()
    assert [e["note"] for e in page["results"]] == ["Note 0", "Note 1"]
    assert "cursor=" in page["next"]
    rest = client.get(page["next"]).json()
    assert [e["note"] for e in rest["results"]] == ["Note 2"]
    assert rest["next"] is None
    assert rest["results"][0]["actor"]["username"] == "sam"


# --- Kinds, due dates and bulk reassignment -------------------------------------------------


def test_a_followup_shows_its_kind_invitation_and_resolution_due_time(api, cs_agent):
    due = dt.datetime(2025, 3, 10, 17, tzinfo=dt.UTC)
    followup = FollowUpFactory(resolution_due_at=due)
    body = api(cs_agent).get(url(followup)).json()
    assert (body["kind"], body["invitation"], body["response"]) == (
        "response",
        followup.response.invitation_id,
        followup.response_id,
    )
    assert body["resolution_due_at"] == "2025-03-10T17:00:00Z"


def test_a_no_response_followup_is_listed_without_a_score_or_comment(api, cs_agent):
    invitation = InvitationFactory()
    followup = FollowUp.objects.create(
        kind=FollowUp.Kind.NO_RESPONSE,
        invitation=invitation,
        partner=invitation.contact.partner,
        due_at=dt.datetime(2025, 3, 10, tzinfo=dt.UTC),
    )
    body = api(cs_agent).get(url(followup)).json()
    assert (body["kind"], body["response"], body["invitation"]) == (
        "no_response",
        None,
        invitation.pk,
    )
    assert (body["score"], body["comment"]) == (None, None)


BULK = "/api/v1/followups/bulk-reassign/"


def test_manager_reassigns_many_followups_at_once(api, cs_manager, cs_agent, other_agent):
    mine = FollowUpFactory.create_batch(2, assignee=cs_agent)
    already = FollowUpFactory(assignee=other_agent)
    ids = [f.pk for f in [*mine, already]]
    answer = api(cs_manager).post(BULK, {"followup_ids": ids, "assignee": other_agent.pk})
    assert answer.status_code == 200, answer.json()
    assert answer.json() == {"changed": 2}
    assert set(FollowUp.objects.values_list("assignee__username", flat=True)) == {"olga"}
    assert FollowUpEvent.objects.filter(kind="assigned").count() == 2


def test_bulk_reassign_to_null_unassigns(api, cs_manager, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    answer = api(cs_manager).post(BULK, {"followup_ids": [followup.pk], "assignee": None})
    assert answer.json() == {"changed": 1}
    followup.refresh_from_db()
    assert followup.assignee is None


def test_bulk_reassign_with_an_unknown_followup_changes_nothing(api, cs_manager, cs_agent):
    followup = FollowUpFactory(assignee=None)
    answer = api(cs_manager).post(
        BULK, {"followup_ids": [followup.pk, 999999], "assignee": cs_agent.pk}
    )
    assert answer.status_code == 400
    assert error(answer) == {
        "code": "invalid",
        "message": "Unknown follow-up: 999999",
        "fields": {},
    }
    followup.refresh_from_db()
    assert followup.assignee is None


def test_bulk_reassign_refuses_an_assignee_off_the_team(api, cs_manager, outsider):
    followup = FollowUpFactory()
    answer = api(cs_manager).post(BULK, {"followup_ids": [followup.pk], "assignee": outsider.pk})
    assert answer.status_code == 400
    assert error(answer)["message"] == "otto is not on the customer-success team."


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"assignee": None}, {"followup_ids": ["This field is required."]}),
        ({"followup_ids": [], "assignee": None}, {"followup_ids": ["This list may not be empty."]}),
        (
            {"followup_ids": ["1"], "assignee": None},
            {"followup_ids": {"0": ["A valid integer is required."]}},
        ),
        ({"followup_ids": [1]}, {"assignee": ["This field is required."]}),
    ],
)
def test_bad_bulk_reassign_input_is_400(api, cs_manager, body, fields):
    answer = api(cs_manager).post(BULK, body)
    assert answer.status_code == 400
    assert error(answer)["fields"] == fields


def test_staff_cannot_bulk_reassign(api, cs_agent):
    followup = FollowUpFactory(assignee=None)
    answer = api(cs_agent).post(BULK, {"followup_ids": [followup.pk], "assignee": cs_agent.pk})
    assert answer.status_code == 403
    assert error(answer)["message"] == "Only a manager can reassign follow-ups."
    followup.refresh_from_db()
    assert followup.assignee is None


def test_outsider_cannot_bulk_reassign(api, outsider):
    followup = FollowUpFactory()
    answer = api(outsider).post(BULK, {"followup_ids": [followup.pk], "assignee": None})
    assert answer.status_code == 403
    assert error(answer)["message"] == "The API is for the customer-success team."


def test_the_overdue_filter_counts_late_resolutions_too(api, cs_manager):
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    late = FollowUpFactory(
        status="contacted",
        first_contacted_at=now - dt.timedelta(days=9),
        resolution_due_at=now - dt.timedelta(days=2),
    )
    FollowUpFactory(
        status="contacted", first_contacted_at=now, resolution_due_at=now + dt.timedelta(days=2)
    )
    body = api(cs_manager).get("/api/v1/followups/?overdue=true").json()
    assert [f["id"] for f in body["results"]] == [late.pk]
    assert body["results"][0]["is_overdue"] is True
