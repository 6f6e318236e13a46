"""The admin writes partners and contacts through the services the API and the CSV import use
(``surveys.services``): the same checks, with the same messages, shown on the form before
anything is saved, and the same writes (text stripped, emails lower-cased and unique in any
letter case, owners on the customer-success team, nothing touched when nothing changed)."""

import datetime as dt

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.urls import reverse
from django.utils import timezone

from nps_project import roles
from surveys.models import Contact, Partner, PartnerType, Tier
from tests.factories import ContactFactory, PartnerFactory, UserFactory

pytestmark = pytest.mark.django_db

PARTNER_ADD = reverse("admin:surveys_partner_add")
CONTACT_ADD = reverse("admin:surveys_contact_add")


def partner_change(partner) -> str:
    return reverse("admin:surveys_partner_change", args=[partner.pk])


def contact_change(contact) -> str:
    return reverse("admin:surveys_contact_change", args=[contact.pk])


def partner_form(*, contacts=(), initial=0, **fields) -> dict:
    """POST data of the partner page: its fields and the contact rows (dicts)."""
    data = {
        "name": "Northwind Traders",
        "tier": Tier.objects.get(name="Gold").pk,
        "partner_type": PartnerType.objects.get(name="Reseller").pk,
        "region": "EMEA",
        "account_owner": "",
        "is_active": "on",
        "contacts-TOTAL_FORMS": str(len(contacts)),
        "contacts-INITIAL_FORMS": str(initial),
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for index, row in enumerate(contacts):
        for key, value in {"language": "en", "is_active": "on", **row}.items():
            data[f"contacts-{index}-{key}"] = value
    return data


def contact_form(partner, **fields) -> dict:
    return {
        "partner": partner.pk,
        "name": "Anna Berg",
        "email": "anna@northwind.example",
        "language": "en",
        "is_active": "on",
        **fields,
    }


def errors_of(answer) -> str:
    """Every error message on the re-rendered page: the form's, and each contact row's."""
    assert answer.status_code == 200, answer
    messages = [str(error) for error in answer.context["errors"]]
    for formset in answer.context["inline_admin_formsets"]:
        messages += [str(error) for error in formset.formset.non_form_errors()]
        messages += [str(form.errors) for form in formset.formset.forms]
    return " ".join(messages)


@pytest.fixture
def ada(client, admin_user):
    client.force_login(admin_user)
    return client


# --- Partners --------------------------------------------------------------------------------


def test_adding_a_partner_strips_its_name_and_logs_the_addition(ada, admin_user):
    answer = ada.post(PARTNER_ADD, partner_form(name="  Northwind Traders  ", region=" EMEA "))

    assert answer.status_code == 302
    partner = Partner.objects.get()
    assert (partner.name, partner.region) == ("Northwind Traders", "EMEA")
    entry = LogEntry.objects.get(object_id=str(partner.pk))
    assert (entry.action_flag, entry.user_id) == (ADDITION, admin_user.pk)
    assert answer["Location"] == reverse("admin:surveys_partner_changelist")


def test_a_partner_name_taken_in_another_letter_case_is_refused_with_the_services_message(ada):
    PartnerFactory(name="Northwind Traders")

    answer = ada.post(PARTNER_ADD, partner_form(name="NORTHWIND traders"))

    assert "A partner named “NORTHWIND traders” already exists." in errors_of(answer)
    assert Partner.objects.count() == 1


def test_an_account_owner_off_the_customer_success_team_is_refused(ada):
    outsider = UserFactory(username="otto")

    answer = ada.post(PARTNER_ADD, partner_form(account_owner=outsider.pk))

    assert "otto is not on the customer-success team." in errors_of(answer)
    assert not Partner.objects.exists()


def test_an_inactive_customer_success_owner_is_accepted_as_the_import_does(ada):
    owner = UserFactory(username="sam", role=roles.CS_STAFF, is_active=False)

    assert ada.post(PARTNER_ADD, partner_form(account_owner=owner.pk)).status_code == 302
    assert Partner.objects.get().account_owner == owner


def test_a_name_with_a_control_character_is_refused(ada):
    answer = ada.post(PARTNER_ADD, partner_form(name="North\x07wind"))

    assert "Remove the control characters (such as line breaks or tabs)." in errors_of(answer)


def test_saving_a_partner_unchanged_writes_nothing(ada):
    partner = PartnerFactory(name="Northwind Traders", region="EMEA")
    long_ago = timezone.now() - dt.timedelta(days=30)
    Partner.objects.filter(pk=partner.pk).update(updated_at=long_ago)

    answer = ada.post(partner_change(partner), partner_form())

    assert answer.status_code == 302
    partner.refresh_from_db()
    assert partner.updated_at == long_ago


def test_changing_a_partner_updates_only_what_changed_and_logs_it(ada, admin_user):
    partner = PartnerFactory(name="Northwind Traders", region="EMEA")

    answer = ada.post(partner_change(partner), partner_form(region="APAC", is_active=""))

    assert answer.status_code == 302
    partner.refresh_from_db()
    assert (partner.region, partner.is_active) == ("APAC", False)
    entry = LogEntry.objects.get(object_id=str(partner.pk))
    assert entry.action_flag == CHANGE
    assert "Region" in entry.get_change_message() and "Is active" in entry.get_change_message()


# --- Contacts on the partner page ------------------------------------------------------------


def test_a_new_partner_and_its_contacts_are_saved_together(ada):
    answer = ada.post(
        PARTNER_ADD,
        partner_form(
            contacts=[
                {"name": " Anna Berg ", "email": " Anna.Berg@Northwind.Example "},
                {"name": "Ben Ode", "email": "ben@northwind.example", "language": "DE"},
            ]
        ),
    )

    assert answer.status_code == 302
    partner = Partner.objects.get()
    assert sorted(partner.contacts.values_list("name", "email", "language")) == [
        ("Anna Berg", "anna.berg@northwind.example", "en"),
        ("Ben Ode", "ben@northwind.example", "de"),
    ]


def test_a_contact_row_with_another_contacts_email_refuses_the_whole_page(ada):
    ContactFactory(email="anna@northwind.example")

    answer = ada.post(
        PARTNER_ADD,
        partner_form(contacts=[{"name": "Anna", "email": "ANNA@northwind.example"}]),
    )

    assert "Another contact already has the email anna@northwind.example." in errors_of(answer)
    assert not Partner.objects.filter(name="Northwind Traders").exists()


def test_two_rows_with_one_email_in_different_cases_are_refused(ada):
    answer = ada.post(
        PARTNER_ADD,
        partner_form(
            contacts=[
                {"name": "Anna", "email": "anna@northwind.example"},
                {"name": "Anna again", "email": "ANNA@Northwind.example"},
            ]
        ),
    )

    assert "Row 1 has this email address too." in errors_of(answer)
    assert not Contact.objects.exists()


def test_a_contact_row_with_an_unknown_language_is_refused(ada):
    answer = ada.post(
        PARTNER_ADD,
        partner_form(contacts=[{"name": "Anna", "email": "anna@x.example", "language": "xx"}]),
    )

    assert "“xx” is not an ISO 639-1 language code (two letters, e.g. en, de, fr)." in (
        errors_of(answer)
    )
    assert not Partner.objects.exists()


def test_editing_a_contact_row_goes_through_contact_update(ada):
    partner = PartnerFactory(name="Northwind Traders", region="EMEA")
    anna = ContactFactory(partner=partner, name="Anna", email="anna@northwind.example")
    ben = ContactFactory(partner=partner, name="Ben", email="ben@northwind.example")
    long_ago = timezone.now() - dt.timedelta(days=30)
    Contact.objects.update(updated_at=long_ago)
    rows = [
        {"id": anna.pk, "partner": partner.pk, "name": "Anna", "email": "ANNA.B@Northwind.example"},
        {"id": ben.pk, "partner": partner.pk, "name": "Ben", "email": "ben@northwind.example"},
    ]

    answer = ada.post(partner_change(partner), partner_form(contacts=rows, initial=2))

    assert answer.status_code == 302
    anna.refresh_from_db()
    ben.refresh_from_db()
    assert anna.email == "anna.b@northwind.example"
    assert anna.updated_at > long_ago
    assert ben.updated_at == long_ago  # unchanged row: not written


# --- The contact page ------------------------------------------------------------------------


def test_adding_a_contact_stores_the_email_lower_cased_and_the_name_stripped(ada):
    partner = PartnerFactory()

    answer = ada.post(
        CONTACT_ADD, contact_form(partner, name="  Anna Berg ", email=" Anna@Northwind.Example ")
    )

    assert answer.status_code == 302
    assert Contact.objects.values_list("name", "email").get() == (
        "Anna Berg",
        "anna@northwind.example",
    )


def test_a_contact_email_taken_in_another_case_is_refused(ada):
    ContactFactory(email="anna@northwind.example")
    partner = PartnerFactory()

    answer = ada.post(CONTACT_ADD, contact_form(partner, email="Anna@NORTHWIND.example"))

    assert "Another contact already has the email anna@northwind.example." in errors_of(answer)
    assert Contact.objects.count() == 1


def test_a_contact_language_that_is_not_iso_639_1_is_refused(ada):
    answer = ada.post(CONTACT_ADD, contact_form(PartnerFactory(), language="english"))

    assert "“english” is not an ISO 639-1 language code" in errors_of(answer)
    assert not Contact.objects.exists()


def test_a_contact_keeps_its_own_email_when_saved_again(ada):
    contact = ContactFactory(email="anna@northwind.example")
    long_ago = timezone.now() - dt.timedelta(days=30)
    Contact.objects.update(updated_at=long_ago)

    answer = ada.post(
        contact_change(contact),
        contact_form(contact.partner, name=contact.name, email="ANNA@northwind.example"),
    )

    assert answer.status_code == 302
    contact.refresh_from_db()
    assert contact.email == "anna@northwind.example"
    assert contact.updated_at == long_ago  # the same email in another case changes nothing


def test_moving_a_contact_to_another_partner(ada):
    contact = ContactFactory(email="anna@northwind.example")
    other = PartnerFactory(name="Contoso")

    answer = ada.post(
        contact_change(contact), contact_form(other, name=contact.name, email=contact.email)
    )

    assert answer.status_code == 302
    contact.refresh_from_db()
    assert contact.partner == other


def test_an_admin_marks_a_key_contact_and_filters_the_list_by_it(ada):
    contact = ContactFactory(email="anna@northwind.example")

    answer = ada.post(
        contact_change(contact),
        contact_form(contact.partner, name=contact.name, email=contact.email, is_key="on"),
    )

    assert answer.status_code == 302
    contact.refresh_from_db()
    assert contact.is_key
    listed = ada.get(reverse("admin:surveys_contact_changelist") + "?is_key__exact=1")
    assert contact.email in listed.content.decode()
