"""The staff side of the loop in a real browser (Debian's Chromium through Playwright).

A customer-success staff member logs in, opens the overdue detractor from the queue, logs a
call, resolves it with a root cause, links it to a change, ships the change, previews and sends
the partner email, and sees the loop closed. The notice task runs here as a plain function.

With NPS_SCREENSHOTS_DIR set (e.g. docs/screenshots) it saves queue.png and followup.png.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from followups import services
from followups.models import Change, FollowUp, FollowUpEvent, PartnerNotice
from nps_project import roles
from surveys.models import Tier
from surveys.services import response_submit
from tests.factories import (
    PASSWORD,
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    UserFactory,
    WaveFactory,
)

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("NPS_SCREENSHOTS_DIR")

# (partner, tier, region, contact, score, comment, days ago)
ANSWERS = [
    (
        "Northwind Traders",
        "Gold",
        "EMEA",
        "Anna Berg",
        3,
        "Support tickets wait three days for a first answer; our customers notice.",
        8,
    ),
    (
        "Contoso Systems",
        "Platinum",
        "NA",
        "Carlos Diaz",
        5,
        "Deal registration approvals are slow and the portal times out.",
        3,
    ),
    (
        "Fabrikam Networks",
        "Silver",
        "APAC",
        "Fumiko Sato",
        6,
        "Margins on the new bundles are thinner than last year.",
        2,
    ),
    (
        "Tailspin Cloud",
        "Gold",
        "EMEA",
        "Tomas Novak",
        2,
        "Nobody told us about the price change before our customers did.",
        1,
    ),
    (
        "Wingtip Partners",
        "Registered",
        "LATAM",
        "Wendy Lima",
        4,
        "The enablement sessions are only in English.",
        0,
    ),
]


@pytest.fixture
def loop_data(transactional_db, live_server):
    """A realistic queue: five detractors of this quarter's wave, the oldest one overdue and
    escalated, a planned change, a manager and two staff members."""
    sam = UserFactory(
        username="sam", email="sam@example.com", role=roles.CS_STAFF, first_name="Sam"
    )
    UserFactory(username="olga", role=roles.CS_STAFF)
    UserFactory(username="maria", role=roles.CS_MANAGER)
    now = timezone.now()
    program = ProgramFactory(name="Partner Pulse", sender_name="Acme Partner Program")
    wave = WaveFactory(program=program, opens_at=now - dt.timedelta(days=9))
    followups = {}
    for name, tier, region, contact_name, score, comment, days_ago in ANSWERS:
        partner = PartnerFactory(
            name=name,
            tier=Tier.objects.get(name=tier),
            region=region,
            account_owner=sam if name == "Northwind Traders" else None,
        )
        first, last = contact_name.lower().split()
        contact = ContactFactory(
            partner=partner, name=contact_name, email=f"{first}.{last}@{last}.example"
        )
        invitation = InvitationFactory(wave=wave, contact=contact)
        response = response_submit(
            invitation_id=invitation.pk,
            score=score,
            comment=comment,
            now=now - dt.timedelta(days=days_ago, hours=2),
        )
        followups[name] = FollowUp.objects.get(response=response)
    services.followups_escalate_due()
    change = Change.objects.create(
        title="First answer to partner tickets within four business hours",
        description="Partner tickets now get a first answer from a named engineer within four "
        "business hours, and you can follow each ticket in the portal.",
        category=Change.Category.SUPPORT,
        owner=sam,
        created_by=sam,
    )
    return {"sam": sam, "followups": followups, "change": change, "url": live_server.url}


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's Chromium is missing: run scripts/ensure-browser.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        yield context.new_page()
        context.close()
        browser.close()


def shoot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def test_a_staff_member_closes_the_loop_on_an_overdue_detractor(loop_data, page):
    base = loop_data["url"]
    northwind = loop_data["followups"]["Northwind Traders"]
    change = loop_data["change"]

    # Log in; the queue opens on "Mine", the overdue detractor first.
    page.goto(base + reverse("login"))
    page.fill("input[name=username]", "sam")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    page.click("nav.tabs >> text=Overdue")
    overdue_row = page.locator("table.queue tbody tr").first
    assert "Northwind Traders" in overdue_row.inner_text()
    assert "overdue" in overdue_row.inner_text()
    page.click("nav.tabs >> text=Team")
    assert page.locator("table.queue tbody tr").count() == len(ANSWERS)
    shoot(page, "queue.png")

    # Open it: escalated by the sweep, on the timeline.
    page.click("table.queue >> text=Northwind Traders")
    page.wait_for_url(base + reverse("followups:detail", args=[northwind.pk]))
    assert page.locator(".badge.overdue").count() == 1
    assert "Escalated" in page.locator(".timeline").inner_text()

    # Log a call: first contact, status "contacted".
    page.check("input[name=kind][value=call]")
    page.fill("textarea[name=note]", "Called Anna: tickets wait three days; agreed a fix.")
    page.click("section[aria-labelledby=log-h] button[type=submit]")
    assert "Call logged." in page.locator(".messages").inner_text()
    assert "Contacted" in page.locator(".summary").inner_text()

    # Resolve with a root cause and the action taken.
    page.click("summary:has-text('Resolve')")
    page.select_option("#id_root_cause", label="Support responsiveness")
    page.fill("#id_action_taken", "Partner tickets routed to a named engineer.")
    page.click("button:has-text('Resolve')")
    assert "Status is now “Resolved”." in page.locator(".messages").inner_text()

    # Link it to the change.
    page.select_option("section[aria-labelledby=link-h] select", label=change.title)
    page.click("section[aria-labelledby=link-h] button:has-text('Link')")
    assert "Linked to the change" in page.locator(".messages").inner_text()

    # Ship the change, preview the partner email, send it.
    page.goto(base + reverse("followups:change-detail", args=[change.pk]))
    page.select_option("select[name=status]", "shipped")
    page.click("button:has-text('Update status')")
    assert "Status is now “Shipped”." in page.locator(".messages").inner_text()
    page.click("text=Tell the partners…")
    preview = page.locator("main").inner_text()
    assert "anna.berg@berg.example" in preview
    assert "four business hours" in preview
    page.click("button:has-text('Send 1 email')")
    assert "Queued 1 email." in page.locator(".messages").inner_text()

    # The worker's job, run here as a plain function.
    notice = PartnerNotice.objects.get(change=change)
    assert services.notice_send(notice_id=notice.pk) is True

    # Back on the follow-up: the loop is closed, and the timeline says how.
    page.goto(base + reverse("followups:detail", args=[northwind.pk]))
    assert "Loop closed" in page.locator(".summary").inner_text()
    assert re.search(r"partner told .* by sam", page.locator(".summary").inner_text())
    timeline = page.locator(".timeline").inner_text()
    for text in ("Call logged", "Linked to a change", "Partner told", "Resolved → Loop closed"):
        assert text in timeline
    shoot(page, "followup.png")

    northwind.refresh_from_db()
    assert northwind.status == FollowUp.Status.LOOP_CLOSED
    assert northwind.root_cause.name == "Support responsiveness"
    assert northwind.first_contacted_at is not None
    kinds = list(northwind.events.values_list("kind", flat=True))
    assert FollowUpEvent.Kind.PARTNER_TOLD in kinds
