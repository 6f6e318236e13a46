"""The rest of the loop: recovery links and figures, the managers' KPI page, bulk reassignment,
the partner's "you told us, we did" page, and the webhook events of the follow-up services."""

import datetime as dt
import hashlib

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from followups import selectors, services
from followups.models import (
    Change,
    FollowUp,
    FollowUpEvent,
    FollowUpRule,
    PartnerNotice,
    PartnerPageToken,
)
from surveys.services import response_submit
from tests.factories import (
    ChangeFactory,
    ContactFactory,
    FollowUpFactory,
    InvitationFactory,
    PartnerFactory,
    ResponseFactory,
    WaveFactory,
    root_cause,
)
from webhooks.models import Delivery, Subscription

pytestmark = pytest.mark.django_db

Status = FollowUp.Status


def closed_loop(*, assignee, by, score=3, contact=None, change=None, when=None):
    """A detractor follow-up worked to "loop closed" through the services."""
    when = when or timezone.now() - dt.timedelta(days=100)
    contact = contact or ContactFactory()
    invitation = InvitationFactory(
        wave=WaveFactory(opens_at=when - dt.timedelta(hours=1)), contact=contact
    )
    with time_machine.travel(when, tick=False):
        response = response_submit(invitation_id=invitation.pk, score=score, comment="Slow.")
    followup = FollowUp.objects.get(response=response)
    FollowUp.objects.filter(pk=followup.pk).update(assignee=assignee)
    services.followup_log_contact(followup_id=followup.pk, by=by, kind="call", note="Called.")
    services.followup_transition(
        followup_id=followup.pk,
        to=Status.RESOLVED,
        by=by,
        root_cause=root_cause(),
        action_taken="Support SLA.",
    )
    change = change or ChangeFactory()
    services.change_link_followups(change_id=change.pk, followup_ids=[followup.pk], by=by)
    if change.status != Change.Status.SHIPPED:
        services.change_ship(change_id=change.pk, by=by)
    services.change_notify_partners(change_id=change.pk, by=by)
    for notice in PartnerNotice.objects.filter(followup=followup):
        services.notice_send(notice_id=notice.pk)
    followup.refresh_from_db()
    assert followup.status == Status.LOOP_CLOSED
    return followup, change


def answer_next_wave(contact, score):
    invitation = InvitationFactory(wave=WaveFactory(), contact=contact)
    return response_submit(invitation_id=invitation.pk, score=score, comment="")


# --- Recovery --------------------------------------------------------------------------------


def test_the_contacts_next_response_is_linked_to_the_closed_loop(cs_agent):
    followup, _change = closed_loop(assignee=cs_agent, by=cs_agent)
    later = answer_next_wave(followup.response.contact, 8)
    followup.refresh_from_db()
    assert followup.next_response == later
    # The answer after that does not replace the next one.
    answer_next_wave(followup.response.contact, 2)
    followup.refresh_from_db()
    assert followup.next_response == later


def test_recovery_per_owner_and_per_change(cs_agent, other_agent):
    shared = ChangeFactory(title="Faster support")
    recovered, _ = closed_loop(assignee=cs_agent, by=cs_agent, change=shared)
    stayed, _ = closed_loop(assignee=cs_agent, by=cs_agent, change=shared)
    silent, other_change = closed_loop(assignee=other_agent, by=other_agent)
    answer_next_wave(recovered.response.contact, 7)
    answer_next_wave(stayed.response.contact, 6)

    by_owner = {r["assignee__username"]: r for r in selectors.recovery_by_owner()}
    assert {k: (v["recovered"], v["stayed"], v["no_answer"]) for k, v in by_owner.items()} == {
        "sam": (1, 1, 0),
        "olga": (0, 0, 1),
    }
    by_change = {
        r["title"]: (r["recovered"], r["stayed"], r["no_answer"])
        for r in selectors.recovery_by_change()
    }
    assert by_change == {"Faster support": (1, 1, 0), other_change.title: (0, 0, 1)}


# --- The KPI page ----------------------------------------------------------------------------


def kpi_url():
    return reverse("followups:kpis")


