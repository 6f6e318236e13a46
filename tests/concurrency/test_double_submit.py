"""Two (or more) submissions of the same invitation at the same instant, over real HTTP against
the live server, from threads: one response, no 5xx. Then the answer's settling run from as many
threads at once (a task delivered several times): one follow-up. Runs on the configured database
(SQLite in WAL mode with IMMEDIATE transactions, or PostgreSQL: one INSERT … ON CONFLICT, and a
row lock for the settling)."""

import threading

import pytest
import requests
from django.urls import reverse

from followups.models import FollowUp
from surveys.models import Response
from surveys.services import response_settle, token_issue
from tests.factories import InvitationFactory

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 6
INVITATIONS = 3


def _ready_session(url: str) -> tuple[requests.Session, str]:
    """A partner's browser after opening the form (which sets no cookie and needs no token)."""
    session = requests.Session()
    page = session.get(url, timeout=10)
    assert page.status_code == 200
    assert 'name="score"' in page.text
    return session, ""


def test_simultaneous_submissions_of_one_invitation_give_one_response_and_one_followup(
    live_server, settings
):
    settings.NPS_RATE_LIMIT_ENABLE = False
    invitations = [InvitationFactory() for _ in range(INVITATIONS)]
    for invitation in invitations:
        token = token_issue(invitation=invitation)
        url = live_server.url + reverse("surveys:respond", args=[token])
        browsers = [_ready_session(url) for _ in range(THREADS)]
        start = threading.Barrier(THREADS)
        statuses = []

        def submit(session, csrf, score, url=url, start=start, statuses=statuses):
            start.wait()
            answer = session.post(
                url,
                data={"csrfmiddlewaretoken": csrf, "score": str(score), "comment": "Too slow"},
                headers={"Referer": url},
                allow_redirects=False,
                timeout=30,
            )
            statuses.append(answer.status_code)

        threads = [
            threading.Thread(target=submit, args=(session, csrf, n % 4))
            for n, (session, csrf) in enumerate(browsers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        # Every submission was taken (the first creates, the others revise), none failed.
        assert statuses == [302] * THREADS
        response = Response.objects.get(invitation=invitation)

        settles = [
            threading.Thread(target=_settle, args=(response.pk, start)) for _ in range(THREADS)
        ]
        for thread in settles:
            thread.start()
        for thread in settles:
            thread.join(timeout=60)
        followup = FollowUp.objects.get(invitation=invitation)
        assert followup.response_id == response.pk
        response.refresh_from_db()
        assert response.settle_state == Response.SettleState.DONE
    assert Response.objects.count() == FollowUp.objects.count() == INVITATIONS


def _settle(response_id: int, start: threading.Barrier) -> None:
    from django.db import connection

    try:
        start.wait()
        response_settle(response_id=response_id)
    finally:
        connection.close()
