"""Bounces and complaints from the provider (signed endpoint and command), and the staff
delivery-health pages."""

import datetime as dt
import json
import time

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from surveys.delivery import signature_for
from surveys.models import Contact, Invitation
from surveys.services import delivery_events_record, eligible_contacts
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    ProgramFactory,
    ResponseFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

SECRET = "test-delivery-secret"


@pytest.fixture
def secret(settings):
    settings.NPS_DELIVERY_EVENTS_SECRET = SECRET
    return SECRET


def post_events(client, body, *, secret=SECRET, timestamp=None, signature=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    return client.post(
        reverse("delivery:events"),
        data=raw,
        content_type="application/json",
        headers={
            "X-NPS-Timestamp": timestamp,
            "X-NPS-Signature": signature or signature_for(secret, timestamp, raw),
        },
    )


# --- Recording events -----------------------------------------------------------------------


def test_a_hard_bounce_marks_the_contact_and_cancels_its_queued_invitations():
    contact = ContactFactory(email="anna@northwind.example")
    queued = InvitationFactory(contact=contact, status="queued", sent_at=None)
    at = dt.datetime(2027, 4, 15, 9, 0, tzinfo=dt.UTC)

    report = delivery_events_record(
        events=[
            {
                "type": "bounce",
                "email": "Anna@Northwind.example",
                "bounce_type": "hard",
                "reason": "550 5.1.1\r\n user unknown",
                "at": at.isoformat(),
            }
        ]
    )

    assert report.bounced == ["anna@northwind.example"]
    contact.refresh_from_db()
    assert (contact.bounced_at, contact.bounce_reason) == (at, "550 5.1.1 user unknown")
    queued.refresh_from_db()
    assert (queued.status, queued.last_error) == ("cancelled", "The address bounced.")


def test_a_complaint_marks_the_contact_and_excludes_it_from_future_waves():
    contact = ContactFactory(email="ben@northwind.example")
    wave = WaveFactory(program=ProgramFactory())
    assert contact in eligible_contacts(wave=wave)

    delivery_events_record(events=[{"type": "complaint", "email": "ben@northwind.example"}])

    contact.refresh_from_db()
    assert contact.complained_at is not None
    assert contact not in eligible_contacts(wave=wave)


def test_soft_bounces_and_unknown_addresses_change_nothing():
    contact = ContactFactory(email="anna@northwind.example")
    report = delivery_events_record(
        events=[
            {"type": "bounce", "bounce_type": "soft", "email": "anna@northwind.example"},
            {"type": "bounce", "email": "nobody@elsewhere.example"},
        ]
    )
    assert (report.soft_bounces, report.unknown) == (1, ["nobody@elsewhere.example"])
    contact.refresh_from_db()
    assert contact.bounced_at is None


def test_the_same_event_twice_is_recorded_once():
    ContactFactory(email="anna@northwind.example")
    event = {"type": "bounce", "email": "anna@northwind.example"}
    delivery_events_record(events=[event])
    first = Contact.objects.get().bounced_at
    report = delivery_events_record(events=[event])
    assert (report.bounced, report.already_marked) == ([], 1)
    assert Contact.objects.get().bounced_at == first


def test_one_bad_event_rejects_the_whole_list_and_changes_nothing():
    ContactFactory(email="anna@northwind.example")
    with pytest.raises(ValidationError) as error:
        delivery_events_record(
            events=[
                {"type": "bounce", "email": "anna@northwind.example"},
                {"type": "delivered", "email": "anna@northwind.example"},
                {"type": "complaint", "email": "not an address"},
                {"type": "bounce", "email": "anna@northwind.example", "at": "yesterday"},
            ]
        )
    assert error.value.messages == [
        "Event 2: Unknown event type 'delivered'; use bounce or complaint.",
        "Event 3: Not an email address: 'not an address'.",
        "Event 4: Unreadable time 'yesterday'; use ISO 8601 with an offset, "
        "e.g. 2027-04-15T09:00:00+00:00.",
    ]
    assert Contact.objects.get().bounced_at is None


# --- The signed endpoint --------------------------------------------------------------------


def test_a_signed_post_records_the_events(client, secret):
    ContactFactory(email="anna@northwind.example")
    response = post_events(
        client, {"events": [{"type": "bounce", "email": "anna@northwind.example"}]}
    )
    assert response.status_code == 200
    assert response.json() == {
        "bounced": 1,
        "complained": 0,
        "already_marked": 0,
        "soft_bounces": 0,
        "unknown": 0,
    }
    assert Contact.objects.get().bounced_at is not None


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "stale", "no-timestamp", "body-changed"],
)
def test_an_unsigned_stale_or_tampered_post_is_refused_and_changes_nothing(client, secret, tamper):
    ContactFactory(email="anna@northwind.example")
    body = json.dumps({"events": [{"type": "bounce", "email": "anna@northwind.example"}]})
    now = str(int(time.time()))
    kwargs = {
        "wrong-secret": {"secret": "guess"},
        "stale": {"timestamp": str(int(time.time()) - 600)},
        "no-timestamp": {"timestamp": "", "signature": signature_for(SECRET, "", body.encode())},
        "body-changed": {"signature": signature_for(SECRET, now, b"{}"), "timestamp": now},
    }[tamper]
    response = post_events(client, body.encode(), **kwargs)
    assert response.status_code == 403
    assert Contact.objects.get().bounced_at is None


