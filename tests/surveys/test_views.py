"""The partner's pages: the survey form, the thank-you page and the unsubscribe page.

The token in the link is the partner's only credential; opening any of these pages (GET, HEAD)
must change nothing, because mail security scanners open every link in an email.
"""

import datetime as dt
import re

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from followups.models import FollowUp, FollowUpEvent
from surveys.models import Contact, Invitation, InvitationToken, Response, Wave
from surveys.services import response_submit, responses_settle_pending, token_issue
from tests.factories import (
    ContactFactory,
    FollowUpFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    ResponseFactory,
    UserFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

UNKNOWN_TOKEN = "A" * 32  # the shape of a real token, but never issued


def respond_url(token: str) -> str:
    return reverse("surveys:respond", args=[token])


def thanks_url(token: str) -> str:
    return reverse("surveys:thanks", args=[token])


def unsubscribe_url(token: str) -> str:
    return reverse("surveys:unsubscribe", args=[token])


def checked_scores(html: str) -> list[str]:
    return re.findall(r'<input type="radio" name="score" value="(\d+)"[^>]*\bchecked\b', html)


@pytest.fixture
def invitation():
    program = ProgramFactory(
        sender_name="Northwind Partner Program",
        question="How likely are you to recommend Northwind to a colleague?",
        why_prompt="What is the main reason for your score?",
    )
    partner = PartnerFactory(name="Contoso Systems")
    contact = ContactFactory(partner=partner, name="Anna Schmidt", email="anna@contoso.example")
    return InvitationFactory(wave=WaveFactory(program=program), contact=contact)


@pytest.fixture
def token(invitation):
    return token_issue(invitation=invitation)


def state_snapshot(invitation):
    """Everything a page view could be tempted to write."""
    invitation = Invitation.objects.get(pk=invitation.pk)
    contact = Contact.objects.get(pk=invitation.contact_id)
    return {
        "responses": Response.objects.count(),
        "followups": FollowUp.objects.count(),
        "events": FollowUpEvent.objects.count(),
        "tokens": InvitationToken.objects.count(),
        "invitation": (
            invitation.status,
            invitation.updated_at,
            invitation.first_opened_at,
            invitation.reminders_sent,
        ),
        "contact": (contact.updated_at, contact.opted_out_at),
        "wave": Wave.objects.values_list("status", "updated_at").get(pk=invitation.wave_id),
    }


# --- Opening the link records nothing ---------------------------------------------------------


def test_the_form_shows_the_question_eleven_scores_and_the_why_prompt(client, token):
    page = client.get(respond_url(token))

    assert page.status_code == 200
    html = page.content.decode()
    assert "How likely are you to recommend Northwind to a colleague?" in html
    assert "<legend><h1>How likely are you to recommend Northwind" in html
    assert re.findall(r'<input type="radio" name="score" value="(\d+)"', html) == [
        str(n) for n in range(11)
    ]
    assert "0 = Not at all likely" in html and "10 = Extremely likely" in html
    assert "What is the main reason for your score?" in html
    assert "csrfmiddlewaretoken" not in html  # the link is the credential: no CSRF token
    assert "Hello Anna Schmidt," in html
    assert checked_scores(html) == []


def test_the_form_is_a_partner_page_without_the_staff_bar(client, token):
    html = client.get(respond_url(token)).content.decode()

    assert '<body class="partner">' in html
    assert 'class="topbar"' not in html
    assert "Northwind Partner Program" in html  # the program's sender name is the brand
    assert reverse("followups:change-list") not in html


def test_partner_pages_are_not_cached_indexed_or_referred(client, token):
    for url in (respond_url(token), unsubscribe_url(token)):
        page = client.get(url)
        assert page["Cache-Control"] == "no-store"
        assert page["X-Robots-Tag"] == "noindex, nofollow"
        assert '<meta name="robots" content="noindex, nofollow">' in page.content.decode()
    assert client.get(respond_url(token))["Referrer-Policy"] == "no-referrer"
    assert client.get(unsubscribe_url(token))["Referrer-Policy"] == "no-referrer"


def test_the_form_loads_nothing_from_other_sites_and_has_no_inline_script_or_style(client, token):
    html = client.get(respond_url(token)).content.decode()

    # One deferred enhancement script from this site; no inline script, handler or style, so
    # the page works under a CSP without 'unsafe-inline' (and without JavaScript at all).
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/js/survey.js" defer>']
    assert "</script>" in html and "<script>" not in html
    assert not re.search(r"\son\w+=", html)
    assert "<style" not in html and " style=" not in html
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', html):
        assert url.startswith(("/", "#", "?")), url


def test_get_head_and_score_links_change_nothing(client, invitation, token):
    before = state_snapshot(invitation)

    urls = [respond_url(token), thanks_url(token), unsubscribe_url(token)]
    urls += [f"{respond_url(token)}?score={n}" for n in range(11)]
    for url in urls:
        assert client.get(url).status_code in (200, 302)
        assert client.head(url).status_code in (200, 302)

    assert state_snapshot(invitation) == before


def test_opening_the_form_of_an_answered_survey_changes_nothing(client, invitation, token):
    response_submit(invitation_id=invitation.pk, score=3, comment="Slow support")
    before = state_snapshot(invitation)

    assert client.get(respond_url(token) + "?score=9").status_code == 200
    assert client.head(thanks_url(token)).status_code == 200

    assert state_snapshot(invitation) == before


def test_form_get_takes_one_query(client, invitation, token, django_assert_num_queries):
    response_submit(invitation_id=invitation.pk, score=3, comment="Slow support")
    # One: the invitation by its token hash, joined with wave, program, contact, partner and
    # response. No session is read (the partner has none) and nothing is written.
    with django_assert_num_queries(1):
        assert client.get(respond_url(token)).status_code == 200


@pytest.mark.parametrize("score", range(11))
def test_a_score_link_preselects_that_score(client, token, score):
    page = client.get(f"{respond_url(token)}?score={score}")

    assert page.status_code == 200
    assert checked_scores(page.content.decode()) == [str(score)]


@pytest.mark.parametrize("value", ["11", "-1", "abc", "07", "7.0", " 7", "", "٣"])
def test_an_invalid_score_in_the_link_is_ignored(client, token, value):
    page = client.get(respond_url(token), {"score": value})

    assert page.status_code == 200
    assert checked_scores(page.content.decode()) == []


# --- Answering ----------------------------------------------------------------------------------


def test_posting_an_answer_records_it_and_redirects_to_thanks(client, invitation, token):
    owner = UserFactory(username="owen")
    invitation.contact.partner.account_owner = owner
    invitation.contact.partner.save()

    page = client.post(respond_url(token), {"score": "8", "comment": "  Good, pricier now. "})

    assert page.status_code == 302
    assert page["Location"] == thanks_url(token)
    response = Response.objects.get()
    assert (response.invitation_id, response.score, response.category) == (
        invitation.pk,
        8,
        "passive",
    )
    assert response.comment == "Good, pricier now."
    assert (response.tier, response.partner_type, response.region) == ("Gold", "Reseller", "EMEA")
    assert response.account_owner == owner
    assert FollowUp.objects.count() == 0


def test_the_thank_you_page_follows_the_answer(client, token):
    page = client.post(respond_url(token), {"score": "10", "comment": ""}, follow=True)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Thank you, Anna Schmidt!" in html
    assert "We have your answer: 10 out of 10." in html
    assert "in touch" not in html
    assert f'href="{respond_url(token)}"' in html  # change the answer while the wave is open


def test_a_detractor_is_told_someone_will_be_in_touch(client, token):
    page = client.post(respond_url(token), {"score": "2", "comment": "Slow"}, follow=True)

    assert "Someone from our team will be in touch within 2 business days" in (
        page.content.decode()
    )


def test_revising_the_answer_updates_the_same_response(client, invitation, token):
    client.post(respond_url(token), {"score": "9", "comment": "Great"})
    first = Response.objects.get()

    client.post(respond_url(token), {"score": "7", "comment": "Good, but slower lately"})

    response = Response.objects.get()
    assert response.pk == first.pk
    assert (response.score, response.category, response.comment) == (
        7,
        "passive",
        "Good, but slower lately",
    )
    assert response.submitted_at == first.submitted_at


def test_a_detractor_answer_creates_exactly_one_followup(client, token):
    client.post(respond_url(token), {"score": "3", "comment": "Support takes days"})
    assert responses_settle_pending() == 1
    client.post(respond_url(token), {"score": "1", "comment": "Worse than I said"})
    assert responses_settle_pending() == 1

    followup = FollowUp.objects.get()
    assert followup.response == Response.objects.get()
    assert followup.response.score == 1
    assert followup.response.settle_state == Response.SettleState.DONE
    edited = followup.events.get(kind=FollowUpEvent.Kind.RESPONSE_EDITED)
    assert (edited.old_value, edited.new_value, edited.note) == ("3", "1", "Worse than I said")


def test_the_answer_is_stored_in_one_statement_and_nothing_else_is_done_inline(
    client, token, django_assert_num_queries, django_capture_on_commit_callbacks
):
    """The partner's write path: one INSERT … SELECT … ON CONFLICT that finds the link and
    writes, in autocommit (one transaction), no broker call; the settle tick does the rest."""
    with django_capture_on_commit_callbacks(execute=False) as queued:
        with django_assert_num_queries(1):
            answer = client.post(respond_url(token), {"score": "2", "comment": "Slow"})
    assert answer.status_code == 302
    assert queued == []
    response = Response.objects.get()
    assert (response.score, response.category, response.comment) == (2, "detractor", "Slow")
    assert response.settle_state == Response.SettleState.NEW
    assert not FollowUp.objects.exists()

    with django_assert_num_queries(1):
        client.post(respond_url(token), {"score": "4", "comment": "Slow, but better"})
    response.refresh_from_db()
    assert (response.score, response.settle_state, response.previous_score) == (4, "new", None)


def test_an_answer_the_one_statement_cannot_take_is_looked_up_then_written(
    client, token, invitation, django_assert_num_queries
):
    """A contact language that needs normalising (``de-AT``): the one statement writes
    nothing, and the full path (lookup, then upsert) records it with the language it keeps."""
    invitation.contact.language = "de-AT"
    invitation.contact.save()
    with django_assert_num_queries(3):  # the one statement (no row), the lookup, the upsert
        answer = client.post(respond_url(token), {"score": "9", "comment": "Gut"})
    assert answer.status_code == 302
    response = Response.objects.get()
    assert (response.score, response.language, response.comment) == (9, "de", "Gut")


def test_an_answered_survey_shows_the_answer_and_until_when_it_can_change(
    client, invitation, token
):
    wave = invitation.wave
    Wave.objects.filter(pk=wave.pk).update(
        opens_at=dt.datetime(2027, 1, 15, 9, tzinfo=dt.UTC),
        closes_at=dt.datetime(2027, 1, 29, 9, tzinfo=dt.UTC),
    )
    response_submit(
        invitation_id=invitation.pk,
        score=6,
        comment="Portal is slow",
        now=dt.datetime(2027, 1, 16, 12, tzinfo=dt.UTC),
    )

    with time_machine.travel(dt.datetime(2027, 1, 20, 12, tzinfo=dt.UTC)):
        html = client.get(respond_url(token)).content.decode()

    assert "You answered 6 on Jan. 16, 2027; you can change your answer until " in html
    assert "Jan. 29, 2027, 9 a.m. (UTC)" in html
    assert checked_scores(html) == ["6"]
    assert "Portal is slow</textarea>" in html
    assert "Update my answer" in html


BAD_ANSWERS = [
    pytest.param({"comment": "No score"}, "Choose a score from 0 to 10.", id="missing"),
    pytest.param({"score": "11"}, "Choose a score from 0 to 10.", id="eleven"),
    pytest.param({"score": "-1"}, "Choose a score from 0 to 10.", id="negative"),
    pytest.param({"score": "abc"}, "Choose a score from 0 to 10.", id="letters"),
    pytest.param({"score": "7.5"}, "Choose a score from 0 to 10.", id="fraction"),
    pytest.param(
        {"score": "5", "comment": "x" * 5001},
        "Please keep your answer under 5,000 characters",
        id="long-comment",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_ANSWERS)
def test_a_bad_answer_shows_the_form_again_and_stores_nothing(
    client, invitation, token, data, message
):
    before = state_snapshot(invitation)

    page = client.post(respond_url(token), data)

    assert page.status_code == 400
    html = page.content.decode()
    assert message in html
    assert 'role="alert"' in html
    assert "<form" in html
    assert state_snapshot(invitation) == before


def test_a_bad_answer_keeps_what_the_partner_wrote(client, token):
    html = client.post(respond_url(token), {"comment": "Keep <this> text"}).content.decode()

    assert "Keep &lt;this&gt; text</textarea>" in html


def test_a_bad_revision_keeps_the_first_answer(client, invitation, token):
    client.post(respond_url(token), {"score": "9", "comment": "Great"})

    assert client.post(respond_url(token), {"score": "12"}).status_code == 400

    assert Response.objects.values_list("score", "comment").get() == (9, "Great")


def test_the_form_takes_an_answer_from_a_browser_with_no_cookies_and_no_csrf_token(
    invitation, token
):
    """The link's secret is the only credential (see surveys/views.py): a phone that blocks
    cookies can answer, and nothing is set on it. Staff pages keep Django's CSRF check."""
    browser = Client(enforce_csrf_checks=True)
    opened = browser.get(respond_url(token))
    assert not opened.cookies
    posted = browser.post(respond_url(token), {"score": "9"}, HTTP_ORIGIN="null")

    assert posted.status_code == 302
    assert not posted.cookies
    assert Response.objects.get().score == 9
    # A wrong link is still a wrong link, with or without a token.
    assert browser.post(respond_url("A" * 32), {"score": "9"}).status_code == 404


# --- Links that do not take answers -----------------------------------------------------------


@pytest.mark.parametrize(
    "bad_token",
    [UNKNOWN_TOKEN, "short", "A" * 31 + "!", "A" * 33, "é" * 32, "%00" + "A" * 29],
)
def test_an_unknown_link_gets_a_human_404(client, db, bad_token):
    for url in (respond_url(bad_token), thanks_url(bad_token), unsubscribe_url(bad_token)):
        page = client.get(url)
        assert page.status_code == 404
        assert "This survey link is not valid" in page.content.decode()
    assert client.post(respond_url(bad_token), {"score": "9"}).status_code == 404
    assert client.post(unsubscribe_url(bad_token)).status_code == 404
    assert Response.objects.count() == 0


def close(wave):
    Wave.objects.filter(pk=wave.pk).update(
        status=Wave.Status.CLOSED, closes_at=timezone.now() - dt.timedelta(minutes=1)
    )


def test_a_closed_wave_gets_a_human_410(client, invitation, token):
    close(invitation.wave)

    page = client.get(respond_url(token))

    assert page.status_code == 410
    html = page.content.decode()
    assert "This survey has closed" in html
    assert "<form" not in html


def test_a_closed_wave_shows_the_answer_given(client, invitation, token):
    response_submit(invitation_id=invitation.pk, score=4, comment="Too <slow>")
    close(invitation.wave)

    page = client.get(respond_url(token))

    assert page.status_code == 410
    html = page.content.decode()
    assert "You answered 4 out of 10 on" in html
    assert "Too &lt;slow&gt;" in html


def test_a_wave_past_its_closing_time_is_closed_before_the_sweep_runs(client, invitation, token):
    Wave.objects.filter(pk=invitation.wave_id).update(
        closes_at=timezone.now() - dt.timedelta(seconds=1)
    )  # still "open": the closing sweep has not run yet

    assert client.get(respond_url(token)).status_code == 410
    assert client.post(respond_url(token), {"score": "9"}).status_code == 410
    assert Response.objects.count() == 0


def test_posting_to_a_closed_wave_stores_nothing(client, invitation, token):
    response_submit(invitation_id=invitation.pk, score=4, comment="Slow")
    close(invitation.wave)
    before = state_snapshot(invitation)

    page = client.post(respond_url(token), {"score": "10", "comment": "Changed my mind"})

    assert page.status_code == 410
    assert state_snapshot(invitation) == before
    assert Response.objects.values_list("score", flat=True).get() == 4


def test_a_wave_not_open_yet_says_when_it_opens(client, invitation, token):
    Wave.objects.filter(pk=invitation.wave_id).update(
        opens_at=timezone.now() + dt.timedelta(days=1),
        closes_at=timezone.now() + dt.timedelta(days=15),
    )

    page = client.get(respond_url(token))

    assert page.status_code == 403
    assert "This survey is not open yet" in page.content.decode()
    assert client.post(respond_url(token), {"score": "9"}).status_code == 403
    assert Response.objects.count() == 0


def test_the_thank_you_page_without_an_answer_leads_to_the_form(client, token):
    page = client.get(thanks_url(token))

    assert page.status_code == 302
    assert page["Location"] == respond_url(token)


def test_the_thank_you_page_of_a_closed_wave_offers_no_change(client, invitation, token):
    response_submit(invitation_id=invitation.pk, score=9)
    close(invitation.wave)

    html = client.get(thanks_url(token)).content.decode()

    assert "We have your answer: 9 out of 10." in html
    assert "Change my answer" not in html


def test_a_broken_program_time_zone_does_not_break_the_page(client, invitation, token):
    invitation.wave.program.__class__.objects.filter(pk=invitation.wave.program_id).update(
        time_zone="Mars/Olympus"
    )

    assert client.get(respond_url(token)).status_code == 200


# --- Unsubscribe ----------------------------------------------------------------------------------


def test_unsubscribe_get_asks_and_changes_nothing(client, invitation, token):
    before = state_snapshot(invitation)

    page = client.get(unsubscribe_url(token))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Unsubscribe from these surveys?" in html
    assert f'<form method="post" action="{unsubscribe_url(token)}">' in html
    assert state_snapshot(invitation) == before


def test_one_click_unsubscribe_works_without_session_or_csrf(invitation, token):
    queued = InvitationFactory(
        contact=invitation.contact, wave=WaveFactory(), status=Invitation.Status.QUEUED
    )
    mail_client = Client(enforce_csrf_checks=True)  # no cookies, no CSRF token: RFC 8058

    page = mail_client.post(
        unsubscribe_url(token),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert page.status_code == 200
    assert "You're unsubscribed" in page.content.decode()
    assert Contact.objects.get(pk=invitation.contact_id).opted_out_at is not None
    assert Invitation.objects.get(pk=queued.pk).status == Invitation.Status.CANCELLED


def test_unsubscribing_twice_keeps_the_first_date(client, invitation, token):
    client.post(unsubscribe_url(token))
    first = Contact.objects.get(pk=invitation.contact_id).opted_out_at

    page = client.post(unsubscribe_url(token))

    assert page.status_code == 200
    assert Contact.objects.get(pk=invitation.contact_id).opted_out_at == first
    assert "You're unsubscribed" in client.get(unsubscribe_url(token)).content.decode()


def test_unsubscribe_still_works_after_the_wave_closed(client, invitation, token):
    close(invitation.wave)

    assert client.post(unsubscribe_url(token)).status_code == 200
    assert Contact.objects.get(pk=invitation.contact_id).opted_out_at is not None


def test_partner_pages_refuse_other_methods(client, token):
    assert client.put(respond_url(token)).status_code == 405
    assert client.post(thanks_url(token)).status_code == 405


# --- The "why?" prompt, extra questions and "please contact me" --------------------------------


@pytest.mark.parametrize(
    ("score", "prompt"),
    [
        (None, "What is the main reason for your score?"),
        ("0", "What disappointed you most, and what should we do better?"),
        ("6", "What disappointed you most, and what should we do better?"),
        ("7", "What would make it a 10 for you?"),
        ("8", "What would make it a 10 for you?"),
        ("9", "What do you value most in working with us?"),
        ("10", "What do you value most in working with us?"),
    ],
)
def test_the_why_prompt_follows_the_score_band_without_javascript(client, token, score, prompt):
    html = client.get(respond_url(token), {"score": score} if score else {}).content.decode()

    assert f'<span class="why-prompt" aria-live="polite">{prompt}</span>' in html
    # The enhancement script reads the other bands' prompts from the page.
    assert 'data-prompt-passive="What would make it a 10 for you?"' in html


def test_a_programs_own_why_prompt_is_shown_before_a_score_is_chosen(client, invitation, token):
    program = invitation.wave.program
    program.why_prompt = "Why that score for Northwind?"
    program.save()

    html = client.get(respond_url(token)).content.decode()

    prompt = "Why that score for Northwind?"
    assert f'<span class="why-prompt" aria-live="polite">{prompt}</span>' in html


@pytest.fixture
def questions(invitation):
    program = invitation.wave.program
    program.intro = "We read every answer.\nIt takes a minute."
    program.extra_questions = [
        {
            "key": "support",
            "label": "How was support?",
            "type": "choice",
            "choices": ["Good", "Poor"],
        },
        {"key": "wish", "label": "One thing you wish we did?", "type": "text"},
    ]
    program.save()
    return program


def test_the_form_shows_the_intro_and_the_extra_questions(client, token, questions):
    html = client.get(respond_url(token)).content.decode()

    assert '<p class="intro">We read every answer.<br>It takes a minute.</p>' in html
    assert '<legend>How was support? <span class="optional">(optional)</span></legend>' in html
    assert 'name="q_support" value="Good"' in html and 'name="q_support" value="Poor"' in html
    assert '<label for="id_q_wish">One thing you wish we did?' in html
    assert '<input type="checkbox" name="wants_contact" id="id_wants_contact">' in html


def test_extra_answers_and_the_contact_request_are_stored(client, token, questions):
    page = client.post(
        respond_url(token),
        {"score": "7", "q_support": "Poor", "q_wish": "  Faster quotes ", "wants_contact": "on"},
    )

    assert page.status_code == 302
    response = Response.objects.get()
    assert response.answers == {"support": "Poor", "wish": "Faster quotes"}
    assert response.wants_contact is True


def test_extra_questions_are_optional(client, token, questions):
    assert client.post(respond_url(token), {"score": "9"}).status_code == 302

    response = Response.objects.get()
    assert (response.answers, response.wants_contact) == ({}, False)


def test_a_revision_shows_and_replaces_the_extra_answers(client, token, questions):
    client.post(respond_url(token), {"score": "7", "q_support": "Poor", "wants_contact": "on"})

    html = client.get(respond_url(token)).content.decode()
    assert 'name="q_support" value="Poor" checked' in html
    assert 'id="id_wants_contact" checked' in html

    client.post(respond_url(token), {"score": "9", "q_wish": "Nothing"})
    response = Response.objects.get()
    assert (response.answers, response.wants_contact) == ({"wish": "Nothing"}, False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"q_support": "Excellent"}, "Choose one of the answers offered."),
        ({"q_wish": "x" * 1001}, "Please keep this answer under 1,000 characters."),
    ],
)
def test_a_bad_extra_answer_shows_the_form_again_and_stores_nothing(
    client, invitation, token, questions, data, message
):
    before = state_snapshot(invitation)

    page = client.post(respond_url(token), {"score": "8", **data})

    assert page.status_code == 400
    assert message in page.content.decode()
    assert state_snapshot(invitation) == before


