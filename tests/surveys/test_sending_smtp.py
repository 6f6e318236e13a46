"""Sending over a real SMTP server (aiosmtpd in a thread), with and without PIPELINING (RFC
2920): each email goes out only after the one before it is marked sent, a refused recipient or
a rejected message fails that invitation alone, and with PIPELINING the next envelope travels
with the current message's content."""

import asyncio
import datetime as dt
import re
import smtplib
import threading
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from django.core.mail.message import sanitize_address
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from surveys import services
from surveys.models import Invitation
from surveys.services import invitations_send, reminders_send
from tests.e2e.conftest import free_port
from tests.factories import ContactFactory, InvitationFactory, ProgramFactory, WaveFactory

pytestmark = pytest.mark.django_db

TOKEN_IN_LINK = re.compile(r"/s/[A-Za-z0-9_-]{32}/")


class Server:
    """Accepts mail, optionally announcing PIPELINING; refuses the recipients in ``refuse`` at
    RCPT and rejects the messages to ``reject`` after their content. Appends
    ``("accepted", address)`` to ``events`` for each message it takes."""

    def __init__(self, events: list, *, pipelining: bool, refuse=(), reject=()):
        self.events = events
        self.pipelining = pipelining
        self.refuse = set(refuse)
        self.reject = set(reject)
        self.next_envelope_waiting: list[bool] = []
        self.messages: list = []
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        # Has the client sent more (the next envelope) before hearing this message's reply?
        # (StreamReader's buffer: what the server has received and not yet read.)
        for _ in range(50):
            if server._reader._buffer:
                break
            await asyncio.sleep(0.01)
        with self.lock:
            self.next_envelope_waiting.append(bool(server._reader._buffer))
        [address] = envelope.rcpt_tos
        if address in self.reject:
            return "554 5.7.1 Message rejected"
        with self.lock:
            self.events.append(("accepted", address))
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp(settings):
    controllers = []

    def start(events, **options) -> Server:
        handler = Server(events, **options)
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
        return handler

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def events(monkeypatch) -> list:
    """The server's acceptances and the sending service's "sent" marks, in order."""
    events: list = []
    mark_sent = services._mark_sent

    def recorded(pk: int) -> None:
        mark_sent(pk)
        events.append(("marked", Invitation.objects.get(pk=pk).contact.email))

    monkeypatch.setattr(services, "_mark_sent", recorded)
    return events