def test_the_kpi_page_shows_overall_per_owner_and_per_program(client, cs_manager, cs_agent):
    followup, _ = closed_loop(assignee=cs_agent, by=cs_agent)
    answer_next_wave(followup.response.contact, 9)
    client.force_login(cs_manager)
    page = client.get(kpi_url())
    assert page.status_code == 200
    overall = page.context["overall"]
    assert overall.followups == 1  # the promoter's next answer needs no follow-up
    assert overall.loops_closed == 100
    assert overall.closed_with_root_cause == 100
    assert overall.recovery_rate == 100
    assert [name for name, _k in page.context["by_owner"]] == ["sam"]
    assert [name for name, _k in page.context["by_program"]] == [followup.response.program.name]
    assert "Recovery rate" in page.text
    assert followup.response.program.name in page.text


@pytest.mark.parametrize("persona", ["cs_agent", "outsider"])
def test_the_kpi_page_is_for_managers_only(client, persona, request):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(kpi_url()).status_code == 403


def test_the_kpi_page_sends_anonymous_visitors_to_log_in(client):
    response = client.get(kpi_url())
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_admins_see_the_kpi_page(client, admin_user):
    client.force_login(admin_user)
    assert client.get(kpi_url()).status_code == 200


@pytest.mark.parametrize("n", [3, 15])
def test_the_kpi_page_reads_in_a_fixed_number_of_queries(
    client, cs_manager, cs_agent, n, django_assert_num_queries
):
    for _ in range(n):
        FollowUpFactory(assignee=cs_agent, first_contacted_at=timezone.now())
    client.force_login(cs_manager)
    # session, user, groups, the KPI rows (one joined query), recovery per owner, per change.
    with django_assert_num_queries(6):
        assert client.get(kpi_url()).status_code == 200


# --- Bulk reassignment -----------------------------------------------------------------------


def bulk(client, followups, assignee, **extra):
    data = {"followups": [f.pk for f in followups], **extra}
    if assignee is not None:
        data["assignee"] = assignee.pk
    return client.post(reverse("followups:bulk-assign"), data)


def test_a_manager_reassigns_several_followups_at_once(client, cs_manager, cs_agent, other_agent):
    followups = FollowUpFactory.create_batch(3, assignee=cs_agent)
    client.force_login(cs_manager)
    response = bulk(client, followups, other_agent, next="/?tab=team")
    assert response.status_code == 302 and response.url == "/?tab=team"
    assert set(FollowUp.objects.values_list("assignee__username", flat=True)) == {"olga"}
    for followup in followups:
        event = followup.events.get(kind=FollowUpEvent.Kind.ASSIGNED)
        assert (event.old_value, event.new_value, event.actor) == ("sam", "olga", cs_manager)


def test_bulk_reassign_refuses_an_empty_selection_and_changes_nothing(client, cs_manager):
    client.force_login(cs_manager)
    response = client.post(reverse("followups:bulk-assign"), {}, follow=True)
    assert "Tick at least one follow-up." in response.text
    assert not FollowUpEvent.objects.exists()


def test_bulk_reassign_refuses_an_unknown_followup_and_changes_nothing(
    client, cs_manager, cs_agent
):
    followup = FollowUpFactory()
    client.force_login(cs_manager)
    response = client.post(
        reverse("followups:bulk-assign"),
        {"followups": [followup.pk, 99999], "assignee": cs_agent.pk},
        follow=True,
    )
    assert "no longer exists" in response.text
    followup.refresh_from_db()
    assert followup.assignee is None


def test_bulk_reassign_ignores_an_offsite_next_url(client, cs_manager, cs_agent):
    client.force_login(cs_manager)
    response = bulk(client, [FollowUpFactory()], cs_agent, next="//evil.example/")
    assert response.url == reverse("followups:queue")


@pytest.mark.parametrize("persona", ["cs_agent", "outsider"])
def test_only_managers_may_bulk_reassign(client, persona, request, other_agent):
    followup = FollowUpFactory()
    client.force_login(request.getfixturevalue(persona))
    assert bulk(client, [followup], other_agent).status_code == 403
    followup.refresh_from_db()
    assert followup.assignee is None


def test_the_queue_offers_bulk_reassign_to_managers_only(client, cs_manager, cs_agent):
    FollowUpFactory()
    client.force_login(cs_manager)
    assert 'id="bulk-assign"' in client.get("/?tab=team").text
    client.force_login(cs_agent)
    assert 'id="bulk-assign"' not in client.get("/?tab=team").text