def test_malformed_extra_questions_do_not_break_the_page(client, invitation, token):
    program = invitation.wave.program
    type(program).objects.filter(pk=program.pk).update(
        extra_questions=[{"key": "x"}, "nonsense", {"key": "ok", "label": "Fine?", "type": "text"}]
    )

    page = client.get(respond_url(token))

    assert page.status_code == 200
    assert 'name="q_ok"' in page.content.decode()
    assert 'name="q_x"' not in page.content.decode()


# --- After answering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "wants_contact", "next_step"),
    [
        ("2", "", "Someone from our team will be in touch within 2 business days"),
        ("7", "", "What you told us goes into the list of what we improve next"),
        ("7", "on", "You asked us to contact you"),
        ("10", "", "We will share what you value with the team"),
        ("10", "on", "You asked us to contact you"),
    ],
)
def test_the_thank_you_page_says_what_happens_next(client, token, score, wants_contact, next_step):
    data = {"score": score, "wants_contact": wants_contact}

    html = client.post(respond_url(token), data, follow=True).content.decode()

    assert "<h2>What happens next</h2>" in html
    assert next_step in html


def test_the_thank_you_page_links_the_partners_updates_once_a_change_shipped(
    client, invitation, token, cs_agent
):
    from followups.services import change_create, change_ship

    html = client.post(respond_url(token), {"score": "8"}, follow=True).content.decode()
    assert "See what we changed" not in html  # nothing has shipped for this partner yet

    earlier = ResponseFactory(
        invitation__contact__partner=invitation.contact.partner,
        invitation__wave__opens_at=timezone.now() - dt.timedelta(days=120),
        score=3,
    )
    followup = FollowUpFactory(response=earlier, assignee=cs_agent)
    change = change_create(
        title="Partner support answers within four business hours",
        description="Every partner ticket gets a first answer within four business hours.",
        category="support",
        by=cs_agent,
        followup_ids=[followup.pk],
    )
    change_ship(change_id=change.pk, by=cs_agent)

    html = client.get(thanks_url(token)).content.decode()
    updates = reverse("surveys:updates", args=[token])
    assert f'<a href="{updates}">See what we changed after earlier feedback</a>' in html
    page = client.get(updates)
    assert page.status_code == 200
    assert "Partner support answers within four business hours" in page.content.decode()
    assert page["Referrer-Policy"] == "no-referrer"


