"""The surveys admin: who gets in, the pages load, the CSV import view, and no token hashes."""

import datetime as dt

import pytest
import time_machine
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from nps_project import roles
from surveys.importing import HEADER
from surveys.models import Contact, InvitationToken, Partner, PartnerType, Tier
from surveys.tokens import hash_token, new_token
from tests.factories import (
    ContactFactory,
    InvitationFactory,
    PartnerFactory,
    ProgramFactory,
    ResponseFactory,
    UserFactory,
    WaveFactory,
)

pytestmark = pytest.mark.django_db

IMPORT_URL = reverse("admin:surveys_partner_import")
MODELS = ["tier", "partnertype", "partner", "contact", "program", "wave", "invitation", "response"]

ROW = "Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,jan@acme.example,en"


@pytest.fixture
def staff_manager(db):
    """Staff (may log in to the admin) but not in the Admin group: may not configure."""
    return UserFactory(username="mona", role=roles.CS_MANAGER, is_staff=True)


@pytest.fixture
def group_admin(db):
    """In the Admin group, not a superuser."""
    return UserFactory(username="adele", role=roles.ADMIN, is_staff=True)


@pytest.fixture
def records(db):
    response = ResponseFactory()
    return {
        "tier": Tier.objects.get(name="Gold"),
        "partnertype": PartnerType.objects.get(name="MSP"),
        "partner": response.partner,
        "contact": response.contact,
        "program": response.program,
        "wave": response.wave,
        "invitation": response.invitation,
        "response": response,
    }