def queued(count: int) -> list[Invitation]:
    now = timezone.now()
    wave = WaveFactory(
        program=ProgramFactory(),
        opens_at=now - dt.timedelta(minutes=1),
        closes_at=now + dt.timedelta(days=14),
    )
    return [
        InvitationFactory(
            wave=wave,
            contact=ContactFactory(email=f"contact{n}@partner.example"),
            status="queued",
            sent_at=None,
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_each_email_goes_out_only_after_the_one_before_is_marked_sent(smtp, events, pipelining):
    server = smtp(events, pipelining=pipelining)
    invitations = queued(5)

    assert invitations_send(invitation_ids=[i.pk for i in invitations]) == 5

    emails = [i.contact.email for i in invitations]
    assert events == [(what, email) for email in emails for what in ("accepted", "marked")]
    assert set(Invitation.objects.values_list("status", flat=True)) == {"sent"}
    # With PIPELINING the next envelope is already there when a message's content arrives.
    expected = [True, True, True, True, False] if pipelining else [False] * 5
    assert server.next_envelope_waiting == expected
    for message, email in zip(server.messages, emails, strict=True):
        assert message["To"] == email
        assert message.get_content_type() == "multipart/alternative"
        text, html = message.get_body(("plain",)), message.get_body(("html",))
        assert TOKEN_IN_LINK.search(text.get_content())
        assert TOKEN_IN_LINK.search(html.get_content())
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_refused_recipient_fails_that_invitation_alone(smtp, events):
    smtp(events, pipelining=True, refuse={"contact1@partner.example"})
    invitations = queued(4)

    assert invitations_send(invitation_ids=[i.pk for i in invitations]) == 3

    refused = Invitation.objects.get(pk=invitations[1].pk)
    assert (refused.status, refused.attempts) == ("queued", 1)
    assert refused.last_error.startswith("SMTPRecipientsRefused: ")
    assert "No such user" in refused.last_error
    sent = [i.contact.email for i in invitations if i.pk != refused.pk]
    assert events == [(what, email) for email in sent for what in ("accepted", "marked")]


def test_a_rejected_message_fails_that_invitation_alone(smtp, events):
    smtp(events, pipelining=True, reject={"contact2@partner.example"})
    invitations = queued(4)

    assert invitations_send(invitation_ids=[i.pk for i in invitations]) == 3

    rejected = Invitation.objects.get(pk=invitations[2].pk)
    assert (rejected.status, rejected.attempts) == ("queued", 1)
    assert rejected.last_error.startswith("SMTPDataError: (554")
    sent = [i.contact.email for i in invitations if i.pk != rejected.pk]
    assert events == [(what, email) for email in sent for what in ("accepted", "marked")]
    assert Invitation.objects.filter(status="sent").count() == 3


def test_an_error_building_an_email_is_raised_after_the_one_before_is_marked(
    smtp, events, monkeypatch
):
    smtp(events, pipelining=True)
    invitations = queued(4)
    build = services.InvitationMessages.message

    def failing(self, *, invitation, **kwargs):
        if invitation.pk == invitations[2].pk:
            raise services.PerEmailValueMissing("contact.phone")
        return build(self, invitation=invitation, **kwargs)

    monkeypatch.setattr(services.InvitationMessages, "message", failing)

    with pytest.raises(services.PerEmailValueMissing):
        invitations_send(invitation_ids=[i.pk for i in invitations])

    first_two = [i.contact.email for i in invitations[:2]]
    assert events == [(what, email) for email in first_two for what in ("accepted", "marked")]
    statuses = dict(Invitation.objects.values_list("pk", "status"))
    assert [statuses[i.pk] for i in invitations] == ["sent", "sent", "sending", "sending"]


@given(st.from_regex(services._PLAIN_ADDRESS, fullmatch=True))
def test_a_plain_address_is_its_own_sanitized_and_quoted_form(address):
    assert services._sanitized(address, "utf-8") == sanitize_address(address, "utf-8") == address
    assert services._quoted(address) == smtplib.quoteaddr(address) == f"<{address}>"


@pytest.mark.parametrize(
    "address",
    [
        '"Partner Program" <nps@example.com>',
        "Zoë Müller <zoe@example.com>",
        "anna@bücher.example",
        '"a b"@example.com',
    ],
)
def test_other_addresses_go_through_django_and_smtplib(address):
    sanitized = services._sanitized(address, "utf-8")
    assert sanitized == sanitize_address(address, "utf-8")
    assert services._quoted(sanitized) == smtplib.quoteaddr(sanitized)


def test_reminders_go_over_a_pipelining_server_and_a_refused_one_gets_its_claim_back(smtp):
    events: list = []
    server = smtp(events, pipelining=True, refuse={"contact1@partner.example"})
    now = timezone.now()
    wave = WaveFactory(
        program=ProgramFactory(reminder_days=[4], max_reminders=1, response_window_days=14),
        opens_at=now - dt.timedelta(days=5),
        closes_at=now + dt.timedelta(days=9),
    )
    invitations = [
        InvitationFactory(
            wave=wave,
            contact=ContactFactory(email=f"contact{n}@partner.example"),
            sent_at=now - dt.timedelta(days=5),
        )
        for n in range(4)
    ]

    assert reminders_send(invitation_ids=[i.pk for i in invitations], now=now) == 3

    reminded = dict(Invitation.objects.values_list("contact__email", "reminders_sent"))
    assert reminded == {
        "contact0@partner.example": 1,
        "contact1@partner.example": 0,
        "contact2@partner.example": 1,
        "contact3@partner.example": 1,
    }
    assert [address for _, address in events] == [
        "contact0@partner.example",
        "contact2@partner.example",
        "contact3@partner.example",
    ]
    assert all(m["Subject"].startswith("Reminder: ") for m in server.messages)
