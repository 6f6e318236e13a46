"""Partners and contacts: admins write, the customer-success team reads."""

import pytest

from surveys.models import Contact, Partner
from tests.api.conftest import error
from tests.factories import ContactFactory, PartnerFactory

pytestmark = pytest.mark.django_db

PARTNERS = "/api/v1/partners/"
CONTACTS = "/api/v1/contacts/"
BULK = "/api/v1/contacts/bulk-upsert/"


def test_partner_list_query_budget_does_not_grow(api, cs_agent, django_assert_num_queries):
    PartnerFactory.create_batch(20, account_owner=cs_agent)
    client = api(cs_agent)
    # groups (the role check), count, the page with tier, type and owner joined.
    with django_assert_num_queries(3):
        answer = client.get(PARTNERS)
    assert answer.json()["count"] == 20


def test_admin_creates_a_partner_matching_tier_and_type_case_insensitively(
    api, admin_user, cs_manager
):
    answer = api(admin_user).post(
        PARTNERS,
        {
            "name": "  Acme Networks ",
            "tier": "gold",
            "partner_type": "RESELLER",
            "region": "EMEA",
            "account_owner_email": "MARIA@example.com",
        },
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert (body["name"], body["tier"], body["partner_type"]) == (
        "Acme Networks",
        "Gold",
        "Reseller",
    )
    assert body["account_owner"] == {
        "id": cs_manager.pk,
        "username": "maria",
        "email": "maria@example.com",
    }
    assert "account_owner_email" not in body
    assert Partner.objects.get().account_owner == cs_manager


def test_cs_agent_cannot_create_a_partner(api, cs_agent):
    answer = api(cs_agent).post(PARTNERS, {"name": "X", "tier": "Gold", "partner_type": "Reseller"})
    assert answer.status_code == 403
    assert error(answer)["message"] == "Only an admin can change this."
    assert Partner.objects.count() == 0


def test_bad_partner_input_is_400_with_field_messages_and_writes_nothing(api, admin_user):
    answer = api(admin_user).post(
        PARTNERS,
        {"name": "", "tier": "Diamond", "partner_type": 7, "account_owner_email": "nobody@x.org"},
    )
    assert answer.status_code == 400
    err = error(answer)
    assert err["code"] == "invalid"
    assert err["fields"] == {
        "name": ["This field may not be blank."],
        "tier": ["Unknown tier “Diamond”. Choose one of: Registered, Silver, Gold, Platinum."],
        "partner_type": ["Give the name as text."],
        "account_owner_email": ["No active customer-success user has the email “nobody@x.org”."],
    }
    assert err["message"] == (
        "Some fields are invalid: name, tier, partner_type, account_owner_email."
    )
    assert Partner.objects.count() == 0


def test_duplicate_partner_name_is_400(api, admin_user):
    PartnerFactory(name="Acme Networks")
    answer = api(admin_user).post(
        PARTNERS, {"name": "Acme Networks", "tier": "Gold", "partner_type": "Reseller"}
    )
    assert answer.status_code == 400
    assert error(answer)["fields"] == {"name": ["partner with this name already exists."]}


def test_admin_updates_and_deactivates_a_partner(api, admin_user):
    partner = PartnerFactory(name="Acme Networks")
    client = api(admin_user)
    answer = client.patch(f"{PARTNERS}{partner.pk}/", {"tier": "Platinum", "region": "APAC"})
    assert answer.status_code == 200
    assert (answer.json()["tier"], answer.json()["region"]) == ("Platinum", "APAC")
    assert client.delete(f"{PARTNERS}{partner.pk}/").status_code == 204
    partner.refresh_from_db()
    assert (partner.is_active, partner.tier.name) == (False, "Platinum")
    assert client.get(f"{PARTNERS}?is_active=false").json()["count"] == 1


def test_partner_filters(api, cs_agent):
    PartnerFactory(name="Acme Networks", region="EMEA")
    PartnerFactory(name="Bolt Systems", region="APAC")
    client = api(cs_agent)
    names = lambda q: [p["name"] for p in client.get(PARTNERS + q).json()["results"]]  # noqa: E731
    assert names("?region=apac") == ["Bolt Systems"]
    assert names("?name=acme") == ["Acme Networks"]
    assert names("?ordering=-name") == ["Bolt Systems", "Acme Networks"]
    answer = client.get(PARTNERS + "?account_owner=sam")
    assert answer.status_code == 400
    assert error(answer)["fields"] == {"account_owner": ["Enter a whole number."]}


def test_admin_creates_a_contact_with_a_lower_cased_email(api, admin_user):
    partner = PartnerFactory()
    answer = api(admin_user).post(
        CONTACTS,
        {"partner": partner.pk, "name": "Jo Lee", "email": "Jo.Lee@Acme.example", "language": "DE"},
    )
    assert answer.status_code == 201, answer.json()
    assert (answer.json()["email"], answer.json()["language"]) == ("jo.lee@acme.example", "de")


def test_bad_contact_input_names_each_field(api, admin_user):
    answer = api(admin_user).post(
        CONTACTS, {"partner": 999999, "name": "Jo", "email": "not-an-email", "language": "xx"}
    )
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "partner": ['Invalid pk "999999" - object does not exist.'],
        "email": ["Enter a valid email address."],
        "language": ["“xx” is not an ISO 639-1 language code (e.g. en, de, fr)."],
    }


