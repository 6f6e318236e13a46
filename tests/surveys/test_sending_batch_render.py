"""A batch renders the invitation templates once per wave, language and kind, and fills in each
contact's name, partner name and link token per email: the emails must be exactly those of the
full per-email render, whatever the names hold."""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.template import Context, Template

from surveys.models import Invitation
from surveys.services import (
    InvitationMessages,
    NameOnly,
    PerEmailValueMissing,
    _as_bytes,
    invitation_message,
    invitations_send,
    reminders_send,
)
from surveys.tokens import new_token
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 4, 15, 7, 0, tzinfo=dt.UTC)

# Names that HTML-escaping, %-formatting, template syntax or a would-be header line all touch.
NAMES = [
    '<b>"O\'Brien & Co"</b>',
    "Zoë Ñúñez-Łukasiewicz",
    "100% {{ name }} {% if %} %(subject)s",
    "Eve\r\nBcc: victim@example.com",
    "",
]
LANGUAGES = ["en", "de", "fr", "es", "pt", "de-AT", ""]


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def program_wave(**program):
    return WaveFactory(
        program=ProgramFactory(**program),
        period_start=NOW.date(),
        opens_at=NOW,
        closes_at=NOW + dt.timedelta(days=14),
    )


def parts(message) -> dict:
    return {
        "subject": message.subject,
        "body": message.body,
        "alternatives": [tuple(a) for a in message.alternatives],
        "from_email": message.from_email,
        "to": message.to,
        "headers": message.extra_headers,
    }


@pytest.fixture
def invitations(clock):
    plain = program_wave()
    branded = program_wave(
        sender_name='<Northwind & "Partners">',
        intro="Dear partner,\nthanks & <welcome>.",
        logo_url="https://cdn.example.com/logo.png",
        brand_colour="#0b5cad",
        subject="Two minutes, {name}? 100%",
    )
    rows = []
    for n, (name, language) in enumerate(
        (name, language) for name in NAMES for language in LANGUAGES
    ):
        partner = PartnerFactory(name=f"{NAMES[(n + 1) % len(NAMES)]} #{n}")
        contact = ContactFactory(partner=partner, name=name, language=language)
        wave = branded if n % 2 else plain
        rows.append(InvitationFactory(wave=wave, contact=contact, status="queued", sent_at=None))
    return rows


@pytest.mark.parametrize("is_reminder", [False, True])
def test_a_batch_render_gives_exactly_the_email_of_the_full_render(invitations, is_reminder):
    messages = InvitationMessages()
    for invitation in invitations:
        token = new_token()
        batch = messages.message(invitation=invitation, token=token, is_reminder=is_reminder)
        full = invitation_message(invitation=invitation, token=token, is_reminder=is_reminder)
        assert parts(batch) == parts(full), (invitation.contact.name, invitation.contact.language)


@pytest.mark.parametrize("is_reminder", [False, True])
def test_the_bytes_sent_over_smtp_are_those_django_makes(invitations, is_reminder):
    """The SMTP path remembers how headers were folded: its bytes must still be Django's, byte
    for byte, for every name and language, also the second time round (from the cache)."""
    messages = InvitationMessages()
    for invitation in invitations * 2:
        token = new_token()
        mime = messages.message(invitation=invitation, token=token, is_reminder=is_reminder)
        mime = mime.message()
        assert _as_bytes(mime) == mime.as_bytes(linesep="\r\n")


def test_the_html_part_escapes_a_name_exactly_as_the_template_engine_does(invitations):
    invitation = invitations[0]
    token = new_token()
    (html, _), *_ = InvitationMessages().message(invitation=invitation, token=token).alternatives
    assert "Hello &lt;b&gt;&quot;O&#x27;Brien &amp; Co&quot;&lt;/b&gt;," in html
    body = InvitationMessages().message(invitation=invitation, token=token).body
    assert 'Hello <b>"O\'Brien & Co"</b>,' in body


def test_a_token_not_of_the_issued_shape_falls_back_to_the_full_render(invitations):
    invitation = invitations[1]
    odd = "not a token, with & <chars>"
    batch = InvitationMessages().message(invitation=invitation, token=odd)
    assert parts(batch) == parts(invitation_message(invitation=invitation, token=odd))


def test_the_templates_are_rendered_once_per_wave_language_and_kind(invitations, monkeypatch):
    from nps_project import emailing

    renders = []
    real = emailing.render_parts
    monkeypatch.setattr(
        emailing, "render_parts", lambda *a, **k: renders.append(1) or real(*a, **k)
    )
    messages = InvitationMessages()
    for invitation in invitations:
        messages.message(invitation=invitation, token=new_token())
    # two waves x four languages: "pt" and "" fall back to English, "de-AT" to German
    groups = {(i.wave_id, messages_language(i.contact.language)) for i in invitations}
    assert len(renders) == len(groups) == 8


def messages_language(code):
    from surveys.services import supported_language

    return supported_language(code)


def test_a_template_reading_another_contact_attribute_fails_loudly():
    template = Template("{{ contact.name }} <{{ contact.email }}>")
    with pytest.raises(PerEmailValueMissing, match=r"contact\.email"):
        template.render(Context({"contact": NameOnly("x", "contact")}))


def test_each_email_of_a_sent_batch_equals_its_full_render(invitations):
    assert invitations_send(invitation_ids=[i.pk for i in invitations]) == len(invitations)
    by_address = {i.contact.email: i for i in invitations}
    assert len(mail.outbox) == len(invitations)
    for message in mail.outbox:
        token = re.search(r"/s/([^/]+)/unsubscribe/", message.extra_headers["List-Unsubscribe"])
        assert token, message.extra_headers
        full = invitation_message(invitation=by_address[message.to[0]], token=token.group(1))
        assert parts(message) | {"headers": None} == parts(full) | {"headers": None}
        assert message.extra_headers == full.extra_headers


def test_each_reminder_of_a_batch_equals_its_full_render(clock, invitations):
    Invitation.objects.update(status="sent", sent_at=NOW)
    for wave in {i.wave for i in invitations}:
        wave.program.reminder_days = [3]
        wave.program.max_reminders = 1
        wave.program.save()
    clock.move_to(NOW + dt.timedelta(days=3, hours=1))
    assert reminders_send(invitation_ids=[i.pk for i in invitations]) == len(invitations)
    by_address = {i.contact.email: i for i in invitations}
    for message in mail.outbox:
        token = re.search(r"/s/([^/]+)/unsubscribe/", message.extra_headers["List-Unsubscribe"])
        full = invitation_message(
            invitation=by_address[message.to[0]], token=token.group(1), is_reminder=True
        )
        assert parts(message) == parts(full)
