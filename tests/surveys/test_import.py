"""The partner CSV import: validate every row, then write all or nothing; re-import is a no-op."""

import csv
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from nps_project import roles
from surveys.importing import HEADER, partners_import
from surveys.models import Contact, Partner
from tests.factories import ContactFactory, PartnerFactory, UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()
DEMO_CSV = Path(settings.BASE_DIR) / "demo" / "partners.csv"

GOOD_ROWS = [
    "Northwind Cloud Services,Gold,EMEA,Reseller,sam@example.com,Anna Schmidt,"
    "anna.schmidt@northwind.example,de",
    "Northwind Cloud Services,Gold,EMEA,Reseller,sam@example.com,Ben Carter,"
    "ben.carter@northwind.example,en",
    "Bluepeak Systems,Silver,North America,MSP,,Chloe Reed,chloe.reed@bluepeak.example,en",
]


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def run(*rows: str, dry_run: bool = False, header: str = HEADER):
    return partners_import(file=io.StringIO(csv_text(*rows, header=header)), dry_run=dry_run)


def errors_of(report) -> list[str]:
    return [str(e) for e in report.errors]


def counts(report) -> tuple[int, ...]:
    return (
        report.partners_created,
        report.partners_updated,
        report.partners_unchanged,
        report.contacts_created,
        report.contacts_updated,
        report.contacts_unchanged,
    )


def snapshot():
    """Everything the import could write."""
    return (
        list(Partner.objects.order_by("pk").values()),
        list(Contact.objects.order_by("pk").values()),
        list(User.objects.order_by("pk").values_list("pk", "username", "email", "is_active")),
    )


@pytest.fixture
def sam(db):
    return UserFactory(username="sam", email="Sam@Example.com", role=roles.CS_STAFF)


# --- Clean imports ----------------------------------------------------------------------------


def test_a_clean_file_creates_partners_and_contacts(sam):
    report = run(*GOOD_ROWS)

    assert report.ok, errors_of(report)
    assert counts(report) == (2, 0, 0, 3, 0, 0)
    northwind = Partner.objects.get(name="Northwind Cloud Services")
    assert (northwind.tier.name, northwind.partner_type.name, northwind.region) == (
        "Gold",
        "Reseller",
        "EMEA",
    )
    assert northwind.account_owner == sam  # matched case-insensitively on User.email
    assert Partner.objects.get(name="Bluepeak Systems").account_owner is None
    assert sorted(northwind.contacts.values_list("email", "language")) == [
        ("anna.schmidt@northwind.example", "de"),
        ("ben.carter@northwind.example", "en"),
    ]
    assert report.notes == []


def test_reimporting_the_same_file_changes_nothing(sam):
    run(*GOOD_ROWS)
    before = snapshot()

    report = run(*GOOD_ROWS)

    assert counts(report) == (0, 0, 2, 0, 0, 3)
    assert snapshot() == before  # not even updated_at moves


def test_a_changed_row_updates_only_what_changed(sam):
    run(*GOOD_ROWS)
    untouched = Contact.objects.get(email="ben.carter@northwind.example").updated_at

    report = run(
        GOOD_ROWS[0].replace(",de", ",fr").replace("Anna Schmidt", "Anna Schmidt-Weber"),
        GOOD_ROWS[1],
        GOOD_ROWS[2].replace("Silver", "Gold"),
    )

    assert counts(report) == (0, 1, 1, 0, 1, 2)
    anna = Contact.objects.get(email="anna.schmidt@northwind.example")
    assert (anna.name, anna.language) == ("Anna Schmidt-Weber", "fr")
    assert Partner.objects.get(name="Bluepeak Systems").tier.name == "Gold"
    assert Contact.objects.get(email="ben.carter@northwind.example").updated_at == untouched


def test_tier_type_header_and_language_are_case_insensitive_and_bom_is_tolerated(sam):
    header = (
        "\ufeff Partner_Name ,TIER,Region,partner_type,Account_Owner_Email,contact_name,"
        "contact_email,Language"
    )
    report = run(
        "Acme Ltd,platinum,APAC,tEcHnOlOgY,SAM@EXAMPLE.COM,Kenji Ito,Kenji.Ito@Acme.Example,JA",
        header=header,
    )

    assert report.ok, errors_of(report)
    acme = Partner.objects.get(name="Acme Ltd")
    assert (acme.tier.name, acme.partner_type.name, acme.account_owner) == (
        "Platinum",
        "Technology",
        sam,
    )
    contact = acme.contacts.get()
    assert (contact.email, contact.language) == ("kenji.ito@acme.example", "ja")