def upload(text: str, name: str = "partners.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


# --- Who gets in ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_admin_user_can_open_every_list_and_change_page(client, admin_user, records, model):
    client.force_login(admin_user)

    assert client.get(reverse(f"admin:surveys_{model}_changelist")).status_code == 200
    change = reverse(f"admin:surveys_{model}_change", args=[records[model].pk])
    assert client.get(change).status_code == 200


@pytest.mark.parametrize("model", ["tier", "partnertype", "partner", "contact", "program"])
def test_admin_user_can_open_the_add_pages(client, admin_user, model):
    client.force_login(admin_user)

    assert client.get(reverse(f"admin:surveys_{model}_add")).status_code == 200


@pytest.mark.parametrize("model", ["wave", "invitation", "response"])
def test_waves_invitations_and_responses_cannot_be_added_by_hand(client, admin_user, model):
    client.force_login(admin_user)

    assert client.get(reverse(f"admin:surveys_{model}_add")).status_code == 403


def test_the_admin_group_may_configure_without_model_permissions(client, group_admin, records):
    client.force_login(group_admin)

    assert client.get(reverse("admin:surveys_program_changelist")).status_code == 200
    assert client.get(IMPORT_URL).status_code == 200


@pytest.mark.parametrize("persona", ["outsider", "cs_agent"])
@pytest.mark.parametrize("model", MODELS)
def test_non_staff_are_sent_to_the_admin_login(client, request, persona, model):
    client.force_login(request.getfixturevalue(persona))
    url = reverse(f"admin:surveys_{model}_changelist")

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={url}"


def test_anonymous_visitors_are_sent_to_the_admin_login(client):
    response = client.get(reverse("admin:surveys_partner_changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_a_role_grant_see_no_surveys_admin(client, staff_manager):
    client.force_login(staff_manager)

    assert client.get(reverse("admin:surveys_partner_changelist")).status_code == 403


# --- Lists ------------------------------------------------------------------------------------


def test_the_partner_list_links_to_the_import(client, admin_user):
    PartnerFactory(name="Bluepeak Systems")
    client.force_login(admin_user)

    page = client.get(reverse("admin:surveys_partner_changelist")).content.decode()

    assert f'href="{IMPORT_URL}"' in page
    assert "Import partners (CSV)" in page
    assert "Bluepeak Systems" in page


def test_the_partner_list_query_count_does_not_grow(client, admin_user, django_assert_num_queries):
    for partner in PartnerFactory.create_batch(25, account_owner=admin_user):
        ContactFactory.create_batch(2, partner=partner)
    client.force_login(admin_user)

    # session, user; the filters' tiers, types and owners; the filtered and the full count; the
    # page (tier, type and owner joined, contacts counted in a subquery); the filter's regions.
    with django_assert_num_queries(9):
        response = client.get(reverse("admin:surveys_partner_changelist"))

    assert response.status_code == 200
    assert {p.contact_count for p in response.context["cl"].result_list} == {2}


def test_the_wave_list_counts_invitations_and_responses_in_one_query(
    client, admin_user, django_assert_num_queries
):
    wave = WaveFactory(label="2026 Q2")
    InvitationFactory.create_batch(3, wave=wave)
    ResponseFactory(invitation=InvitationFactory(wave=wave))
    for weeks in range(1, 10):
        opens_at = wave.opens_at - dt.timedelta(weeks=13 * weeks)
        InvitationFactory(wave=WaveFactory(program=wave.program, opens_at=opens_at))
    client.force_login(admin_user)

    # session, user, the programs of the list filter, the filtered and the full count, and
    # the page itself (program joined, the two counts as correlated subqueries).
    with django_assert_num_queries(6):
        response = client.get(reverse("admin:surveys_wave_changelist"))

    assert response.status_code == 200
    row = next(r for r in response.context["cl"].result_list if r.pk == wave.pk)
    assert (row.invitation_count, row.response_count) == (4, 1)


def test_the_contact_list_filters_opted_out_contacts(client, admin_user):
    ContactFactory(email="out@acme.example", opted_out_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    ContactFactory(email="in@acme.example")
    client.force_login(admin_user)

    page = client.get(
        reverse("admin:surveys_contact_changelist"), {"opted_out_at__isempty": "0"}
    ).content.decode()

    assert "out@acme.example" in page
    assert "in@acme.example" not in page


def test_the_contact_search_finds_by_email(client, admin_user):
    ContactFactory(email="anna.schmidt@northwind.example")
    ContactFactory(email="ben@bluepeak.example")
    client.force_login(admin_user)

    page = client.get(reverse("admin:surveys_contact_changelist"), {"q": "northwind"}).content

    assert b"anna.schmidt@northwind.example" in page
    assert b"ben@bluepeak.example" not in page


def test_the_contact_form_lower_cases_the_email_and_rejects_a_duplicate(client, admin_user):
    partner = PartnerFactory()
    ContactFactory(email="anna@northwind.example")
    client.force_login(admin_user)
    url = reverse("admin:surveys_contact_add")
    data = {"partner": partner.pk, "name": "Anna", "language": "de", "is_active": "on"}

    duplicate = client.post(url, {**data, "email": "ANNA@Northwind.example"})
    created = client.post(url, {**data, "email": "Ben@Northwind.Example"})

    assert "Another contact already has the email anna@northwind.example." in (
        duplicate.content.decode()
    )
    assert created.status_code == 302
    assert Contact.objects.filter(email="ben@northwind.example").exists()


def test_the_invitation_page_never_shows_a_token_or_its_hash(client, admin_user):
    invitation = InvitationFactory()
    token = new_token()
    InvitationToken.objects.create(invitation=invitation, token_hash=hash_token(token))
    client.force_login(admin_user)

    for url in (
        reverse("admin:surveys_invitation_change", args=[invitation.pk]),
        reverse("admin:surveys_invitation_changelist"),
    ):
        page = client.get(url).content.decode()
        assert hash_token(token) not in page
        assert token not in page


def test_the_invitation_search_finds_by_contact_email(client, admin_user):
    InvitationFactory(contact=ContactFactory(email="anna@northwind.example"))
    InvitationFactory(contact=ContactFactory(email="ben@bluepeak.example"))
    client.force_login(admin_user)

    page = client.get(reverse("admin:surveys_invitation_changelist"), {"q": "anna@"}).content

    assert b"anna@northwind.example" in page
    assert b"ben@bluepeak.example" not in page


# --- Programs ---------------------------------------------------------------------------------


@time_machine.travel(dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC), tick=False)
def test_the_program_page_shows_the_next_four_wave_dates(client, admin_user):
    program = ProgramFactory(
        name="Partner NPS", time_zone="Europe/Berlin", anchor_month=1, anchor_day=15, send_hour=9
    )
    client.force_login(admin_user)

    page = client.get(reverse("admin:surveys_program_change", args=[program.pk])).content.decode()

    # 09:00 in Berlin is 07:00 UTC in summer (CEST) and 08:00 UTC in winter (CET).
    for line in [
        "Wed 15 Jul 2026, 09:00 Europe/Berlin (2026-07-15 07:00 UTC)",
        "Thu 15 Oct 2026, 09:00 Europe/Berlin (2026-10-15 07:00 UTC)",
        "Fri 15 Jan 2027, 09:00 Europe/Berlin (2027-01-15 08:00 UTC)",
        "Thu 15 Apr 2027, 09:00 Europe/Berlin (2027-04-15 07:00 UTC)",
    ]:
        assert f"<li>{line}</li>" in page
    assert "2026-04-15" not in page  # the past wave is not "next"


def test_the_program_form_rejects_a_bad_cadence_with_the_models_messages(client, admin_user):
    program = ProgramFactory(name="Partner NPS")
    client.force_login(admin_user)
    url = reverse("admin:surveys_program_change", args=[program.pk])
    data = {
        "name": "Partner NPS",
        "is_active": "on",
        "sender_name": "Partner Program",
        "subject": "How likely?",
        "question": "How likely?",
        "why_prompt": "Why?",
        "regions": "[]",
        "frequency": "3",
        "anchor_month": "1",
        "anchor_day": "31",
        "send_hour": "9",
        "time_zone": "Mars/Olympus",
        "starts_on": "2026-01-01",
        "response_window_days": "14",
        "reminder_days": "[4, 9]",
        "max_reminders": "2",
        "throttle_days": "60",
    }

    page = client.post(url, data).content.decode()

    assert "Choose a day from 1 to 28, so every month has it." in page
    assert "Unknown time zone" in page
    program.refresh_from_db()
    assert (program.anchor_day, program.time_zone) == (15, "UTC")


# --- Re-subscribe -----------------------------------------------------------------------------


def test_an_admin_can_resubscribe_contacts_and_it_is_logged(client, admin_user):
    opted_out = ContactFactory(opted_out_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    subscribed = ContactFactory()
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:surveys_contact_changelist"),
        {"action": "resubscribe", "_selected_action": [opted_out.pk, subscribed.pk]},
        follow=True,
    )

    opted_out.refresh_from_db()
    assert opted_out.opted_out_at is None
    assert "Re-subscribed 1 contact(s); 1 were not opted out." in response.content.decode()
    entry = LogEntry.objects.get(object_id=str(opted_out.pk))
    assert (entry.action_flag, entry.user, entry.change_message) == (
        CHANGE,
        admin_user,
        "Re-subscribed: cleared the opt-out.",
    )


def test_staff_outside_the_admin_group_cannot_resubscribe(client, staff_manager):
    from django.contrib.auth.models import Permission

    staff_manager.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_contact", "change_contact"])
    )
    opted_out = ContactFactory(opted_out_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    client.force_login(staff_manager)
    url = reverse("admin:surveys_contact_changelist")

    assert b"resubscribe" not in client.get(url).content
    client.post(url, {"action": "resubscribe", "_selected_action": [opted_out.pk]})

    opted_out.refresh_from_db()
    assert opted_out.opted_out_at is not None
    assert not LogEntry.objects.exists()


# --- The import view --------------------------------------------------------------------------


def test_the_import_page_loads_for_an_admin(client, admin_user):
    client.force_login(admin_user)

    response = client.get(IMPORT_URL)

    assert response.status_code == 200
    assert HEADER in response.content.decode()


def test_the_import_view_imports_and_shows_the_counts(client, admin_user):
    client.force_login(admin_user)

    response = client.post(IMPORT_URL, {"file": upload(f"{HEADER}\n{ROW}\n")})

    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["report"].contacts_created == 1
    assert "Imported partners: partners: 1 created" in page
    assert Partner.objects.get().name == "Acme Ltd"


def test_the_import_view_lists_bad_rows_with_line_numbers_and_writes_nothing(client, admin_user):
    client.force_login(admin_user)
    text = f"{HEADER}\n{ROW}\nZeta,Diamond,EMEA,Reseller,,Zed,zed@zeta,en\n"

    page = client.post(IMPORT_URL, {"file": upload(text)}).content.decode()

    assert "Nothing was imported: 2 problems found." in page
    assert "<td>3</td><td>unknown tier &#x27;Diamond&#x27;; valid tiers:" in page
    assert "<td>3</td><td>contact_email &#x27;zed@zeta&#x27; is not a valid email" in page
    assert not Partner.objects.exists()


def test_the_import_view_dry_run_writes_nothing(client, admin_user):
    client.force_login(admin_user)

    response = client.post(IMPORT_URL, {"file": upload(f"{HEADER}\n{ROW}\n"), "dry_run": "on"})

    assert "Dry run: nothing was written" in response.content.decode()
    assert response.context["report"].partners_created == 1
    assert not Partner.objects.exists()


def test_the_import_view_rejects_a_file_that_is_not_utf8(client, admin_user):
    client.force_login(admin_user)
    latin1 = SimpleUploadedFile(
        "p.csv", f"{HEADER}\nCaf\xe9,Gold,EMEA,MSP,,A,a@b.example,fr".encode("latin-1")
    )

    page = client.post(IMPORT_URL, {"file": latin1}).content.decode()

    assert "The file is not UTF-8 text" in page
    assert not Partner.objects.exists()


def test_the_import_view_requires_a_file(client, admin_user):
    client.force_login(admin_user)

    page = client.post(IMPORT_URL, {}).content.decode()

    assert "This field is required." in page


def test_staff_outside_the_admin_group_get_403_from_the_import(client, staff_manager):
    client.force_login(staff_manager)

    assert client.get(IMPORT_URL).status_code == 403
    assert client.post(IMPORT_URL, {"file": upload(f"{HEADER}\n{ROW}\n")}).status_code == 403
    assert not Partner.objects.exists()


@pytest.mark.parametrize("persona", ["outsider", "cs_agent"])
def test_non_staff_are_sent_from_the_import_to_the_admin_login(client, request, persona):
    client.force_login(request.getfixturevalue(persona))

    response = client.post(IMPORT_URL, {"file": upload(f"{HEADER}\n{ROW}\n")})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not Partner.objects.exists()