def test_without_a_configured_secret_the_endpoint_refuses_everything(client, settings):
    settings.NPS_DELIVERY_EVENTS_SECRET = ""
    response = post_events(client, {"events": []}, secret="")
    assert response.status_code == 403
    assert "no shared secret" in response.json()["errors"][0]


def test_bad_events_get_a_400_listing_them(client, secret):
    response = post_events(client, {"events": [{"type": "bounce", "email": "x"}]})
    assert response.status_code == 400
    assert response.json() == {"errors": ["Event 1: Not an email address: 'x'."]}
    assert post_events(client, b"not json").status_code == 400


def test_a_get_on_the_events_endpoint_is_not_allowed(client):
    assert client.get(reverse("delivery:events")).status_code == 405


# --- The command ----------------------------------------------------------------------------


def test_record_bounces_reads_a_csv_file(tmp_path, capsys):
    ContactFactory(email="anna@northwind.example")
    ContactFactory(email="ben@northwind.example")
    path = tmp_path / "events.csv"
    path.write_text(
        "type,email,bounce_type,reason,at\n"
        "bounce,anna@northwind.example,hard,550 user unknown,\n"
        "complaint,ben@northwind.example,,,2027-04-15T09:00:00+00:00\n"
    )
    call_command("record_bounces", str(path))
    assert "1 hard bounce(s) and 1 complaint(s) recorded" in capsys.readouterr().out
    anna, ben = Contact.objects.order_by("email")
    assert anna.bounce_reason == "550 user unknown"
    assert ben.complained_at == dt.datetime(2027, 4, 15, 9, 0, tzinfo=dt.UTC)


def test_record_bounces_dry_run_writes_nothing(tmp_path, capsys):
    ContactFactory(email="anna@northwind.example")
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"type": "bounce", "email": "anna@northwind.example"}]))
    call_command("record_bounces", str(path), "--dry-run")
    assert "(dry run: nothing written)" in capsys.readouterr().out
    assert Contact.objects.get().bounced_at is None


def test_record_bounces_rejects_a_bad_file_with_the_reasons(tmp_path, capsys):
    ContactFactory(email="anna@northwind.example")
    path = tmp_path / "events.json"
    path.write_text(json.dumps([{"type": "bounce", "email": "anna@northwind.example"}, {}]))
    with pytest.raises(CommandError, match="Nothing was recorded"):
        call_command("record_bounces", str(path))
    assert "Event 2: Unknown event type ''" in capsys.readouterr().err
    assert Contact.objects.get().bounced_at is None