def test_a_real_language_without_a_translation_is_stored_lower_case():
    report = run("Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,jan@acme.example,CS")

    assert report.ok, errors_of(report)
    assert Contact.objects.get().language == "cs"


def test_an_existing_partner_is_matched_case_insensitively_and_takes_the_files_spelling():
    partner = PartnerFactory(name="ACME LTD")

    report = run("Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,jan@acme.example,en")

    assert counts(report) == (0, 1, 0, 1, 0, 0)
    partner.refresh_from_db()
    assert partner.name == "Acme Ltd"
    assert Partner.objects.count() == 1


def test_a_contact_of_another_partner_moves_and_the_report_says_so():
    old = PartnerFactory(name="Old Partner")
    ContactFactory(partner=old, email="jan@acme.example", name="Jan Novak")

    report = run("Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,JAN@acme.example,en")

    assert report.ok, errors_of(report)
    assert counts(report) == (1, 0, 0, 0, 1, 0)
    assert Contact.objects.get(email="jan@acme.example").partner.name == "Acme Ltd"
    assert report.notes == [
        "line 2: contact jan@acme.example moves from partner 'Old Partner' to 'Acme Ltd'"
    ]


def test_contacts_missing_from_the_file_and_opt_outs_are_left_alone():
    run(*GOOD_ROWS)
    Contact.objects.filter(email="ben.carter@northwind.example").update(
        opted_out_at="2026-01-01T00:00:00Z", is_active=False
    )

    report = run(GOOD_ROWS[0], GOOD_ROWS[2])

    assert report.ok
    ben = Contact.objects.get(email="ben.carter@northwind.example")
    assert (ben.is_active, ben.opted_out_at is not None) == (False, True)


def test_blank_lines_are_skipped_and_line_numbers_stay_physical():
    report = run("", GOOD_ROWS[2], "", "Bad,Gold,EMEA,Reseller,,X,not-an-email,en")

    assert errors_of(report) == [
        "line 5: contact_email 'not-an-email' is not a valid email address"
    ]


# --- Account owners ---------------------------------------------------------------------------


def test_an_unknown_owner_becomes_an_inactive_cs_staff_user_and_is_reported():
    report = run("Acme Ltd,Gold,EMEA,Reseller,New.Owner@Example.com,Jan Novak,jan@acme.example,en")

    assert report.ok, errors_of(report)
    user = User.objects.get(username="new.owner@example.com")
    assert (user.email, user.is_active, user.has_usable_password()) == (
        "new.owner@example.com",
        False,
        False,
    )
    assert list(user.groups.values_list("name", flat=True)) == [roles.CS_STAFF]
    assert Partner.objects.get().account_owner == user
    assert report.users_created == ["new.owner@example.com"]
    assert report.notes == [
        "created inactive user new.owner@example.com; activate them in the admin to route "
        "follow-ups to them"
    ]
    # The second time the (still inactive) user is found, not created again.
    again = run("Acme Ltd,Gold,EMEA,Reseller,new.owner@example.com,Jan Novak,jan@acme.example,en")
    assert (again.users_created, counts(again)) == ([], (0, 0, 1, 0, 0, 1))


def test_an_empty_owner_clears_the_previous_owner(sam):
    run(GOOD_ROWS[0])

    report = run(GOOD_ROWS[0].replace("sam@example.com", ""))

    assert counts(report)[:3] == (0, 1, 0)
    assert Partner.objects.get().account_owner is None


# --- Bad rows: all reported, nothing written --------------------------------------------------


def bad(row: str) -> list[str]:
    """Errors of a file whose line 2 is good and line 3 is ``row``."""
    report = run(GOOD_ROWS[2], row)
    assert not Partner.objects.exists()
    return errors_of(report)


def test_missing_partner_name():
    assert bad(",Gold,EMEA,Reseller,,Jan Novak,jan@acme.example,en") == [
        "line 3: partner_name is empty"
    ]


def test_missing_contact_name():
    assert bad("Acme Ltd,Gold,EMEA,Reseller,,  ,jan@acme.example,en") == [
        "line 3: contact_name is empty"
    ]


def test_missing_contact_email():
    assert bad("Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,,en") == ["line 3: contact_email is empty"]


def test_malformed_email():
    assert bad("Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,jan@@acme,en") == [
        "line 3: contact_email 'jan@@acme' is not a valid email address"
    ]


def test_malformed_owner_email():
    assert bad("Acme Ltd,Gold,EMEA,Reseller,sam at example,Jan Novak,jan@acme.example,en") == [
        "line 3: account_owner_email 'sam at example' is not a valid email address"
    ]


def test_unknown_tier_lists_the_valid_tiers():
    assert bad("Acme Ltd,Diamond,EMEA,Reseller,,Jan Novak,jan@acme.example,en") == [
        "line 3: unknown tier 'Diamond'; valid tiers: Registered, Silver, Gold, Platinum"
    ]


