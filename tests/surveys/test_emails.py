"""The emails partners get: the invitation (with its score links and one-click unsubscribe) and
the "you told us, we did" notice that closes the loop."""

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from followups.models import PartnerNotice
from followups.services import notice_message
from surveys.models import Contact
from surveys.services import invitation_message, token_issue
from tests.factories import (
    ChangeFactory,
    ContactFactory,
    FollowUpFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    ResponseFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

HREF = re.compile(r'href="([^"]+)"')


@pytest.fixture
def invitation():
    program = ProgramFactory(
        sender_name="Northwind Partner Program",
        subject="Two minutes for Northwind?",
        question="How likely are you to recommend Northwind to a colleague?",
    )
    partner = PartnerFactory(name="Contoso & Sons")
    contact = ContactFactory(partner=partner, name="Anna O'Brien", email="anna@contoso.example")
    return InvitationFactory(wave=WaveFactory(program=program), contact=contact)


@pytest.fixture
def token(invitation):
    return token_issue(invitation=invitation)


@pytest.fixture
def message(invitation, token):
    return invitation_message(invitation=invitation, token=token)


def html_of(message) -> str:
    (html, mimetype), *_ = message.alternatives
    assert mimetype == "text/html"
    return html


def local_path(url: str) -> str:
    assert url.startswith(settings.SITE_URL + "/"), url
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_the_invitation_has_subject_sender_and_recipient(message):
    assert message.subject == "Two minutes for Northwind?"
    assert message.to == ["anna@contoso.example"]
    assert message.from_email == "Northwind Partner Program <nps@example.com>"


def test_the_plain_text_part_has_greeting_question_and_both_links(message, token):
    text = message.body

    assert text.startswith("Hello Anna O'Brien,\n")  # plain text: nothing HTML-escaped
    assert "How likely are you to recommend Northwind to a colleague?" in text
    assert f"{settings.SITE_URL}/s/{token}/\n" in text
    assert f"{settings.SITE_URL}/s/{token}/unsubscribe/\n" in text
    assert "The Northwind Partner Program team" in text
    assert "as a contact of Contoso & Sons" in text
    assert "&amp;" not in text and "&#x27;" not in text


def test_the_html_part_has_eleven_score_buttons_and_the_survey_link(message, token):
    html = html_of(message)

    survey_url = f"{settings.SITE_URL}/s/{token}/"
    score_links = [url for url in HREF.findall(html) if "?score=" in url]
    assert score_links == [f"{survey_url}?score={n}" for n in range(11)]
    assert f'href="{survey_url}"' in html  # "or open the survey"
    assert "Or open the survey" in html
    assert f'href="{survey_url}unsubscribe/"' in html
    assert "Unsubscribe from these surveys" in html
    assert "Anna O&#x27;Brien" in html and "Contoso &amp; Sons" in html  # escaped in HTML
    assert "How likely are you to recommend Northwind to a colleague?" in html


def test_the_html_part_loads_no_external_images_or_styles(message):
    html = html_of(message)

    assert "<img" not in html
    assert "<link" not in html
    assert "<script" not in html
    assert "<style" not in html  # inline styles only, as mail clients expect


def test_each_score_link_opens_the_form_with_that_score_chosen(client, message):
    html = html_of(message)
    score_links = [url for url in HREF.findall(html) if "?score=" in url]

    for score, url in enumerate(score_links):
        page = client.get(local_path(url))
        assert page.status_code == 200
        checked = re.findall(
            r'<input type="radio" name="score" value="(\d+)"[^>]*\bchecked\b', page.content.decode()
        )
        assert checked == [str(score)]


def test_the_invitation_offers_one_click_unsubscribe(message, invitation, token):
    unsubscribe_url = f"{settings.SITE_URL}/s/{token}/unsubscribe/"
    assert message.extra_headers["List-Unsubscribe"] == f"<{unsubscribe_url}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # What a mail client does with those headers (RFC 8058): a bare POST, no cookies.
    page = Client(enforce_csrf_checks=True).post(
        local_path(unsubscribe_url),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert page.status_code == 200
    assert Contact.objects.get(pk=invitation.contact_id).opted_out_at is not None


def test_the_invitation_renders_as_one_multipart_email(message):
    raw = message.message()

    assert raw.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in raw.get_payload()] == ["text/plain", "text/html"]
    assert raw["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_name_cannot_break_the_subject_or_sender(invitation, token):
    program = invitation.wave.program
    program.subject = "Quick question\nBcc: victim@example.com"
    program.sender_name = "Evil\r\nBcc: victim@example.com"
    program.save()

    message = invitation_message(invitation=invitation, token=token)

    assert message.subject == "Quick question Bcc: victim@example.com"
    raw = message.message()
    assert raw["Bcc"] is None


# --- "You told us, we did" ------------------------------------------------------------------


@pytest.fixture
def notice():
    program = ProgramFactory(sender_name="Northwind Partner Program")
    contact = ContactFactory(name="Anna Schmidt", email="anna@contoso.example")
    response = ResponseFactory(
        invitation=InvitationFactory(contact=contact, wave=WaveFactory(program=program)),
        score=3,
        comment='Support <script>alert("x")</script> takes days & days.',
    )
    followup = FollowUpFactory(response=response)
    change = ChangeFactory(
        title="Partner support answers within 4 hours",
        description="Every partner ticket now gets a first answer within four business hours.",
    )
    return PartnerNotice.objects.create(change=change, followup=followup)


def test_the_notice_subject_names_the_change(notice):
    message = notice_message(notice)

    assert message.subject == "You told us, we did: Partner support answers within 4 hours"
    assert message.to == ["anna@contoso.example"]


def test_the_notice_quotes_the_comment_and_says_what_changed(notice):
    text = notice_message(notice).body

    assert "Hello Anna Schmidt," in text
    assert '“Support <script>alert("x")</script> takes days & days.”' in text  # plain: as typed
    assert "Here is what we did: Partner support answers within 4 hours" in text
    assert "within four business hours." in text
    assert "Thank you for telling us." in text


def test_the_notice_escapes_the_comment_in_html(notice):
    html = html_of(notice_message(notice))

    assert "<script>" not in html
    escaped = "Support &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; takes days &amp; days."
    assert escaped in html
    assert "within four business hours." in html


def test_the_notice_without_a_comment_names_the_score(notice):
    notice.followup.response.comment = ""
    notice.followup.response.save()

    text = notice_message(notice).body

    assert "you gave us 3 out of 10." in text
    assert "“" not in text
