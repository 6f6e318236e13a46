"""The customer-success pages for follow-ups: login, the queue, one follow-up and its actions."""

import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from followups.models import Change, FollowUp, FollowUpEvent
from surveys.models import Tier
from tests.factories import (
    PASSWORD,
    ChangeFactory,
    FollowUpFactory,
    ResponseFactory,
    WaveFactory,
    root_cause,
)

pytestmark = pytest.mark.django_db

Status = FollowUp.Status
Kind = FollowUpEvent.Kind


def queue_url(**params):
    url = reverse("followups:queue")
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


def detail_url(followup):
    return reverse("followups:detail", args=[followup.pk])


def action_url(name, followup):
    return reverse(f"followups:{name}", args=[followup.pk])


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def events_of(followup, kind=None):
    events = FollowUpEvent.objects.filter(followup=followup)
    if kind:
        events = events.filter(kind=kind)
    return list(events.values_list("kind", "old_value", "new_value"))


def with_events(followup, n, actor):
    FollowUpEvent.objects.bulk_create(
        [
            FollowUpEvent(followup=followup, actor=actor, kind=Kind.NOTE, note=f"note {i}")
            for i in range(n)
        ]
    )


# --- Login ----------------------------------------------------------------------------------


def test_login_page_renders_the_form(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_logging_in_lands_on_the_queue(client, cs_agent):
    response = client.post(reverse("login"), {"username": "sam", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("followups:queue")


def test_a_wrong_password_is_refused_with_a_message(client, cs_agent):
    response = client.post(reverse("login"), {"username": "sam", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


# --- Who may see the pages ------------------------------------------------------------------


@pytest.mark.parametrize("page", ["queue", "detail"])
def test_anonymous_visitors_are_sent_to_the_login_page(client, page):
    followup = FollowUpFactory()
    url = queue_url() if page == "queue" else detail_url(followup)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("page", ["queue", "detail"])
def test_outsiders_get_403(client, outsider, page):
    followup = FollowUpFactory()
    client.force_login(outsider)
    url = queue_url() if page == "queue" else detail_url(followup)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("page", ["queue", "detail"])
def test_cs_agents_see_the_pages(client, cs_agent, page):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    url = queue_url() if page == "queue" else detail_url(followup)
    assert client.get(url).status_code == 200


def test_an_unknown_followup_is_404(client, cs_agent):
    client.force_login(cs_agent)
    assert client.get(reverse("followups:detail", args=[999999])).status_code == 404


@pytest.mark.parametrize("name", ["log-contact", "transition", "assign", "link-change"])
def test_outsiders_cannot_post_actions(client, outsider, name):
    followup = FollowUpFactory()
    client.force_login(outsider)
    response = client.post(action_url(name, followup), {"version": 1})
    assert response.status_code == 403


@pytest.mark.parametrize("name", ["log-contact", "transition", "assign", "link-change"])
def test_actions_do_not_answer_get(client, cs_agent, name):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    assert client.get(action_url(name, followup)).status_code == 405


# --- The queue ------------------------------------------------------------------------------


@pytest.fixture
def queue_mix(cs_agent, other_agent):
    """One follow-up in each situation the tabs tell apart."""
    now = timezone.now()
    return {
        "mine": FollowUpFactory(assignee=cs_agent, response__comment="Mine and open"),
        "mine_overdue": FollowUpFactory(
            assignee=cs_agent, due_at=now - dt.timedelta(hours=3), response__comment="Mine, late"
        ),
        "unassigned": FollowUpFactory(assignee=None, response__comment="Nobody's yet"),
        "others": FollowUpFactory(assignee=other_agent, response__comment="Olga's"),
        "contacted_late": FollowUpFactory(
            assignee=other_agent,
            status=Status.CONTACTED,
            first_contacted_at=now - dt.timedelta(days=3),
            due_at=now - dt.timedelta(days=1),
            response__comment="Contacted in time",
        ),
        "closed": FollowUpFactory(
            assignee=cs_agent, status=Status.CLOSED_NO_ACTION, response__comment="Done with"
        ),
    }


def rows(response) -> set[int]:
    return {f.pk for f in response.context["page"].object_list}


def test_the_default_tab_shows_my_open_followups_overdue_first(client, cs_agent, queue_mix):
    client.force_login(cs_agent)
    response = client.get(queue_url())
    assert response.context["tab"] == "mine"
    assert [f.pk for f in response.context["page"].object_list] == [
        queue_mix["mine_overdue"].pk,
        queue_mix["mine"].pk,
    ]
    assert b"overdue" in response.content


def test_the_team_tab_puts_late_first_contacts_first_and_contacted_ones_by_resolution_due(
    client, cs_manager, cs_agent
):
    """A follow-up contacted long ago is not "more urgent" than an overdue first contact: after
    the overdue ones come the first contacts still to make, then the contacted ones by the time
    their resolution is due (none set: last)."""
    now = timezone.now()
    contacted = dict(status=Status.CONTACTED, first_contacted_at=now - dt.timedelta(days=60))
    made = {
        "contacted_no_resolution_due": FollowUpFactory(
            due_at=now - dt.timedelta(days=90), resolution_due_at=None, **contacted
        ),
        "contacted_resolve_soon": FollowUpFactory(
            due_at=now - dt.timedelta(days=80),
            resolution_due_at=now + dt.timedelta(days=1),
            **contacted,
        ),
        "contacted_resolve_later": FollowUpFactory(
            due_at=now - dt.timedelta(days=85),
            resolution_due_at=now + dt.timedelta(days=9),
            **contacted,
        ),
        "due_tomorrow": FollowUpFactory(due_at=now + dt.timedelta(days=1)),
        "late_by_hours": FollowUpFactory(due_at=now - dt.timedelta(hours=2), assignee=cs_agent),
        "late_by_days": FollowUpFactory(due_at=now - dt.timedelta(days=2)),
    }
    client.force_login(cs_manager)
    page = client.get(queue_url(), {"tab": "team"})
    names = {f.pk: name for name, f in made.items()}
    assert [names[f.pk] for f in page.context["page"].object_list] == [
        "late_by_days",
        "late_by_hours",
        "due_tomorrow",
        "contacted_resolve_soon",
        "contacted_resolve_later",
        "contacted_no_resolution_due",
    ]
    assert b"resolve by" in page.content


@pytest.mark.parametrize(
    "tab, expected",
    [
        ("unassigned", {"unassigned"}),
        ("overdue", {"mine_overdue"}),
        ("team", {"mine", "mine_overdue", "unassigned", "others", "contacted_late"}),
        ("closed", {"closed"}),
    ],
)
def test_each_tab_lists_its_followups(client, cs_agent, queue_mix, tab, expected):
    client.force_login(cs_agent)
    response = client.get(queue_url(tab=tab))
    assert rows(response) == {queue_mix[name].pk for name in expected}


def test_tabs_show_their_counts(client, cs_agent, queue_mix):
    client.force_login(cs_agent)
    response = client.get(queue_url())
    counts = {t["key"]: t["count"] for t in response.context["tabs"]}
    assert counts == {"mine": 2, "unassigned": 1, "overdue": 1, "team": 5, "closed": 1}


def test_an_unknown_tab_falls_back_to_mine(client, cs_agent, queue_mix):
    client.force_login(cs_agent)
    assert client.get(queue_url(tab="everything")).context["tab"] == "mine"


def test_a_row_shows_partner_tier_score_comment_and_wave(client, cs_agent):
    followup = FollowUpFactory(
        assignee=cs_agent, response__score=2, response__comment="Portal keeps logging me out"
    )
    client.force_login(cs_agent)
    html = client.get(queue_url()).content.decode()
    assert followup.partner.name in html
    assert "Gold" in html
    assert '<span class="badge detractor" title="Detractor">2</span>' in html
    assert "Portal keeps logging me out" in html
    assert followup.response.wave.label in html
    assert followup.response.program.name in html


def test_filters_narrow_the_team_tab(client, cs_agent, other_agent):
    silver = Tier.objects.get(name="Silver")
    wanted = FollowUpFactory(
        assignee=other_agent, response__invitation__contact__partner__region="APAC"
    )
    wanted.partner.tier = silver
    wanted.partner.save()
    FollowUpFactory(
        assignee=other_agent, response__invitation__contact__partner__region="APAC"
    )  # Gold
    FollowUpFactory(assignee=other_agent)  # EMEA, Gold
    client.force_login(cs_agent)
    response = client.get(queue_url(tab="team", tier=silver.pk, region="apac"))
    assert rows(response) == {wanted.pk}
    counts = {t["key"]: t["count"] for t in response.context["tabs"]}
    assert counts["team"] == 1


def test_filter_by_assignee_and_program(client, cs_agent, other_agent):
    wanted = FollowUpFactory(assignee=other_agent)
    FollowUpFactory(assignee=cs_agent, response__invitation__wave=wanted.response.wave)
    FollowUpFactory(assignee=other_agent)
    client.force_login(cs_agent)
    response = client.get(
        queue_url(tab="team", assignee=other_agent.pk, program=wanted.response.program_id)
    )
    assert rows(response) == {wanted.pk}


def test_a_bad_filter_value_is_reported_and_ignored(client, cs_agent, queue_mix):
    client.force_login(cs_agent)
    response = client.get(queue_url(tab="team", assignee=999999))
    assert response.status_code == 200
    assert "assignee" in response.context["filter_form"].errors
    assert len(rows(response)) == 5


def test_the_queue_is_paginated_by_50(client, cs_agent):
    FollowUpFactory.create_batch(51, assignee=cs_agent)
    client.force_login(cs_agent)
    first = client.get(queue_url())
    second = client.get(queue_url(page=2))
    assert len(first.context["page"].object_list) == 50
    assert len(second.context["page"].object_list) == 1
    assert b"Page 1 of 2" in first.content


@pytest.mark.parametrize("n", [5, 30])
def test_queue_query_budget_does_not_grow_with_rows(client, cs_agent, n, django_assert_num_queries):
    FollowUpFactory.create_batch(n, assignee=cs_agent)
    client.force_login(cs_agent)
    # session, user, groups (role check), tab counts (one aggregate), page count, page of
    # follow-ups (joined), then the filter form's selects: assignees, programs, tiers.
    with django_assert_num_queries(9):
        response = client.get(queue_url())
    assert len(response.context["page"].object_list) == n


# --- The follow-up page ---------------------------------------------------------------------


def test_the_page_shows_response_partner_and_contact(client, cs_agent):
    followup = FollowUpFactory(
        assignee=cs_agent,
        response__score=4,
        response__comment="Deal registration is slow",
        response__invitation__contact__language="de",
        response__invitation__contact__partner__region="DACH",
    )
    client.force_login(cs_agent)
    html = client.get(detail_url(followup)).content.decode()
    contact = followup.response.contact
    for text in [
        "Deal registration is slow",
        contact.name,
        contact.email,
        "DE",
        "Gold",
        "Reseller",
        "DACH",
        followup.response.wave.label,
        '<span class="badge detractor" title="Detractor">4</span>',
    ]:
        assert text in html


def test_the_page_shows_the_partners_history(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    partner = followup.partner
    earlier_wave = WaveFactory(
        program=followup.response.program,
        opens_at=timezone.now() - dt.timedelta(days=100),
        label="2024 Q1",
    )
    earlier = FollowUpFactory(
        response__invitation__wave=earlier_wave,
        response__invitation__contact__partner=partner,
        response__score=1,
        response__comment="Nobody called back",
    )
    ResponseFactory(
        invitation__contact__partner=partner,
        score=9,
        comment="Much better now",
    )
    change = ChangeFactory(title="Callback within a day")
    change.followups.add(earlier)
    client.force_login(cs_agent)
    response = client.get(detail_url(followup))
    html = response.content.decode()
    assert len(response.context["history"]) == 3
    assert "2024 Q1" in html
    assert "Nobody called back" in html
    assert '<span class="badge promoter" title="Promoter">9</span>' in html
    assert [f.pk for f in response.context["other_followups"]] == [earlier.pk]
    assert "Callback within a day" in html


def test_the_timeline_shows_who_when_and_what(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    FollowUpEvent.objects.create(
        followup=followup,
        actor=cs_agent,
        kind=Kind.STATUS,
        old_value="open",
        new_value="planned",
        note="Fix agreed with the partner",
    )
    client.force_login(cs_agent)
    html = client.get(detail_url(followup)).content.decode()
    assert "Status changed" in html
    assert "Open → Action planned" in html
    assert "Fix agreed with the partner" in html
    assert "sam" in html


@pytest.mark.parametrize("n", [10, 30])
def test_detail_query_budget_does_not_grow_with_events_or_history(
    client, cs_agent, n, django_assert_num_queries
):
    followup = FollowUpFactory(assignee=cs_agent)
    with_events(followup, n, cs_agent)
    for _ in range(n // 5):
        earlier = FollowUpFactory(response__invitation__contact__partner=followup.partner)
        ChangeFactory().followups.add(earlier)
    client.force_login(cs_agent)
    # session, user, groups, the follow-up (joined), its events (with actors), the partner's
    # responses, its other follow-ups, the changes linked to them, active root causes, and the
    # linkable changes (exists, then the options). Staff get no CS-user select (managers +1).
    # Plus the audit log's INSERT (who viewed the answer).
    with django_assert_num_queries(12):
        response = client.get(detail_url(followup))
    assert len(response.context["events"]) == n


def test_only_allowed_next_statuses_are_offered(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, status=Status.CONTACTED)
    client.force_login(cs_agent)
    response = client.get(detail_url(followup))
    assert response.context["next_statuses"] == [
        Status.ACTION_PLANNED,
        Status.RESOLVED,
        Status.CLOSED_NO_ACTION,
    ]
    assert b'value="open"' not in response.content


def test_loop_closed_is_not_offered_before_the_partner_was_told(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, status=Status.RESOLVED)
    client.force_login(cs_agent)
    assert client.get(detail_url(followup)).context["next_statuses"] == [Status.ACTION_PLANNED]


def test_staff_see_someone_elses_followup_read_only(client, cs_agent, other_agent):
    followup = FollowUpFactory(assignee=other_agent)
    client.force_login(cs_agent)
    response = client.get(detail_url(followup))
    assert response.status_code == 200
    assert response.context["can_edit"] is False
    assert b"Read only" in response.content
    assert reverse("followups:log-contact", args=[followup.pk]).encode() not in response.content


def test_staff_may_take_an_unassigned_followup_but_not_reassign(client, cs_agent):
    followup = FollowUpFactory(assignee=None)
    client.force_login(cs_agent)
    response = client.get(detail_url(followup))
    assert b"Take it" in response.content
    assert response.context["assign_form"] is None


def test_managers_get_a_select_of_cs_users(client, cs_manager, cs_agent, other_agent, outsider):
    followup = FollowUpFactory(assignee=other_agent)
    client.force_login(cs_manager)
    response = client.get(detail_url(followup))
    choices = [str(u) for u in response.context["assign_form"].fields["assignee"].queryset]
    assert choices == ["maria", "olga", "sam"]


# --- Actions --------------------------------------------------------------------------------


def test_logging_a_call_moves_open_to_contacted_and_writes_events(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    response = client.post(
        action_url("log-contact", followup),
        {"kind": "call", "note": "Called Jo, support backlog explained", "version": 1},
    )
    assert response.status_code == 302
    assert response.url == detail_url(followup)
    assert flash(response) == ["Call logged."]
    followup.refresh_from_db()
    assert followup.status == Status.CONTACTED
    assert followup.first_contacted_at is not None
    assert followup.version == 2
    assert events_of(followup) == [("call", "", ""), ("status", "open", "contacted")]


def test_a_note_does_not_count_as_contact(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    client.post(
        action_url("log-contact", followup),
        {"kind": "note", "note": "Will call Monday", "version": 1},
    )
    followup.refresh_from_db()
    assert followup.status == Status.OPEN
    assert events_of(followup) == [("note", "", "")]


def test_an_empty_note_is_refused_and_nothing_changes(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    response = client.post(
        action_url("log-contact", followup), {"kind": "call", "note": " ", "version": 1}
    )
    assert response.status_code == 302
    assert flash(response) == ["What was said or done: Write what was said or done."]
    followup.refresh_from_db()
    assert (followup.status, followup.version) == (Status.OPEN, 1)
    assert events_of(followup) == []


def test_an_illegal_transition_shows_the_error_and_changes_nothing(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, status=Status.CONTACTED)
    client.force_login(cs_agent)
    response = client.post(action_url("transition", followup), {"to": "open", "version": 1})
    assert flash(response) == ["A follow-up cannot go from “Contacted” to “Open”."]
    followup.refresh_from_db()
    assert (followup.status, followup.version) == (Status.CONTACTED, 1)
    assert events_of(followup) == []


def test_closing_the_loop_by_hand_is_refused(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, status=Status.RESOLVED)
    client.force_login(cs_agent)
    response = client.post(action_url("transition", followup), {"to": "closed", "version": 1})
    assert "The loop is closed when the partner is told" in flash(response)[0]
    followup.refresh_from_db()
    assert followup.status == Status.RESOLVED


def test_resolving_requires_a_root_cause(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, status=Status.CONTACTED)
    client.force_login(cs_agent)
    response = client.post(
        action_url("transition", followup),
        {"to": "resolved", "action_taken": "Added a support engineer", "version": 1},
    )
    assert flash(response) == ["Choose the root cause."]
    followup.refresh_from_db()
    assert followup.status == Status.CONTACTED
    assert followup.root_cause is None


def test_resolving_with_root_cause_and_action(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, status=Status.CONTACTED)
    cause = root_cause("Support responsiveness")
    client.force_login(cs_agent)
    response = client.post(
        action_url("transition", followup),
        {
            "to": "resolved",
            "root_cause": cause.pk,
            "action_taken": "Added a support engineer",
            "version": 1,
        },
    )
    assert flash(response) == ["Status is now “Resolved”."]
    followup.refresh_from_db()
    assert followup.status == Status.RESOLVED
    assert followup.root_cause == cause
    assert followup.action_taken == "Added a support engineer"
    assert events_of(followup) == [("status", "contacted", "resolved")]


def test_an_inactive_root_cause_is_refused(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, status=Status.CONTACTED)
    cause = root_cause("Other")
    cause.is_active = False
    cause.save()
    client.force_login(cs_agent)
    response = client.post(
        action_url("transition", followup),
        {"to": "resolved", "root_cause": cause.pk, "action_taken": "x", "version": 1},
    )
    assert flash(response)[0].startswith("Root cause: Select a valid choice.")
    followup.refresh_from_db()
    assert followup.status == Status.CONTACTED


def test_closing_without_action_needs_a_reason(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    response = client.post(action_url("transition", followup), {"to": "no_action", "version": 1})
    assert flash(response) == ["Say why no action is needed."]
    followup.refresh_from_db()
    assert followup.status == Status.OPEN

    client.post(
        action_url("transition", followup),
        {"to": "no_action", "closed_reason": "Partner is leaving the program", "version": 1},
    )
    followup.refresh_from_db()
    assert followup.status == Status.CLOSED_NO_ACTION
    assert followup.closed_reason == "Partner is leaving the program"


@pytest.mark.parametrize(
    "name, data",
    [
        ("log-contact", {"kind": "call", "note": "Hi"}),
        ("transition", {"to": "planned"}),
        ("assign", {"assignee": ""}),
        ("link-change", {}),
    ],
)
def test_staff_cannot_act_on_another_staff_members_followup(
    client, cs_agent, other_agent, name, data
):
    followup = FollowUpFactory(assignee=other_agent)
    change = ChangeFactory()
    if name == "link-change":
        data = {"change": change.pk}
    client.force_login(cs_agent)
    response = client.post(action_url(name, followup), {**data, "version": 1})
    assert response.status_code == 403
    followup.refresh_from_db()
    assert (followup.status, followup.assignee, followup.version) == (Status.OPEN, other_agent, 1)
    assert events_of(followup) == []
    assert not change.followups.exists()


def test_managers_can_act_on_anyones_followup(client, cs_manager, other_agent):
    followup = FollowUpFactory(assignee=other_agent)
    client.force_login(cs_manager)
    response = client.post(
        action_url("transition", followup), {"to": "planned", "note": "Escalated", "version": 1}
    )
    assert flash(response) == ["Status is now “Action planned”."]
    followup.refresh_from_db()
    assert followup.status == Status.ACTION_PLANNED


def test_a_stale_version_is_refused_and_nothing_is_saved(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, version=3)
    client.force_login(cs_agent)
    response = client.post(
        action_url("log-contact", followup), {"kind": "call", "note": "Called", "version": 2}
    )
    assert response.status_code == 302
    assert flash(response)[0].startswith("Someone else changed this follow-up")
    followup.refresh_from_db()
    assert (followup.status, followup.version) == (Status.OPEN, 3)
    assert events_of(followup) == []


def test_a_stale_version_is_refused_when_linking_a_change(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent, version=3)
    change = ChangeFactory()
    client.force_login(cs_agent)
    response = client.post(action_url("link-change", followup), {"change": change.pk, "version": 2})
    assert flash(response)[0].startswith("Someone else changed this follow-up")
    assert not change.followups.exists()


def test_a_missing_version_is_refused(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    response = client.post(action_url("transition", followup), {"to": "planned"})
    assert flash(response) == ["The form was incomplete: reload the page and try again."]
    followup.refresh_from_db()
    assert followup.status == Status.OPEN


def test_staff_take_an_unassigned_followup(client, cs_agent):
    followup = FollowUpFactory(assignee=None)
    client.force_login(cs_agent)
    response = client.post(action_url("assign", followup), {"assignee": cs_agent.pk, "version": 1})
    assert flash(response) == ["The follow-up is yours now."]
    followup.refresh_from_db()
    assert followup.assignee == cs_agent
    assert events_of(followup) == [("assigned", "", "sam")]


def test_staff_cannot_give_a_followup_to_someone_else(client, cs_agent, other_agent):
    followup = FollowUpFactory(assignee=None)
    client.force_login(cs_agent)
    response = client.post(
        action_url("assign", followup), {"assignee": other_agent.pk, "version": 1}
    )
    assert response.status_code == 403
    followup.refresh_from_db()
    assert followup.assignee is None


def test_managers_reassign(client, cs_manager, cs_agent, other_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_manager)
    response = client.post(
        action_url("assign", followup), {"assignee": other_agent.pk, "version": 1}
    )
    assert flash(response) == ["Assigned to olga."]
    followup.refresh_from_db()
    assert followup.assignee == other_agent
    assert events_of(followup) == [("assigned", "sam", "olga")]


def test_assigning_to_someone_outside_the_team_is_refused(client, cs_manager, outsider):
    followup = FollowUpFactory(assignee=None)
    client.force_login(cs_manager)
    response = client.post(action_url("assign", followup), {"assignee": outsider.pk, "version": 1})
    assert flash(response)[0].startswith("Assign to: Select a valid choice.")
    followup.refresh_from_db()
    assert followup.assignee is None


def test_linking_a_followup_to_a_change(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    change = ChangeFactory(title="Faster support")
    client.force_login(cs_agent)
    response = client.post(action_url("link-change", followup), {"change": change.pk, "version": 1})
    assert flash(response) == ["Linked to the change “Faster support”."]
    assert list(change.followups.all()) == [followup]
    assert events_of(followup) == [("linked", "", "Faster support")]


def test_a_shipped_and_announced_change_cannot_be_linked(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    change = ChangeFactory(status=Change.Status.SHIPPED, shipped_at=timezone.now())
    told = FollowUpFactory()
    change.followups.add(told)
    change.notices.create(followup=told)
    open_change = ChangeFactory(title="Still planned")
    client.force_login(cs_agent)
    page = client.get(detail_url(followup))
    assert list(page.context["link_form"].fields["change"].queryset) == [open_change]
    response = client.post(action_url("link-change", followup), {"change": change.pk, "version": 1})
    assert flash(response) == ["Change: Choose a change that is still open for linking."]
    assert not change.followups.filter(pk=followup.pk).exists()


def test_the_page_says_the_partner_asked_to_be_contacted_and_shows_extra_answers(client, cs_agent):
    followup = FollowUpFactory(
        assignee=cs_agent,
        response__wants_contact=True,
        response__answers={"support": "Slow <b>tickets</b>", "gone": "kept"},
        response__invitation__wave__program__extra_questions=[
            {"key": "plan", "label": "Your plan", "type": "choice", "choices": ["A"]},
            {"key": "support", "label": "How is support?", "type": "text"},
        ],
    )
    client.force_login(cs_agent)
    html = client.get(detail_url(followup)).content.decode()
    assert "<strong>Asked to be contacted</strong> about this answer." in html
    assert "<dt>How is support?</dt><dd>Slow &lt;b&gt;tickets&lt;/b&gt;</dd>" in html
    assert "<dt>gone</dt><dd>kept</dd>" in html  # a question since removed keeps its key
    assert "Your plan" not in html  # not answered

    followup.response.__class__.objects.filter(pk=followup.response_id).update(
        wants_contact=False, answers={}
    )
    html = client.get(detail_url(followup)).content.decode()
    assert "Asked to be contacted" not in html and 'class="facts answers"' not in html


def test_a_followup_late_on_resolution_is_overdue_too(client, cs_manager):
    now = timezone.now()
    late = FollowUpFactory(
        status=Status.ACTION_PLANNED,
        first_contacted_at=now - dt.timedelta(days=60),
        due_at=now - dt.timedelta(days=61),
        resolution_due_at=now - dt.timedelta(days=30),
    )
    resolved = FollowUpFactory(
        status=Status.RESOLVED,
        first_contacted_at=now - dt.timedelta(days=60),
        due_at=now - dt.timedelta(days=61),
        resolution_due_at=now - dt.timedelta(days=30),
    )
    in_time = FollowUpFactory(
        status=Status.CONTACTED,
        first_contacted_at=now - dt.timedelta(days=1),
        resolution_due_at=now + dt.timedelta(days=3),
    )
    assert (late.is_overdue(), resolved.is_overdue(), in_time.is_overdue()) == (True, False, False)
    client.force_login(cs_manager)
    page = client.get(queue_url(), {"tab": "overdue"})
    assert rows(page) == {late.pk}
    assert {t["key"]: t["count"] for t in page.context["tabs"]}["overdue"] == 1
    assert b"resolution overdue" in page.content
