"""The maintenance services the API and the CSV import call: partners, contacts and programs
(``surveys.services``) and editing a change (``followups.services``). Each checks everything,
refuses with a message per field and writes nothing; an update without a difference does not
touch the row."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError

from followups import services as followup_services
from followups.models import Change
from surveys import services
from surveys.models import Contact, Partner, PartnerType, Program, Tier
from tests.factories import ChangeFactory, ContactFactory, PartnerFactory, ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold():
    return Tier.objects.get(name="Gold")


@pytest.fixture
def reseller():
    return PartnerType.objects.get(name="Reseller")


def messages(excinfo) -> dict:
    return excinfo.value.message_dict


# --- Partners -------------------------------------------------------------------------------


def test_partner_create_strips_the_name_and_sets_the_owner(gold, reseller, cs_manager):
    partner = services.partner_create(
        name="  Acme Networks ", tier=gold, partner_type=reseller, account_owner=cs_manager
    )
    assert (partner.name, partner.region, partner.account_owner, partner.is_active) == (
        "Acme Networks",
        "",
        cs_manager,
        True,
    )


def test_partner_create_refuses_every_bad_field_at_once_and_writes_nothing(
    gold, reseller, outsider
):
    PartnerFactory(name="Acme Networks")
    with pytest.raises(ValidationError) as excinfo:
        services.partner_create(
            name="ACME networks",
            tier=None,
            partner_type=reseller,
            region="EMEA\nAPAC",
            account_owner=outsider,
        )
    assert messages(excinfo) == {
        "name": ["A partner named “ACME networks” already exists."],
        "tier": ["Choose a tier."],
        "region": ["Remove the control characters (such as line breaks or tabs)."],
        "account_owner": ["otto is not on the customer-success team."],
    }
    assert Partner.objects.count() == 1


def test_partner_name_must_not_be_blank_or_too_long(gold, reseller):
    with pytest.raises(ValidationError) as excinfo:
        services.partner_create(name="   ", tier=gold, partner_type=reseller)
    assert messages(excinfo) == {"name": ["Give the partner a name."]}
    with pytest.raises(ValidationError) as excinfo:
        services.partner_create(name="x" * 201, tier=gold, partner_type=reseller)
    assert messages(excinfo) == {"name": ["Use at most 200 characters."]}


def test_partner_update_changes_only_the_given_fields_and_none_removes_the_owner(cs_agent):
    partner = PartnerFactory(region="EMEA", account_owner=cs_agent)
    updated = services.partner_update(partner_id=partner.pk, region="APAC", account_owner=None)
    partner.refresh_from_db()
    assert (partner.name, partner.region, partner.account_owner) == (
        updated.name,
        "APAC",
        None,
    )


def test_partner_update_without_a_difference_does_not_touch_the_row():
    with time_machine.travel(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), tick=False):
        partner = PartnerFactory(name="Acme", region="EMEA")
    services.partner_update(partner_id=partner.pk, name="Acme", region=" EMEA ")
    partner.refresh_from_db()
    assert partner.updated_at == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_a_partner_may_take_its_own_name_in_another_case():
    partner = PartnerFactory(name="ACME LTD")
    services.partner_update(partner_id=partner.pk, name="Acme Ltd")
    partner.refresh_from_db()
    assert partner.name == "Acme Ltd"


def test_deactivating_twice_is_a_noop_the_second_time():
    partner = PartnerFactory()
    assert services.partner_deactivate(partner_id=partner.pk) is True
    assert services.partner_deactivate(partner_id=partner.pk) is False
    partner.refresh_from_db()
    assert partner.is_active is False


# --- Contacts -------------------------------------------------------------------------------


def test_contact_create_lower_cases_the_email_and_refuses_one_taken_in_any_case():
    partner = PartnerFactory()
    contact = services.contact_create(
        partner=partner, name="Jo Lee", email=" Jo@Acme.Example ", language="DE", is_key=True
    )
    assert (contact.email, contact.language, contact.is_key) == ("jo@acme.example", "de", True)
    with pytest.raises(ValidationError) as excinfo:
        services.contact_create(partner=partner, name="Jo Again", email="JO@acme.example")
    assert messages(excinfo) == {
        "email": ["Another contact already has the email jo@acme.example."]
    }


def test_contact_create_names_every_bad_field():
    with pytest.raises(ValidationError) as excinfo:
        services.contact_create(partner=None, name="", email="not-an-email", language="xx")
    assert messages(excinfo) == {
        "partner": ["Choose the contact's partner."],
        "name": ["Give the contact's name."],
        "email": ["Enter a valid email address."],
        "language": ["“xx” is not an ISO 639-1 language code (two letters, e.g. en, de, fr)."],
    }
    assert Contact.objects.count() == 0


def test_contact_update_moves_a_contact_and_keeps_its_opt_out():
    contact = ContactFactory(opted_out_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    other = PartnerFactory()
    services.contact_update(contact_id=contact.pk, partner=other, name="Jo Lee")
    contact.refresh_from_db()
    assert (contact.partner, contact.name, contact.opted_out_at) == (
        other,
        "Jo Lee",
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )


def test_contact_update_refuses_another_contacts_email():
    ContactFactory(email="taken@acme.example")
    contact = ContactFactory()
    with pytest.raises(ValidationError) as excinfo:
        services.contact_update(contact_id=contact.pk, email="TAKEN@acme.example")
    assert messages(excinfo) == {
        "email": ["Another contact already has the email taken@acme.example."]
    }


def test_contacts_upsert_creates_updates_and_counts_equal_rows_as_unchanged():
    partner = PartnerFactory()
    ContactFactory(partner=partner, email="same@acme.example", name="Same", language="en")
    moved = ContactFactory(email="moved@acme.example", name="Mo", is_active=False)
    counts = services.contacts_upsert(
        rows=[
            services.ContactRow(partner=partner, name="Same", email="SAME@acme.example"),
            services.ContactRow(partner=partner, name="Mo", email="moved@acme.example"),
            services.ContactRow(partner=partner, name="New", email="new@acme.example", is_key=True),
        ]
    )
    assert counts == services.UpsertCounts(created=1, updated=1, unchanged=1)
    moved.refresh_from_db()
    assert (moved.partner, moved.is_active) == (partner, False)  # is_active not given: kept
    assert Contact.objects.get(email="new@acme.example").is_key is True


def test_contacts_upsert_with_bad_rows_names_them_and_writes_nothing():
    partner = PartnerFactory()
    with pytest.raises(ValidationError) as excinfo:
        services.contacts_upsert(
            rows=[
                services.ContactRow(partner=partner, name="Ok", email="ok@acme.example"),
                services.ContactRow(partner=partner, name="", email="bad"),
                services.ContactRow(partner=partner, name="Again", email="OK@acme.example"),
            ]
        )
    assert messages(excinfo) == {
        "contacts": [
            "row 1: name: Give the contact's name.",
            "row 1: email: Enter a valid email address.",
            "row 2: email: ok@acme.example is also in row 0; give each email once.",
        ]
    }
    assert Contact.objects.count() == 0


# --- Programs -------------------------------------------------------------------------------


def test_program_create_takes_columns_and_an_audience(gold):
    program = services.program_create(
        name="Partner pulse",
        tiers=[gold],
        frequency=Program.Frequency.MONTHLY,
        time_zone="Europe/Berlin",
        reminder_days=[4, 9],
        regions=["EMEA"],
    )
    program.refresh_from_db()
    assert (program.frequency, program.time_zone, program.reminder_days) == (
        1,
        "Europe/Berlin",
        [4, 9],
    )
    assert list(program.tiers.all()) == [gold]


@pytest.mark.parametrize(
    ("time_zone", "message"),
    [
        ("", "Unknown time zone “”; use a name like Europe/Berlin."),
        ("localtime", "Unknown time zone “localtime”; use a name like Europe/Berlin."),
        ("Mars/Olympus", "Unknown time zone “Mars/Olympus”; use a name like Europe/Berlin."),
    ],
)
def test_program_refuses_a_time_zone_that_is_not_a_zone_name(time_zone, message):
    with pytest.raises(ValidationError) as excinfo:
        services.program_create(name="Pulse", time_zone=time_zone)
    assert messages(excinfo) == {"time_zone": [message]}
    assert Program.objects.count() == 0


def test_program_refuses_a_name_taken_in_any_case_and_reminders_outside_the_window():
    ProgramFactory(name="Partner Pulse")
    with pytest.raises(ValidationError) as excinfo:
        services.program_create(name="partner pulse", response_window_days=7, reminder_days=[3, 10])
    assert messages(excinfo) == {
        "name": ["A program named “partner pulse” already exists."],
        "reminder_days": [
            "Give a list of whole days, each after the wave opens and before it closes."
        ],
    }


def test_program_update_without_a_difference_does_not_touch_the_row():
    with time_machine.travel(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), tick=False):
        program = ProgramFactory(name="Pulse", send_hour=9)
    services.program_update(program_id=program.pk, name="Pulse", send_hour=9, tiers=[])
    program.refresh_from_db()
    assert program.updated_at == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_program_update_refuses_an_unknown_field_as_a_programming_error():
    program = ProgramFactory()
    with pytest.raises(TypeError, match="Not program fields: colour"):
        services.program_update(program_id=program.pk, colour="red")


# --- Changes --------------------------------------------------------------------------------


def test_a_change_owner_must_be_on_the_cs_team(cs_agent, outsider):
    with pytest.raises(ValidationError) as excinfo:
        followup_services.change_create(
            title="Faster support", description="We answer in 4 hours.", category="support",
            by=cs_agent, owner=outsider,
        )  # fmt: skip
    assert messages(excinfo) == {"owner": ["otto is not on the customer-success team."]}
    change = ChangeFactory(owner=cs_agent)
    with pytest.raises(ValidationError) as excinfo:
        followup_services.change_update(change_id=change.pk, by=cs_agent, owner=outsider)
    assert messages(excinfo) == {"owner": ["otto is not on the customer-success team."]}
    change.refresh_from_db()
    assert change.owner == cs_agent


def test_change_update_edits_text_and_ships_in_one_call(cs_agent, other_agent):
    change = ChangeFactory(owner=cs_agent)
    followup_services.change_update(
        change_id=change.pk,
        by=cs_agent,
        title="  Faster support ",
        owner=other_agent,
        status=Change.Status.SHIPPED,
    )
    change.refresh_from_db()
    assert (change.title, change.owner, change.status) == ("Faster support", other_agent, "shipped")
    assert change.shipped_at is not None


def test_change_update_refuses_a_blank_title_and_an_unknown_status(cs_agent):
    change = ChangeFactory(title="Faster support")
    with pytest.raises(ValidationError) as excinfo:
        followup_services.change_update(change_id=change.pk, by=cs_agent, title=" ", status="gone")
    assert messages(excinfo) == {
        "title": ["Give the change a title."],
        "status": ["Unknown status."],
    }
    change.refresh_from_db()
    assert (change.title, change.status) == ("Faster support", "planned")
