"""The Django admin for follow-ups, root causes, changes and partner notices."""

import pytest
from django.urls import reverse
from django.utils import timezone

from followups.models import Change, FollowUpEvent, PartnerNotice, RootCause
from tests.factories import ChangeFactory, FollowUpFactory

pytestmark = pytest.mark.django_db


def admin_url(model, action="changelist", *args):
    return reverse(f"admin:followups_{model}_{action}", args=args)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_cs_staff_without_admin_access_are_kept_out(client, cs_agent):
    client.force_login(cs_agent)
    response = client.get(admin_url("followup"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("n", [3, 20])
def test_followup_list_query_budget_does_not_grow(admin_client, n, django_assert_num_queries):
    FollowUpFactory.create_batch(n)
    # session, user, the filter sidebar's tiers, assignees and root causes, count, count
    # (unfiltered), the page of follow-ups with partner/assignee/response joined, and the date
    # hierarchy's range and days.
    with django_assert_num_queries(10):
        response = admin_client.get(admin_url("followup"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == n


def test_the_followup_page_shows_the_timeline_read_only(admin_client, cs_agent):
    followup = FollowUpFactory(assignee=cs_agent)
    FollowUpEvent.objects.create(
        followup=followup, actor=cs_agent, kind="call", note="Talked about the backlog"
    )
    response = admin_client.get(admin_url("followup", "change", followup.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Talked about the backlog" in html
    inline = response.context["inline_admin_formsets"][0]
    assert inline.has_add_permission is False
    assert inline.has_change_permission is False
    assert inline.has_delete_permission is False


def test_saving_a_followup_in_the_admin_changes_only_priority_and_due_time(
    admin_client, cs_agent, other_agent
):
    followup = FollowUpFactory(assignee=cs_agent)
    FollowUpEvent.objects.create(followup=followup, actor=cs_agent, kind="note", note="Keep me")
    due = timezone.now().replace(microsecond=0) + timezone.timedelta(days=5)
    response = admin_client.post(
        admin_url("followup", "change", followup.pk),
        {
            "priority": "urgent",
            "due_at_0": due.strftime("%Y-%m-%d"),
            "due_at_1": due.strftime("%H:%M:%S"),
            "status": "resolved",
            "assignee": other_agent.pk,
            "events-TOTAL_FORMS": "1",
            "events-INITIAL_FORMS": "1",
            "events-MIN_NUM_FORMS": "0",
            "events-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302
    followup.refresh_from_db()
    assert followup.priority == "urgent"
    assert followup.due_at == due
    assert (followup.status, followup.assignee) == ("open", cs_agent)
    assert followup.events.count() == 1


def test_followups_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get(admin_url("followup", "add")).status_code == 403


def test_root_causes_are_editable(admin_client):
    cause = RootCause.objects.get(name="Other")
    response = admin_client.post(
        admin_url("rootcause", "change", cause.pk), {"name": "Something else", "is_active": ""}
    )
    assert response.status_code == 302
    cause.refresh_from_db()
    assert (cause.name, cause.is_active) == ("Something else", False)


def test_the_change_list_counts_linked_followups(admin_client):
    change = ChangeFactory(title="Weekly payouts")
    change.followups.add(*FollowUpFactory.create_batch(2))
    response = admin_client.get(admin_url("change"))
    assert response.status_code == 200
    assert response.context["cl"].result_list[0]._followup_count == 2


def test_the_change_page_links_its_followups(admin_client):
    followup = FollowUpFactory()
    change = ChangeFactory()
    change.followups.add(followup)
    response = admin_client.get(admin_url("change", "change", change.pk))
    assert admin_url("followup", "change", followup.pk) in response.content.decode()


def test_shipping_changes_from_the_admin_goes_through_the_service(admin_client):
    change = ChangeFactory()
    response = admin_client.post(
        admin_url("change"),
        {"action": "mark_shipped", "_selected_action": [change.pk]},
    )
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.status == Change.Status.SHIPPED
    assert change.shipped_at is not None


def test_partner_notices_are_read_only(admin_client):
    change = ChangeFactory(status=Change.Status.SHIPPED, shipped_at=timezone.now())
    notice = PartnerNotice.objects.create(change=change, followup=FollowUpFactory())
    assert admin_client.get(admin_url("partnernotice")).status_code == 200
    assert admin_client.get(admin_url("partnernotice", "add")).status_code == 403
    page = admin_client.get(admin_url("partnernotice", "change", notice.pk))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(admin_url("partnernotice", "delete", notice.pk)).status_code == 403
    assert PartnerNotice.objects.filter(pk=notice.pk).exists()