def test_the_updates_page_of_an_unknown_link_is_a_human_404(client, db):
    page = client.get(reverse("surveys:updates", args=["x" * 32]))
    assert page.status_code == 404


# --- Branding --------------------------------------------------------------------------------


def test_the_page_carries_the_programs_colours_as_a_stylesheet(client, invitation, token):
    program = invitation.wave.program
    program.brand_colour = "#FFD700"  # gold: too light for white text or links on white
    program.save()

    html = client.get(respond_url(token)).content.decode()
    css_url = reverse("surveys:brand-css", args=[program.pk]) + "?v=ffd700"
    assert f'<link rel="stylesheet" href="{css_url}">' in html

    css = client.get(css_url)
    assert css["Content-Type"] == "text/css"
    assert css.content.decode() == ":root{--brand:#ffd700;--on-brand:#1b1f24;--accent:#0b5cad;}\n"
    assert "immutable" in css["Cache-Control"]


def test_a_dark_brand_colour_is_used_for_links_too(client, invitation):
    program = invitation.wave.program
    program.brand_colour = "#5B2C6F"
    program.save()

    css = client.get(reverse("surveys:brand-css", args=[program.pk])).content.decode()

    assert css == ":root{--brand:#5b2c6f;--on-brand:#ffffff;--accent:#5b2c6f;}\n"