# --- Delivery health ------------------------------------------------------------------------


@pytest.fixture
def busy_wave():
    wave = WaveFactory(program=ProgramFactory(name="Partner NPS"))
    statuses = ["sent"] * 6 + ["failed", "failed", "queued", "cancelled"]
    invitations = [
        InvitationFactory(wave=wave, status=s, sent_at=None if s != "sent" else wave.opens_at)
        for s in statuses
    ]
    Invitation.objects.filter(pk__in=[i.pk for i in invitations[6:8]]).update(
        last_error="SMTPRecipientsRefused: 550 no such user"
    )
    Invitation.objects.filter(pk__in=[i.pk for i in invitations[:3]]).update(reminders_sent=1)
    Invitation.objects.filter(pk=invitations[0].pk).update(reminders_sent=2)
    ResponseFactory(invitation=invitations[0], score=9)
    ResponseFactory(invitation=invitations[1], score=3)
    ResponseFactory(invitation=invitations[2], score=7)
    contacts = [i.contact_id for i in invitations]
    Contact.objects.filter(pk=contacts[3]).update(opted_out_at=wave.opens_at)
    Contact.objects.filter(pk=contacts[4]).update(bounced_at=wave.opens_at)
    Contact.objects.filter(pk=contacts[5]).update(complained_at=wave.opens_at)
    return wave


def test_the_wave_page_shows_every_figure_and_the_failure_reasons(client, cs_agent, busy_wave):
    client.force_login(cs_agent)
    response = client.get(reverse("delivery:wave", args=[busy_wave.pk]))
    assert response.status_code == 200
    wave = response.context["wave"]
    figures = {
        name: getattr(wave, name)
        for name in (
            "invited",
            "sent",
            "failed",
            "cancelled",
            "pending",
            "bounced",
            "complained",
            "opted_out",
            "reminded",
            "reminders",
            "responded",
        )
    }
    assert figures == {
        "invited": 10,
        "sent": 6,
        "failed": 2,
        "cancelled": 1,
        "pending": 1,
        "bounced": 1,
        "complained": 1,
        "opted_out": 1,
        "reminded": 3,
        "reminders": 4,
        "responded": 3,
    }
    assert response.context["rate"] == 50.0
    assert response.context["reasons"] == [
        {"last_error": "SMTPRecipientsRefused: 550 no such user", "n": 2}
    ]
    assert b"50.0% of emails sent" in response.content
    assert b"mail security scanners open every link" in response.content


def test_the_health_list_has_a_fixed_query_count(
    client, cs_agent, busy_wave, django_assert_num_queries
):
    for _ in range(3):
        wave = WaveFactory()
        InvitationFactory.create_batch(2, wave=wave)
    client.force_login(cs_agent)
    # session, user, the user's groups (role check), the paginator's count, one page of waves
    # with every figure aggregated in the same query.
    with django_assert_num_queries(5):
        response = client.get(reverse("delivery:health"))
    assert response.status_code == 200
    assert len(response.context["rows"]) == 4
    assert b"Partner NPS" in response.content


def test_the_wave_page_has_a_fixed_query_count(
    client, cs_agent, busy_wave, django_assert_num_queries
):
    client.force_login(cs_agent)
    # session, user, groups, the wave with its figures, the failure reasons.
    with django_assert_num_queries(5):
        assert client.get(reverse("delivery:wave", args=[busy_wave.pk])).status_code == 200


@pytest.mark.parametrize("page", ["list", "wave"])
def test_an_outsider_gets_403_and_an_anonymous_visitor_the_login_page(
    client, outsider, busy_wave, page
):
    url = (
        reverse("delivery:health")
        if page == "list"
        else reverse("delivery:wave", args=[busy_wave.pk])
    )
    response = client.get(url)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    client.force_login(outsider)
    assert client.get(url).status_code == 403


def test_an_unknown_wave_is_a_404(client, cs_agent):
    client.force_login(cs_agent)
    assert client.get(reverse("delivery:wave", args=[999])).status_code == 404