def test_unknown_partner_type_lists_the_valid_types():
    assert bad("Acme Ltd,Gold,EMEA,Wholesaler,,Jan Novak,jan@acme.example,en") == [
        "line 3: unknown partner_type 'Wholesaler'; valid types: Reseller, Distributor, MSP, "
        "Referral, Technology"
    ]


@pytest.mark.parametrize("language", ["xx", "eng", "e", "en-US", "12"])
def test_invalid_language(language):
    assert bad(f"Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,jan@acme.example,{language}") == [
        f"line 3: language '{language}' is not an ISO 639-1 code (two letters, e.g. en, de, fr)"
    ]


def test_duplicate_contact_email_names_the_first_line():
    errors = bad("Acme Ltd,Gold,EMEA,Reseller,,Chloe R.,Chloe.Reed@Bluepeak.example,en")

    assert errors == [
        "line 3: duplicate contact_email chloe.reed@bluepeak.example (first given on line 2)"
    ]


def test_conflicting_partner_fields_on_different_rows():
    errors = bad("Bluepeak Systems,Gold,APAC,MSP,sam@example.com,Dan Reed,dan@bluepeak.example,en")

    assert errors == [
        "line 3: partner 'Bluepeak Systems' has tier 'Silver' on line 2 but 'Gold' here",
        "line 3: partner 'Bluepeak Systems' has region 'North America' on line 2 but 'APAC' here",
        "line 3: partner 'Bluepeak Systems' has account_owner_email (empty) on line 2 but "
        "'sam@example.com' here",
    ]


def test_oversized_values_are_bad_rows():
    long_name = "N" * 201

    assert bad(f"{long_name},Gold,EMEA,Reseller,,Jan Novak,jan@acme.example,en") == [
        "line 3: partner_name is longer than 200 characters"
    ]


def test_wrong_number_of_values():
    assert bad("Acme Ltd,Gold,EMEA,Reseller,Jan Novak,jan@acme.example,en") == [
        "line 3: expected 8 values, found 7"
    ]


def test_control_characters_are_bad_rows():
    assert bad("Acme\x00 Ltd,Gold,EMEA,Reseller,,Jan Novak,jan@acme.example,en") == [
        "line 3: partner_name contains a control character"
    ]


def test_every_bad_row_is_reported_and_nothing_is_written(sam):
    before = snapshot()

    report = run(
        GOOD_ROWS[0],
        "Acme Ltd,Diamond,EMEA,Reseller,,,jan@acme.example,en",
        GOOD_ROWS[1],
        "Zeta,Gold,EMEA,Reseller,newbie@example.com,Zed,anna.schmidt@northwind.example,zz",
        GOOD_ROWS[2],
    )

    assert errors_of(report) == [
        "line 3: contact_name is empty",
        "line 3: unknown tier 'Diamond'; valid tiers: Registered, Silver, Gold, Platinum",
        "line 5: duplicate contact_email anna.schmidt@northwind.example (first given on line 2)",
        "line 5: language 'zz' is not an ISO 639-1 code (two letters, e.g. en, de, fr)",
    ]
    assert report.summary() == "Nothing was imported: 4 problem(s) found."
    assert snapshot() == before  # no partner, contact, or user for newbie@example.com


def test_a_quoted_value_over_several_lines_keeps_the_line_numbers_right():
    report = run(
        '"Acme\nLtd",Gold,EMEA,Reseller,,Jan,jan@acme.example,en', "x,Gold,EMEA,Reseller,,Y,,en"
    )

    assert errors_of(report) == [
        "line 2: partner_name contains a control character",
        "line 4: contact_email is empty",
    ]


# --- File-level errors ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "   \n"])
def test_an_empty_file_is_an_error(text):
    report = partners_import(file=io.StringIO(text))

    assert errors_of(report) == [f"The file is empty; the first line must be {HEADER}"]


def test_a_header_without_rows_is_an_error():
    report = partners_import(file=io.StringIO(HEADER + "\n"))

    assert errors_of(report) == ["The file has a header but no rows to import."]


def test_a_missing_or_unknown_column_is_a_file_error():
    header = HEADER.replace("region", "area").replace(",language", "")

    report = run("Acme Ltd,Gold,EMEA,Reseller,,Jan Novak,jan@acme.example", header=header)

    assert errors_of(report) == [
        f"line 1: bad header: unknown column(s) 'area'; missing column(s) region, language. "
        f"Expected {HEADER}"
    ]


