"""The demo outbox: staff read the .eml files the outbox backend wrote, newest first."""

import re
import shutil

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.urls import reverse

from surveys.services import invitation_message, token_issue
from tests.factories import ContactFactory, InvitationFactory, ProgramFactory, WaveFactory

pytestmark = pytest.mark.django_db

OUTBOX_BACKEND = "nps_project.mail.OutboxBackend"


@pytest.fixture
def outbox(settings, tmp_path):
    """The outbox backend on, writing into a fresh folder."""
    settings.EMAIL_BACKEND = OUTBOX_BACKEND
    settings.OUTBOX_DIR = tmp_path / "outbox"
    return settings.OUTBOX_DIR


def send_invitation(name: str, email: str) -> str:
    program = ProgramFactory(sender_name="Northwind Partner Program", subject=f"Hello {name}")
    contact = ContactFactory(name=name, email=email)
    invitation = InvitationFactory(wave=WaveFactory(program=program), contact=contact)
    token = token_issue(invitation=invitation)
    assert invitation_message(invitation=invitation, token=token).send() == 1
    return token


def eml_names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".eml")


def test_the_outbox_lists_emails_newest_first(client, cs_agent, outbox):
    send_invitation("Anna", "anna@contoso.example")
    send_invitation("Ben", "ben@contoso.example")
    client.force_login(cs_agent)

    page = client.get(reverse("outbox"))

    assert page.status_code == 200
    rows = page.context["rows"]
    assert [(r["to"], r["subject"]) for r in rows] == [
        ("ben@contoso.example", "Hello Ben"),
        ("anna@contoso.example", "Hello Anna"),
    ]
    assert rows[0]["date"] >= rows[1]["date"]
    html = page.content.decode()
    assert reverse("outbox-message", args=[rows[0]["name"]]) in html


def test_the_outbox_is_paginated_by_fifty(client, cs_agent, outbox):
    send_invitation("Anna", "anna@contoso.example")
    (first,) = eml_names(outbox)
    for n in range(50):
        shutil.copy(outbox / first, outbox / f"20000101T0000{n:02d}000000-copy.eml")
    client.force_login(cs_agent)

    page_one = client.get(reverse("outbox"))
    page_two = client.get(reverse("outbox"), {"page": 2})

    assert len(page_one.context["rows"]) == 50
    assert page_one.context["rows"][0]["name"] == first  # the real one is the newest
    assert [r["name"] for r in page_two.context["rows"]] == ["20000101T000000000000-copy.eml"]


def test_the_outbox_list_query_budget(client, cs_agent, outbox, django_assert_num_queries):
    for n in range(3):
        send_invitation(f"Contact {n}", f"c{n}@contoso.example")
    client.force_login(cs_agent)
    # Session, user, the user's groups (the role check); the emails are files, not rows.
    with django_assert_num_queries(3):
        assert client.get(reverse("outbox")).status_code == 200


def test_a_message_shows_headers_html_in_a_sandbox_and_text(client, cs_agent, outbox):
    token = send_invitation("Anna", "anna@contoso.example")
    (name,) = eml_names(outbox)
    client.force_login(cs_agent)

    page = client.get(reverse("outbox-message", args=[name]))

    assert page.status_code == 200
    headers = dict(page.context["headers"])
    assert headers["To"] == "anna@contoso.example"
    assert headers["Subject"] == "Hello Anna"
    assert headers["From"] == "Northwind Partner Program <nps@example.com>"
    unsubscribe_url = f"{django_settings.SITE_URL}/s/{token}/unsubscribe/"
    assert headers["List-Unsubscribe"] == f"<{unsubscribe_url}>"
    html = page.content.decode()
    assert (
        'sandbox="allow-popups allow-popups-to-escape-sandbox '
        'allow-top-navigation-by-user-activation"' in html
    )
    srcdoc = re.search(r'srcdoc="([^"]*)"', html).group(1)
    assert "&lt;a href=&quot;" in srcdoc  # the email's HTML, escaped into the attribute
    assert f"{django_settings.SITE_URL}/s/{token}/?score=10" in srcdoc
    # A click opens the survey in a new tab: inside the frame it would refuse to load.
    assert "&lt;head&gt;&lt;base target=&quot;_blank&quot;&gt;" in srcdoc
    assert "<pre" in html and "Hello Anna," in html
    assert f'<a href="{django_settings.SITE_URL}/s/{token}/"' in html  # clickable in the text


@pytest.mark.parametrize(
    "name",
    [
        "../nps.sqlite3",
        "..%2F..%2Fsettings.py",
        "..",
        "missing.eml",
        "notes.txt",
        ".hidden.eml.tmp",
        "a b.eml",
        "%2Fetc%2Fpasswd.eml",
    ],
)
def test_a_name_outside_the_outbox_is_not_found(client, cs_agent, outbox, name):
    send_invitation("Anna", "anna@contoso.example")
    (outbox / "notes.txt").write_text("not an email")
    (outbox / ".hidden.eml.tmp").write_text("half written")
    client.force_login(cs_agent)

    assert client.get(f"/outbox/{name}/").status_code == 404


def test_a_half_written_file_is_not_listed(client, cs_agent, outbox):
    send_invitation("Anna", "anna@contoso.example")
    (outbox / ".20990101T000000000000-abc.eml.tmp").write_text("half written")
    client.force_login(cs_agent)

    rows = client.get(reverse("outbox")).context["rows"]

    assert [r["to"] for r in rows] == ["anna@contoso.example"]


def test_an_empty_outbox_says_so(client, cs_agent, outbox):
    client.force_login(cs_agent)

    page = client.get(reverse("outbox"))

    assert page.status_code == 200
    assert "No emails yet" in page.content.decode()


def test_an_outsider_gets_403(client, outsider, outbox):
    send_invitation("Anna", "anna@contoso.example")
    (name,) = eml_names(outbox)
    client.force_login(outsider)

    assert client.get(reverse("outbox")).status_code == 403
    assert client.get(reverse("outbox-message", args=[name])).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, outbox):
    send_invitation("Anna", "anna@contoso.example")
    (name,) = eml_names(outbox)

    for url in (reverse("outbox"), reverse("outbox-message", args=[name])):
        page = client.get(url)
        assert page.status_code == 302
        assert page["Location"].startswith(reverse("login") + "?next=")


def test_without_the_outbox_backend_there_is_no_outbox(client, cs_agent, settings, tmp_path):
    settings.OUTBOX_DIR = tmp_path
    send_invitation("Anna", "anna@contoso.example")  # the test backend keeps it in memory
    assert len(mail.outbox) == 1
    client.force_login(cs_agent)

    assert client.get(reverse("outbox")).status_code == 404


def test_managers_and_admins_may_read_the_outbox(client, cs_manager, admin_user, outbox):
    for user in (cs_manager, admin_user):
        client.force_login(user)
        assert client.get(reverse("outbox")).status_code == 200
