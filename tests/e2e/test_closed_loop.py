"""The whole loop on real components: the configured database (PostgreSQL in CI's first pass,
SQLite in the second), the configured broker (Redis, then the filesystem transport), a Celery
worker process, an SMTP server, and HTTP against a live server.

tick -> wave -> invitations -> emails -> answer over HTTP -> follow-up assigned -> worked by
staff -> change logged and shipped -> partner emailed -> loop closed.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import requests
from django.utils import timezone

from followups.models import FollowUp, FollowUpEvent, PartnerNotice
from followups.services import (
    change_create,
    change_notify_partners,
    change_ship,
    followup_log_contact,
    followup_transition,
)
from nps_project import roles
from scoring.selectors import wave_summaries
from surveys.models import Invitation, Response, Wave
from surveys.tasks import run_survey_tick, settle_responses
from tests.factories import ContactFactory, PartnerFactory, ProgramFactory, UserFactory, root_cause

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LINK = re.compile(r"(https?://[^\s\"'<>]+/s/([A-Za-z0-9_-]{32})/)")


def wait_until(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def survey_link(message) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    match = LINK.search(text)
    assert match, text
    return match.group(1)


def answer(url: str, score: int, comment: str) -> requests.Response:
    """Open the link as a browser does, then submit the form (the link is its credential)."""
    session = requests.Session()
    page = session.get(url, timeout=10)
    assert page.status_code == 200
    return session.post(
        url,
        data={"score": str(score), "comment": comment},
        headers={"Referer": url},
        timeout=10,
    )


def test_the_loop_closes_end_to_end(celery_worker_process, smtp_sink, live_server):
    sink, _port = smtp_sink
    sam = UserFactory(username="sam", role=roles.CS_STAFF)
    partner = PartnerFactory(name="Northwind Cloud Services", account_owner=None)
    unhappy = ContactFactory(partner=partner, name="Anna Schmidt", email="anna@northwind.example")
    happy = ContactFactory(partner=partner, name="Ben Ode", email="ben@northwind.example")
    ContactFactory(partner=partner, name="Cleo Silent", email="cleo@northwind.example")
    yesterday = timezone.now() - dt.timedelta(days=1)
    program = ProgramFactory(
        name="Partner NPS",
        anchor_month=yesterday.month,
        anchor_day=min(yesterday.day, 28),
        send_hour=0,
        time_zone="UTC",
    )

    # Beat's tick, run by the worker: opens the wave, which creates and emails the invitations.
    run_survey_tick.delay()
    messages = sink.wait_for(3)
    wave = Wave.objects.get(program=program)
    assert wave.status == Wave.Status.OPEN
    assert Invitation.objects.filter(wave=wave, status=Invitation.Status.SENT).count() == 3
    by_recipient = {m["To"]: m for m in messages}
    assert set(by_recipient) == {
        "anna@northwind.example",
        "ben@northwind.example",
        "cleo@northwind.example",
    }
    invite = by_recipient["anna@northwind.example"]
    assert invite["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert invite.get_body(preferencelist=("html",)) is not None

    # Opening the link, as a mail scanner would, records nothing.
    anna_url = survey_link(invite)
    assert requests.get(anna_url + "?score=3", timeout=10).status_code == 200
    assert requests.head(anna_url, timeout=10).status_code == 200
    assert Response.objects.count() == 0

    # Anna is a detractor; Ben a promoter. Both answer over HTTP.
    posted = answer(anna_url, 3, "Support takes days to answer.")
    assert posted.status_code == 200 and "/thanks/" in posted.url
    assert answer(survey_link(by_recipient["ben@northwind.example"]), 10, "Great team").ok

    response = Response.objects.get(contact=unhappy)
    assert (response.score, response.category, response.tier) == (3, "detractor", "Gold")
    assert Response.objects.get(contact=happy).category == "promoter"
    # The settle tick (beat runs it every few seconds) gives the detractor its follow-up.
    settle_responses.delay()
    wait_until(
        lambda: not Response.objects.exclude(settle_state="done").exists(),
        what="both answers settled by the worker",
    )
    followup = FollowUp.objects.get()  # exactly one: only the detractor
    assert followup.response == response
    assert followup.assignee == sam  # no account owner: round robin among CS staff
    assert followup.status == FollowUp.Status.OPEN

    summary = wave_summaries(program=program)[0]
    assert (summary.counts.n, summary.counts.nps) == (2, 0.0)

    # Staff work the follow-up, log the change, ship it and tell the partner.
    followup = followup_log_contact(
        followup_id=followup.pk, by=sam, kind="call", note="Called Anna: tickets wait 3 days."
    )
    followup = followup_transition(
        followup_id=followup.pk,
        to=FollowUp.Status.RESOLVED,
        by=sam,
        root_cause=root_cause("Support responsiveness"),
        action_taken="Partner tickets now go to a dedicated queue.",
    )
    change = change_create(
        title="Partner support answers within four business hours",
        description="Every partner ticket now gets a first answer within four business hours.",
        category="support",
        by=sam,
        followup_ids=[followup.pk],
    )
    change_ship(change_id=change.pk, by=sam)
    assert change_notify_partners(change_id=change.pk, by=sam) == 1

    # The worker emails Anna; her follow-up records that the loop was closed, when and by whom.
    # Five emails by now: three invitations, Sam's "follow-up assigned to you", Anna's notice.
    delivered = sink.wait_for(5)
    closing = next(m for m in delivered if m["Subject"].startswith("You told us"))
    assert [m["To"] for m in delivered].count("sam@example.com") == 1
    assert "four business hours" in closing.get_body(preferencelist=("plain",)).get_content()
    followup = wait_until(
        lambda: FollowUp.objects.filter(pk=followup.pk, status=FollowUp.Status.LOOP_CLOSED).first(),
        what="the loop to close",
    )
    assert followup.loop_closed_by == sam and followup.loop_closed_at is not None
    assert PartnerNotice.objects.get().status == PartnerNotice.Status.SENT
    # The staff email's event lands whenever the worker sent it: checked apart from the rest.
    kinds = list(followup.events.values_list("kind", flat=True))
    assert kinds.count(FollowUpEvent.Kind.NOTIFIED) == 1
    assert [k for k in kinds if k != FollowUpEvent.Kind.NOTIFIED] == [
        FollowUpEvent.Kind.CREATED,
        FollowUpEvent.Kind.ASSIGNED,
        FollowUpEvent.Kind.CALL,
        FollowUpEvent.Kind.STATUS,
        FollowUpEvent.Kind.STATUS,
        FollowUpEvent.Kind.CHANGE_LINKED,
        FollowUpEvent.Kind.PARTNER_TOLD,
        FollowUpEvent.Kind.STATUS,
    ]

    # Running the tick again opens nothing new and sends nothing twice.
    run_survey_tick.delay()
    time.sleep(3)
    assert Wave.objects.filter(program=program).count() == 1
    assert len(sink.snapshot()) == 5