def test_broken_quoting_is_a_file_error_with_its_line():
    report = run(GOOD_ROWS[2], '"Acme" Ltd,Gold,EMEA,Reseller,,Jan,jan@acme.example,en')

    assert errors_of(report) == ["line 3: not valid CSV: ',' expected after '\"'"]
    assert not Partner.objects.exists()


# --- Dry run ----------------------------------------------------------------------------------


def test_dry_run_reports_the_counts_and_writes_nothing():
    before = snapshot()

    report = run(*GOOD_ROWS, dry_run=True)

    assert report.ok
    assert counts(report) == (2, 0, 0, 3, 0, 0)
    assert report.notes == [
        "would create inactive user sam@example.com; activate them in the admin to route "
        "follow-ups to them"
    ]
    assert report.summary().startswith("Dry run, nothing was written.")
    assert snapshot() == before


# --- The command ------------------------------------------------------------------------------


def write_csv(tmp_path, *rows: str) -> str:
    path = tmp_path / "partners.csv"
    path.write_text(csv_text(*rows), encoding="utf-8")
    return str(path)


def test_the_command_imports_and_prints_the_summary(tmp_path, capsys, sam):
    call_command("import_partners", write_csv(tmp_path, *GOOD_ROWS))

    out = capsys.readouterr().out
    assert "partners: 2 created, 0 updated, 0 unchanged; contacts: 3 created" in out
    assert Contact.objects.count() == 3


def test_the_command_prints_bad_rows_to_stderr_and_exits_1(tmp_path):
    path = write_csv(
        tmp_path, GOOD_ROWS[2], "Acme Ltd,Diamond,EMEA,Reseller,,Jan Novak,jan@acme,en"
    )
    stderr = io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command("import_partners", path, stderr=stderr)

    # manage.py prints "CommandError: <message>" and exits with the error's returncode.
    assert (str(error.value), error.value.returncode) == (
        "Nothing was imported: 2 problem(s) found.",
        1,
    )
    assert stderr.getvalue().splitlines() == [
        "line 3: contact_email 'jan@acme' is not a valid email address",
        "line 3: unknown tier 'Diamond'; valid tiers: Registered, Silver, Gold, Platinum",
    ]
    assert not Partner.objects.exists()


def test_the_command_dry_run_writes_nothing(tmp_path, capsys):
    call_command("import_partners", write_csv(tmp_path, *GOOD_ROWS), "--dry-run")

    assert "Dry run, nothing was written." in capsys.readouterr().out
    assert not Partner.objects.exists()


def test_the_command_rejects_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*nope\.csv: No such file or directory"):
        call_command("import_partners", str(tmp_path / "nope.csv"))


def test_the_command_rejects_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        csv_text("Caf\xe9 Ltd,Gold,EMEA,Reseller,,Jan,jan@cafe.example,fr").encode("latin-1")
    )

    with pytest.raises(CommandError):
        call_command("import_partners", str(path), stderr=io.StringIO())
    assert not Partner.objects.exists()


# --- The shipped demo file ----------------------------------------------------------------------


def test_the_demo_csv_imports_cleanly_with_its_partner_and_contact_counts():
    with DEMO_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    partners = {r["partner_name"] for r in rows}
    assert (len(partners), len(rows)) == (50, 152)

    with DEMO_CSV.open(encoding="utf-8", newline="") as handle:
        report = partners_import(file=handle)

    assert report.ok, errors_of(report)
    assert counts(report) == (50, 0, 0, 152, 0, 0)
    assert Partner.objects.count() == 50
    assert Contact.objects.count() == 152
    assert sorted(report.users_created) == [
        "maria@example.com",
        "olga@example.com",
        "sam@example.com",
    ]
    assert all(e.endswith(".example") for e in Contact.objects.values_list("email", flat=True))
    assert Partner.objects.filter(account_owner__isnull=True).count() == 10


# --- Arbitrary input ----------------------------------------------------------------------------


line_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
file_text = st.one_of(
    st.text(max_size=300),
    st.lists(line_text, max_size=6).map(lambda lines: "\n".join([HEADER, *lines])),
    st.lists(
        st.lists(
            st.sampled_from(["", "Acme", "gold", "x@y.example", "EN", "MSP", '"', ","]),
            min_size=8,
            max_size=8,
        ).map(",".join),
        max_size=5,
    ).map(lambda lines: "\n".join([HEADER, *lines])),
)


@hsettings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=file_text)
def test_arbitrary_text_gives_a_report_and_writes_nothing_when_rejected(text):
    before = snapshot()

    report = partners_import(file=io.StringIO(text, newline=""))

    assert isinstance(report.summary(), str)
    if not report.ok:
        assert all(str(e) for e in report.errors)
        assert snapshot() == before