@pytest.mark.parametrize("colour", ["red;}body{display:none", "#12345", "", None, "#0b5cad00"])
def test_a_colour_that_is_not_hex_never_reaches_a_stylesheet(colour):
    from surveys import branding

    assert branding.palette(colour).brand == "#0b5cad"


def test_the_stylesheet_of_an_unknown_program_is_a_404(client, db):
    assert client.get(reverse("surveys:brand-css", args=[999999])).status_code == 404


def test_the_logo_is_shown_only_from_an_https_address(client, invitation, token):
    program = invitation.wave.program
    program.logo_url = "https://cdn.northwind.example/logo.png"
    program.save()

    html = client.get(respond_url(token)).content.decode()
    assert (
        '<img class="logo" src="https://cdn.northwind.example/logo.png" '
        'alt="Northwind Partner Program" referrerpolicy="no-referrer" height="40">'
    ) in html

    type(program).objects.filter(pk=program.pk).update(logo_url="http://northwind.example/l.png")
    html = client.get(respond_url(token)).content.decode()
    assert "<img" not in html
    assert "Northwind Partner Program" in html


# --- CSRF stays on staff pages ----------------------------------------------------------------


def test_a_staff_page_keeps_djangos_csrf_page(db):
    page = Client(enforce_csrf_checks=True).post(reverse("login"), {"username": "x"})

    assert page.status_code == 403
    assert "CSRF verification failed" in page.content.decode()