def test_bulk_upsert_creates_updates_and_leaves_equal_rows_alone(api, admin_user):
    partner = PartnerFactory()
    ContactFactory(partner=partner, name="Old Name", email="a@acme.example")
    ContactFactory(partner=partner, name="Same", email="b@acme.example", language="en")
    answer = api(admin_user).post(
        BULK,
        {
            "contacts": [
                {"partner": partner.pk, "name": "New Name", "email": "A@acme.example"},
                {"partner": partner.pk, "name": "Same", "email": "b@acme.example"},
                {"partner": partner.pk, "name": "Cy", "email": "c@acme.example", "language": "fr"},
            ]
        },
    )
    assert answer.status_code == 200, answer.json()
    assert answer.json() == {"created": 1, "updated": 1, "unchanged": 1}
    assert Contact.objects.get(email="a@acme.example").name == "New Name"
    assert Contact.objects.get(email="c@acme.example").language == "fr"


def test_bulk_upsert_with_one_bad_row_writes_nothing_and_names_the_row(api, admin_user):
    partner = PartnerFactory()
    answer = api(admin_user).post(
        BULK,
        {
            "contacts": [
                {"partner": partner.pk, "name": "Ok", "email": "ok@acme.example"},
                {"partner": partner.pk, "name": "Bad", "email": "bad@"},
            ]
        },
    )
    assert answer.status_code == 400
    err = error(answer)
    # Only the bad rows, by their index in the request (counting from 0).
    assert err["fields"] == {"contacts": {"1": {"email": ["Enter a valid email address."]}}}
    assert err["message"] == "contacts: 1: email: Enter a valid email address."
    assert Contact.objects.count() == 0


def test_bulk_upsert_refuses_repeated_emails_and_wrong_types(api, admin_user):
    partner = PartnerFactory()
    row = {"partner": partner.pk, "name": "Jo", "email": "jo@acme.example"}
    client = api(admin_user)
    answer = client.post(BULK, {"contacts": [row, {**row, "email": "JO@acme.example"}]})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "contacts": ["Each email may appear once; repeated: jo@acme.example."]
    }
    answer = client.post(BULK, {"contacts": "jo@acme.example"})
    assert answer.status_code == 400
    assert error(answer)["fields"]["contacts"] == {
        "non_field_errors": ['Expected a list of items but got type "str".']
    }
    assert client.post(BULK, {"contacts": []}).status_code == 400


def test_cs_agent_cannot_bulk_upsert(api, cs_agent):
    answer = api(cs_agent).post(BULK, {"contacts": []})
    assert answer.status_code == 403