@pytest.mark.parametrize("n", [5, 30])
def test_the_managers_queue_reads_in_a_fixed_number_of_queries(
    client, cs_manager, cs_agent, n, django_assert_num_queries
):
    FollowUpFactory.create_batch(n, assignee=cs_agent)
    client.force_login(cs_manager)
    # As for staff (9), plus the bulk form's list of CS users.
    with django_assert_num_queries(10):
        response = client.get("/?tab=team")
    assert len(response.context["page"].object_list) == n


# --- The partner's page ----------------------------------------------------------------------


def test_the_partner_email_gets_a_fresh_link_to_the_partners_page(cs_agent, monkeypatch):
    seen = []
    real = services.notice_message

    def spy(notice, connection=None, partner_page_url=""):
        seen.append(partner_page_url)
        return real(notice, connection=connection, partner_page_url=partner_page_url)

    monkeypatch.setattr(services, "notice_message", spy)
    followup, _change = closed_loop(assignee=cs_agent, by=cs_agent)
    assert len(seen) == 1
    url = seen[0]
    assert url.startswith(settings.SITE_URL + "/p/")
    token = url.rstrip("/").rsplit("/", 1)[-1]
    stored = PartnerPageToken.objects.get(partner=followup.partner)
    # Only the SHA-256 of the token is stored; the token carries 192 random bits.
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_hash
    assert len(token) == 32


def test_the_partner_page_lists_the_shipped_changes_linked_to_its_feedback(client, cs_agent):
    followup, change = closed_loop(assignee=cs_agent, by=cs_agent)
    planned = ChangeFactory(title="Not yet shipped")
    planned.followups.add(followup)
    unrelated = ChangeFactory(
        title="Someone else's change", status="shipped", shipped_at=timezone.now()
    )
    unrelated.followups.add(FollowUpFactory())
    token = services.partner_page_token_issue(partner_id=followup.partner_id)
    page = client.get(reverse("partner-pages:page", args=[token]))
    assert page.status_code == 200
    assert change.title in page.text
    assert change.description in page.text
    assert "Not yet shipped" not in page.text
    assert "Someone else" not in page.text
    assert page["X-Robots-Tag"] == "noindex, nofollow"


def test_opening_the_partner_page_changes_nothing(client, cs_agent):
    followup, _change = closed_loop(assignee=cs_agent, by=cs_agent)
    token = services.partner_page_token_issue(partner_id=followup.partner_id)
    before = (
        FollowUpEvent.objects.count(),
        PartnerPageToken.objects.count(),
        FollowUp.objects.get(pk=followup.pk).updated_at,
    )
    client.get(reverse("partner-pages:page", args=[token]))
    client.head(reverse("partner-pages:page", args=[token]))
    after = (
        FollowUpEvent.objects.count(),
        PartnerPageToken.objects.count(),
        FollowUp.objects.get(pk=followup.pk).updated_at,
    )
    assert before == after


@pytest.mark.parametrize(
    "token",
    ["x" * 32, "short", "ü" * 32, "a" * 31 + "!"],
    ids=["unknown", "too short", "not ascii", "bad character"],
)
def test_an_unknown_partner_link_gets_a_friendly_404(client, token):
    page = client.get(f"/p/{token}/")
    assert page.status_code == 404
    assert "This link does not work" in page.text


def test_an_expired_partner_link_gets_the_friendly_404(client):
    partner = PartnerFactory()
    long_ago = timezone.now() - dt.timedelta(days=400)
    token = services.partner_page_token_issue(partner_id=partner.pk, now=long_ago)
    assert client.get(f"/p/{token}/").status_code == 404


def test_partner_page_tokens_carry_enough_randomness_and_are_stored_hashed():
    partner = PartnerFactory()
    tokens = {services.partner_page_token_issue(partner_id=partner.pk) for _ in range(5)}
    assert len(tokens) == 5
    stored = set(PartnerPageToken.objects.values_list("token_hash", flat=True))
    assert not stored & tokens
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    assert all(len(t) == 32 for t in tokens)  # 24 random bytes = 192 bits


def test_the_notify_preview_issues_no_token(client, cs_agent):
    change = ChangeFactory(status="shipped", shipped_at=timezone.now())
    change.followups.add(FollowUpFactory(assignee=cs_agent))
    client.force_login(cs_agent)
    page = client.get(reverse("followups:change-notify", args=[change.pk]))
    assert page.status_code == 200
    assert not PartnerPageToken.objects.exists()