@pytest.mark.parametrize(
    "posted, queries, stored",
    [
        # (what the form posts, queries, what is stored or None for a 400 with nothing stored)
        ({"score": "7", "wants_contact": "on"}, 1, (7, "", True, {})),
        ({"score": "7", "comment": "  Fine  ", "q_x": ""}, 1, (7, "Fine", False, {})),
        # Anything else takes the full path: the lookup, then the upsert or the 400 page.
        ({"score": "7", "q_unknown": "ignored as the form ignores it"}, 2, (7, "", False, {})),
        ({"score": "7", "wants_contact": "true"}, 2, (7, "", True, {})),
        ({"score": " 7"}, 1, None),
        ({"score": "7", "comment": "nul \x00 byte"}, 1, None),
        ({"score": "7", "comment": "x" * 5001}, 1, None),
        ({"comment": "no score"}, 1, None),
    ],
)
def test_the_one_statement_takes_only_what_the_form_would_take_as_it_is(
    client, token, posted, queries, stored, django_assert_num_queries
):
    with django_assert_num_queries(queries):
        answer = client.post(respond_url(token), posted)
    if stored is None:
        assert answer.status_code == 400
        assert not Response.objects.exists()
    else:
        assert answer.status_code == 302
        response = Response.objects.get()
        assert (
            response.score,
            response.comment,
            response.wants_contact,
            response.answers,
        ) == stored


