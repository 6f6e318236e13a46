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


# --- Branding, intro and short links ---------------------------------------------------------


def test_the_invitation_carries_the_programs_colour_logo_and_intro(invitation, token):
    program = invitation.wave.program
    program.brand_colour = "#5B2C6F"
    program.logo_url = "https://cdn.northwind.example/logo.png"
    program.intro = "Two minutes of your time <really> help."
    program.save()

    message = invitation_message(invitation=invitation, token=token)

    html = html_of(message)
    assert "border-top:4px solid #5b2c6f" in html
    assert "color:#5b2c6f" in html  # score buttons in the vendor's colour
    # The logo is optional decoration: its alt text names the sender if images are blocked.
    assert '<img src="https://cdn.northwind.example/logo.png" alt="Northwind Partner Program"' in (
        html
    )
    assert "Two minutes of your time &lt;really&gt; help." in html
    assert "Two minutes of your time <really> help." in message.body


def test_a_light_brand_colour_keeps_readable_score_buttons(invitation, token):
    program = invitation.wave.program
    program.brand_colour = "#FFD700"
    program.save()

    html = html_of(invitation_message(invitation=invitation, token=token))

    assert "border-top:4px solid #ffd700" in html
    assert "color:#0b5cad" in html and "color:#ffd700" not in html


def test_a_logo_that_is_not_https_is_left_out(invitation, token):
    program = invitation.wave.program
    type(program).objects.filter(pk=program.pk).update(logo_url="http://northwind.example/l.png")
    invitation.wave.program.refresh_from_db()

    assert "<img" not in html_of(invitation_message(invitation=invitation, token=token))


def test_every_link_in_the_invitation_is_short(message, token):
    """The token sits in a short path: /s/<32 characters>/ plus ?score=N at most."""
    links = HREF.findall(html_of(message)) + re.findall(r"https?://\S+", message.body)

    assert len(links) == 11 + 1 + 1 + 2
    for link in links:
        assert len(link) <= len(settings.SITE_URL) + 50, link
    assert max(len(link) for link in links) == len(settings.SITE_URL) + len("/s//unsubscribe/") + 32


def test_a_scanner_opening_every_link_with_get_and_head_stores_nothing(client, invitation, token):
    """What a mail security scanner does: fetch every link of the email, with HEAD and GET, at
    once and without running scripts. Nothing may be recorded: no answer, no opt-out, no stamp."""
    from followups.models import FollowUp
    from surveys.models import Invitation, InvitationToken, Response, Wave

    def snapshot():
        return (
            Response.objects.count(),
            FollowUp.objects.count(),
            InvitationToken.objects.count(),
            list(Invitation.objects.values_list("status", "updated_at", "first_opened_at")),
            list(Contact.objects.values_list("opted_out_at", "updated_at", "language")),
            list(Wave.objects.values_list("status", "updated_at")),
        )

    message = invitation_message(invitation=invitation, token=token)
    links = set(HREF.findall(html_of(message)))
    links |= set(re.findall(r"https?://\S+", message.body))
    links.add(message.extra_headers["List-Unsubscribe"].strip("<>"))
    before = snapshot()

    statuses = set()
    for link in sorted(links):
        for method in (client.get, client.head):
            statuses.add(method(local_path(link)).status_code)
            # A scanner follows redirects too.
            statuses.add(method(local_path(link), follow=True).status_code)

    assert statuses == {200}
    assert snapshot() == before


# --- The admin's preview and the program's validation -------------------------------------


def test_the_admin_previews_the_invitation_in_each_language(client, admin_user, invitation):
    from django.urls import reverse

    program = invitation.wave.program
    client.force_login(admin_user)

    change = client.get(reverse("admin:surveys_program_change", args=[program.pk])).content
    assert b"email-preview/ja/" in change

    page = client.get(reverse("admin:surveys_program_email_preview", args=[program.pk, "de"]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Two minutes for Northwind?" in html  # the program's own subject, as written
    assert "Hallo Alex Example," in html
    assert 'sandbox=""' in html and "srcdoc=" in html
    assert "Northwind Partner Program &lt;nps@example.com&gt;" in html


def test_the_email_preview_is_for_admins_only(client, outsider, cs_agent, invitation):
    from django.urls import reverse

    url = reverse("admin:surveys_program_email_preview", args=[invitation.wave.program_id, "en"])
    for user in (outsider, cs_agent):
        client.force_login(user)
        assert client.get(url).status_code in (302, 403)


def test_the_email_preview_of_an_unknown_language_is_a_404(client, admin_user, invitation):
    from django.urls import reverse

    client.force_login(admin_user)
    url = reverse("admin:surveys_program_email_preview", args=[invitation.wave.program_id, "xx"])
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("brand_colour", "blue", "Give a hex colour"),
        ("brand_colour", "#12345g", "Give a hex colour"),
        ("logo_url", "http://northwind.example/logo.png", "Give an https:// address"),
        ("extra_questions", {"key": "x"}, "Give a list of questions"),
        ("extra_questions", [{"key": "a", "label": "A?"}, {"key": "a", "label": "B?"}], "unique"),
        ("extra_questions", [{"key": "Bad Key", "label": "A?"}], "Give a list of questions"),
        ("extra_questions", [{"key": "a", "label": "A?", "type": "choice"}], "choices"),
        ("extra_questions", [{"key": "a", "label": "A?", "type": "scale"}], "text"),
    ],
)
def test_the_program_rejects_bad_branding_and_questions(invitation, field, value, message):
    from django.core.exceptions import ValidationError

    program = invitation.wave.program
    setattr(program, field, value)

    with pytest.raises(ValidationError) as raised:
        program.full_clean()

    assert message in " ".join(raised.value.message_dict[field])


def test_the_program_accepts_good_branding_and_questions(invitation):
    program = invitation.wave.program
    program.brand_colour = "#A1b2C3"
    program.logo_url = "https://cdn.example/logo.svg"
    program.extra_questions = [
        {"key": "support", "label": "Support?", "type": "choice", "choices": ["Good", "Poor"]},
        {"key": "wish", "label": "One wish?", "type": "text"},
        {"key": "other", "label": "Anything else?"},
    ]

    program.full_clean()