# --- Webhook events --------------------------------------------------------------------------


def test_the_followup_services_emit_their_webhook_events(cs_agent):
    Subscription.objects.create(
        url="https://hooks.example.com/nps",
        events=[
            "followup.created",
            "followup.status_changed",
            "change.shipped",
            "loop.closed",
        ],
    )
    followup, change = closed_loop(assignee=cs_agent, by=cs_agent)
    events = list(Delivery.objects.order_by("pk").values_list("event", flat=True))
    assert events == [
        "followup.created",
        "followup.status_changed",  # open -> contacted by the logged call
        "followup.status_changed",  # contacted -> resolved
        "change.shipped",
        "followup.status_changed",  # resolved -> loop closed
        "loop.closed",
    ]
    payloads = {d.event: d.payload["data"] for d in Delivery.objects.order_by("pk")}
    assert payloads["followup.created"]["followup_id"] == followup.pk
    assert payloads["change.shipped"]["followup_ids"] == [followup.pk]
    assert payloads["loop.closed"]["change_id"] == change.pk
    assert payloads["followup.status_changed"]["new_status"] == "closed"


def test_a_no_response_followup_emits_followup_created_without_a_score():
    Subscription.objects.create(url="https://hooks.example.com/nps", events=["followup.created"])
    invitation = InvitationFactory(contact=ContactFactory(is_key=True))
    followup = services.followup_for_silence(invitation_id=invitation.pk)
    data = Delivery.objects.get().payload["data"]
    assert (data["followup_id"], data["kind"], data["score"]) == (
        followup.pk,
        "no_response",
        None,
    )


def test_nothing_is_emitted_when_a_transition_is_refused(cs_agent):
    Subscription.objects.create(
        url="https://hooks.example.com/nps", events=["followup.status_changed"]
    )
    followup = FollowUpFactory(assignee=cs_agent)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.followup_transition(followup_id=followup.pk, to=Status.RESOLVED, by=cs_agent)
    assert not Delivery.objects.exists()


def test_a_followup_made_by_a_rule_shows_it_in_the_same_query_budget(
    client, cs_agent, django_assert_num_queries
):
    FollowUpRule.objects.create(name="All detractors", category="detractor", priority="urgent")
    followup = services.followup_for_response(response=ResponseFactory())
    FollowUp.objects.filter(pk=followup.pk).update(assignee=cs_agent)
    ChangeFactory()
    client.force_login(cs_agent)
    # The same twelve as the follow-up page without a rule (see test_views): the rule is joined.
    with django_assert_num_queries(12):
        page = client.get(reverse("followups:detail", args=[followup.pk]))
    assert "rule “All detractors”" in page.text


# --- Only admins configure rules, the calendar and escalation ---------------------------------


@pytest.mark.parametrize(
    "page",
    ["followuprule", "workingcalendar", "escalationrule"],
)
def test_only_admins_configure_rules_calendar_and_escalation(client, admin_user, cs_manager, page):
    url = reverse(f"admin:followups_{page}_changelist")
    cs_manager.is_staff = True  # even with access to the admin site
    cs_manager.save()
    client.force_login(cs_manager)
    assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert client.get(url).status_code == 200


def test_an_admin_adds_a_rule_and_the_next_response_follows_it(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:followups_followuprule_add"),
        {
            "name": "Passives who mention pricing",
            "position": 5,
            "is_active": "on",
            "category": "passive",
            "keywords": "price, margin",
            "priority": "high",
            "assignee_strategy": "round_robin",
            "first_contact_hours": 8,
        },
    )
    assert response.status_code == 302
    made = services.followup_for_response(
        response=ResponseFactory(score=8, comment="Margins are thin.")
    )
    assert made.rule.name == "Passives who mention pricing"
    assert made.priority == "high"


def test_the_admin_refuses_a_rule_with_a_bad_score_range(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:followups_followuprule_add"),
        {
            "name": "Backwards",
            "position": 1,
            "score_min": 8,
            "score_max": 3,
            "priority": "normal",
            "assignee_strategy": "owner",
        },
    )
    assert response.status_code == 200
    assert "The highest score must not be below the lowest." in response.text
    assert not FollowUpRule.objects.exists()