@pytest.mark.parametrize(
    "closes, page_text, email_text",
    [
        # Closing as Dec 24 begins: open until the end of Dec 23, not "Dec. 24, midnight".
        (
            dt.datetime(2026, 12, 24, 0, 0, tzinfo=dt.UTC),
            "until Dec. 23, 2026, 11:59 p.m. (UTC)",
            "The survey is open until Dec. 23, 2026,",
        ),
        (
            dt.datetime(2026, 12, 24, 9, 0, tzinfo=dt.UTC),
            "until Dec. 24, 2026, 9 a.m. (UTC)",
            "The survey is open until Dec. 24, 2026,",
        ),
    ],
)
def test_partners_are_told_the_last_moment_they_can_answer(
    client, invitation, token, closes, page_text, email_text
):
    from surveys.services import invitation_message

    Wave.objects.filter(pk=invitation.wave_id).update(
        opens_at=closes - dt.timedelta(days=14), closes_at=closes
    )
    invitation.refresh_from_db()
    with time_machine.travel(closes - dt.timedelta(days=2), tick=False):
        client.post(respond_url(token), {"score": "8"})
        thanks = client.get(reverse("surveys:thanks", args=[token])).content.decode()
        message = invitation_message(invitation=invitation, token=token)
    assert f"You can change your answer {page_text}" in re.sub(r"\s+", " ", thanks)
    assert email_text in re.sub(r"\s+", " ", message.body)
