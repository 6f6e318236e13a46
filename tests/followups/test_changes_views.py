"""The change log pages: list, create, detail with its actions, and telling the partners."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from followups.models import Change, FollowUp, FollowUpEvent, PartnerNotice
from tests.factories import ChangeFactory, FollowUpFactory

pytestmark = pytest.mark.django_db


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def url(name, change=None, query=""):
    path = reverse(f"followups:{name}", args=[change.pk] if change else [])
    return f"{path}?{query}" if query else path


def shipped_change(*followups, **kwargs):
    change = ChangeFactory(status=Change.Status.SHIPPED, shipped_at=timezone.now(), **kwargs)
    change.followups.add(*followups)
    return change


PAGES = ["change-list", "change-create", "change-detail", "change-notify"]


def page_url(name):
    if name in ("change-list", "change-create"):
        return url(name)
    return url(name, shipped_change(FollowUpFactory()))


# --- Who may see the pages ------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client, name):
    target = page_url(name)
    response = client.get(target)
    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={target}"


@pytest.mark.parametrize("name", PAGES)
def test_outsiders_get_403(client, outsider, name):
    target = page_url(name)
    client.force_login(outsider)
    assert client.get(target).status_code == 403


@pytest.mark.parametrize("name", PAGES)
def test_cs_agents_see_the_pages(client, cs_agent, name):
    target = page_url(name)
    client.force_login(cs_agent)
    assert client.get(target).status_code == 200


@pytest.mark.parametrize("name", ["change-status", "change-link", "change-notify"])
def test_outsiders_cannot_post_change_actions(client, outsider, name):
    change = shipped_change(FollowUpFactory())
    client.force_login(outsider)
    assert client.post(url(name, change), {"status": "planned"}).status_code == 403
    assert not PartnerNotice.objects.exists()


@pytest.mark.parametrize("name", ["change-detail", "change-notify"])
def test_an_unknown_change_is_404(client, cs_agent, name):
    client.force_login(cs_agent)
    assert client.get(reverse(f"followups:{name}", args=[999999])).status_code == 404


# --- List -----------------------------------------------------------------------------------


def test_the_list_shows_each_change_with_its_followup_count(client, cs_agent):
    change = shipped_change(FollowUpFactory(), FollowUpFactory(), title="Faster payouts")
    change.owner = cs_agent
    change.save()
    ChangeFactory(title="New portal login")
    client.force_login(cs_agent)
    response = client.get(url("change-list"))
    by_title = {c.title: c for c in response.context["page"].object_list}
    assert by_title["Faster payouts"].followup_count == 2
    assert by_title["New portal login"].followup_count == 0
    html = response.content.decode()
    assert "Shipped" in html
    assert timezone.now().strftime("%Y") in html
    assert "sam" in html


@pytest.mark.parametrize("n", [3, 20])
def test_change_list_query_budget_does_not_grow(client, cs_agent, n, django_assert_num_queries):
    for _ in range(n):
        ChangeFactory(owner=cs_agent).followups.add(FollowUpFactory())
    client.force_login(cs_agent)
    # session, user, groups, page count, the page of changes (owner joined, follow-ups counted)
    with django_assert_num_queries(5):
        response = client.get(url("change-list"))
    assert len(response.context["page"].object_list) == n


# --- Create ---------------------------------------------------------------------------------


def test_creating_a_change(client, cs_agent):
    client.force_login(cs_agent)
    response = client.post(
        url("change-create"),
        {
            "title": "Support SLA: 4 hours",
            "description": "We hired two engineers.",
            "category": "support",
        },
    )
    change = Change.objects.get()
    assert response.status_code == 302
    assert response.url == url("change-detail", change)
    assert (change.title, change.category, change.owner, change.created_by) == (
        "Support SLA: 4 hours",
        "support",
        cs_agent,
        cs_agent,
    )
    assert change.status == Change.Status.PLANNED


def test_a_followup_in_the_query_is_preselected_and_linked(client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    client.force_login(cs_agent)
    page = client.get(url("change-create", query=f"followup={followup.pk}"))
    assert page.context["followup"] == followup
    assert f'value="{followup.pk}"'.encode() in page.content
    client.post(
        url("change-create"),
        {
            "title": "Portal SSO",
            "description": "Log in with your company account.",
            "category": "portal",
            "followup": followup.pk,
        },
    )
    change = Change.objects.get()
    assert list(change.followups.all()) == [followup]
    assert FollowUpEvent.objects.filter(followup=followup, kind="linked").count() == 1


def test_an_unknown_preselected_followup_is_404(client, cs_agent):
    client.force_login(cs_agent)
    assert client.get(url("change-create", query="followup=999999")).status_code == 404


def test_a_change_without_title_or_description_is_refused(client, cs_agent):
    client.force_login(cs_agent)
    response = client.post(
        url("change-create"), {"title": " ", "description": "", "category": "nope"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) == {"title", "description", "category"}
    assert not Change.objects.exists()


# --- Detail and its actions -----------------------------------------------------------------


def test_the_detail_shows_linked_followups_and_their_told_state(client, cs_agent):
    told = FollowUpFactory(response__score=2)
    waiting = FollowUpFactory(response__score=5)
    change = shipped_change(told, waiting, description="Payouts now weekly.")
    PartnerNotice.objects.create(
        change=change, followup=told, status=PartnerNotice.Status.SENT, sent_at=timezone.now()
    )
    PartnerNotice.objects.create(
        change=change,
        followup=waiting,
        status=PartnerNotice.Status.FAILED,
        last_error="The contact opted out or bounced.",
    )
    client.force_login(cs_agent)
    response = client.get(url("change-detail", change))
    html = response.content.decode()
    assert "Payouts now weekly." in html
    assert told.partner.name in html and waiting.partner.name in html
    assert '<span class="badge notice-sent">Sent</span>' in html
    assert '<span class="badge notice-failed">Failed</span>' in html
    assert response.context["notice_counts"] == {"queued": 0, "sending": 0, "sent": 1, "failed": 1}
    assert "Tell the partners" in html


def test_tell_the_partners_is_offered_only_once_shipped(client, cs_agent):
    change = ChangeFactory()
    change.followups.add(FollowUpFactory())
    client.force_login(cs_agent)
    response = client.get(url("change-detail", change))
    assert url("change-notify", change).encode() not in response.content


@pytest.mark.parametrize("n", [3, 15])
def test_change_detail_query_budget_does_not_grow(client, cs_agent, n, django_assert_num_queries):
    change = shipped_change(*FollowUpFactory.create_batch(n))
    for followup in change.followups.all():
        PartnerNotice.objects.create(change=change, followup=followup)
    FollowUpFactory.create_batch(n)  # open, unlinked: the link form's options
    client.force_login(cs_agent)
    # session, user, groups, the change (owner joined), linked follow-ups (joined), their
    # notices (one prefetch), notice counts (one aggregate), the link form's open follow-ups.
    with django_assert_num_queries(8):
        response = client.get(url("change-detail", change))
    assert len(response.context["linked"]) == n


def test_shipping_a_change_stamps_the_date(client, cs_agent):
    change = ChangeFactory()
    client.force_login(cs_agent)
    response = client.post(url("change-status", change), {"status": "shipped"})
    assert flash(response) == ["Status is now “Shipped”."]
    change.refresh_from_db()
    assert change.status == Change.Status.SHIPPED
    assert change.shipped_at is not None


def test_an_unknown_change_status_is_refused(client, cs_agent):
    change = ChangeFactory()
    client.force_login(cs_agent)
    response = client.post(url("change-status", change), {"status": "done"})
    assert flash(response)[0].startswith("Status: Select a valid choice.")
    change.refresh_from_db()
    assert change.status == Change.Status.PLANNED


def test_linking_more_followups_from_the_list_and_by_number(client, cs_agent):
    change = ChangeFactory()
    picked, typed, other = FollowUpFactory.create_batch(3)
    client.force_login(cs_agent)
    page = client.get(url("change-detail", change))
    offered = {int(v) for v, _label in page.context["link_form"].fields["followups"].choices}
    assert offered == {picked.pk, typed.pk, other.pk}
    response = client.post(
        url("change-link", change), {"followups": [picked.pk], "ids": f"#{typed.pk}, "}
    )
    assert flash(response) == ["Linked 2 follow-ups."]
    assert set(change.followups.all()) == {picked, typed}


def test_linking_an_unknown_followup_number_links_nothing(client, cs_agent):
    change = ChangeFactory()
    known = FollowUpFactory()
    client.force_login(cs_agent)
    response = client.post(url("change-link", change), {"ids": f"{known.pk} 999999"})
    assert flash(response) == ["Unknown follow-up: 999999"]
    assert not change.followups.exists()


def test_linking_garbage_is_refused(client, cs_agent):
    change = ChangeFactory()
    client.force_login(cs_agent)
    response = client.post(url("change-link", change), {"ids": "12, abc"})
    assert flash(response) == ["Or follow-up numbers: Not a follow-up number: abc"]
    assert not change.followups.exists()


def test_linking_nothing_is_refused(client, cs_agent):
    change = ChangeFactory()
    client.force_login(cs_agent)
    response = client.post(url("change-link", change), {"ids": ""})
    assert flash(response) == ["Choose at least one follow-up."]


def test_closed_followups_are_not_offered_for_linking(client, cs_agent):
    change = ChangeFactory()
    FollowUpFactory(status=FollowUp.Status.CLOSED_NO_ACTION)
    client.force_login(cs_agent)
    page = client.get(url("change-detail", change))
    assert page.context["link_form"].fields["followups"].choices == []


# --- Telling the partners -------------------------------------------------------------------


def test_the_preview_shows_each_recipients_email(client, cs_agent):
    first = FollowUpFactory(response__invitation__contact__email="jo@alpha.example.com")
    second = FollowUpFactory(response__invitation__contact__email="kim@beta.example.com")
    change = shipped_change(
        first, second, title="Weekly payouts", description="Payouts now weekly."
    )
    client.force_login(cs_agent)
    response = client.get(url("change-notify", change))
    previews = response.context["previews"]
    assert {p["to"] for p in previews} == {"jo@alpha.example.com", "kim@beta.example.com"}
    html = response.content.decode()
    for preview in previews:
        assert preview["subject"]
        assert "Payouts now weekly." in preview["body"]
        assert preview["subject"] in html
    assert "jo@alpha.example.com" in html
    assert "Send 2 emails" in html
    # Previewing records nothing.
    assert not PartnerNotice.objects.exists()


def test_the_preview_flags_contacts_who_opted_out(client, cs_agent):
    followup = FollowUpFactory(response__invitation__contact__opted_out_at=timezone.now())
    change = shipped_change(followup)
    client.force_login(cs_agent)
    response = client.get(url("change-notify", change))
    assert response.context["previews"][0]["blocked"] is True
    assert response.context["sendable"] == 0


def test_the_preview_of_an_unshipped_change_sends_you_back(client, cs_agent):
    change = ChangeFactory()
    change.followups.add(FollowUpFactory())
    client.force_login(cs_agent)
    response = client.get(url("change-notify", change))
    assert response.status_code == 302
    assert flash(response) == ["Ship the change before telling partners about it."]


def test_confirming_queues_one_notice_and_one_task_per_followup(
    client, cs_agent, django_capture_on_commit_callbacks
):
    followups = FollowUpFactory.create_batch(3)
    change = shipped_change(*followups)
    client.force_login(cs_agent)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url("change-notify", change))
    assert response.status_code == 302
    assert response.url == url("change-detail", change)
    assert flash(response) == ["Queued 3 emails."]
    notices = PartnerNotice.objects.filter(change=change)
    assert {n.followup_id for n in notices} == {f.pk for f in followups}
    assert {n.status for n in notices} == {PartnerNotice.Status.QUEUED}
    assert {n.requested_by for n in notices} == {cs_agent}
    assert len(callbacks) == 3


def test_confirming_emails_only_the_contacts_the_preview_said_would_be_emailed(
    client, cs_agent, django_capture_on_commit_callbacks
):
    reachable = FollowUpFactory()
    opted_out = FollowUpFactory(response__invitation__contact__opted_out_at=timezone.now())
    change = shipped_change(reachable, opted_out)
    client.force_login(cs_agent)
    assert "Send 1 email" in client.get(url("change-notify", change)).content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url("change-notify", change))
    assert flash(response) == [
        "Queued 1 email.",
        "1 contact opted out of email or bounced and was not emailed: tell them another way, "
        "then close the loop on the follow-up.",
    ]
    assert [n.followup_id for n in PartnerNotice.objects.all()] == [reachable.pk]
    assert len(callbacks) == 1


def test_confirming_twice_queues_nothing_new(client, cs_agent, django_capture_on_commit_callbacks):
    change = shipped_change(FollowUpFactory())
    PartnerNotice.objects.create(
        change=change, followup=change.followups.get(), status=PartnerNotice.Status.SENT
    )
    client.force_login(cs_agent)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url("change-notify", change))
    assert flash(response) == ["Queued 0 emails."]
    assert PartnerNotice.objects.count() == 1
    assert callbacks == []


def test_telling_partners_of_an_unshipped_change_is_refused(
    client, cs_agent, django_capture_on_commit_callbacks
):
    change = ChangeFactory()
    change.followups.add(FollowUpFactory())
    client.force_login(cs_agent)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url("change-notify", change))
    assert flash(response) == ["Ship the change before telling partners about it."]
    assert not PartnerNotice.objects.exists()
    assert callbacks == []


def test_the_notices_status_shows_on_the_change_page_after_queueing(
    client, cs_agent, django_capture_on_commit_callbacks
):
    change = shipped_change(FollowUpFactory())
    client.force_login(cs_agent)
    with django_capture_on_commit_callbacks(execute=False):
        client.post(url("change-notify", change))
    response = client.get(url("change-detail", change))
    assert '<span class="badge notice-queued">Queued</span>' in response.content.decode()
