"""Import partners and their contacts from CSV: ``partners_import``.

The file has one row per contact; the partner's fields repeat on every row of its contacts::

    partner_name,tier,region,partner_type,account_owner_email,contact_name,contact_email,language

The header may be in any column order and letter case, with spaces around the names and a UTF-8
byte-order mark; a missing, unknown or repeated column rejects the whole file.

Validate, then write. Every row is checked first and every problem is reported with its CSV line
(the header is line 1); if any row is bad, nothing at all is written. Otherwise one transaction
upserts the partners (matched by name, case-insensitively; the file's first spelling wins) and
their contacts (matched by lower-cased email). A row that matches what is stored writes nothing, so
importing the same file twice changes nothing, not even ``updated_at``.

Choices made here, each tested in ``tests/surveys/test_import.py``:

- **Tier and partner type** are matched case-insensitively against the admin-editable tables;
  an unknown one is a bad row whose message lists the valid names.
- **Language** is an ISO 639-1 code (two letters, any case), stored lower-case; a real code with
  no translation yet is accepted (content falls back to English). An empty cell means ``en``.
- **Account owner**: the email of an existing user (``User.email``, case-insensitive) becomes the
  partner's account owner; an empty cell means no owner (clearing a previous one). An email that
  belongs to no user is neither dropped nor rejected: an *inactive* user is created for it
  (username = the email, unusable password, in the "CS staff" group) and the report says so, so
  an admin can activate them. Follow-ups are routed only to active staff, so until then the
  partner's detractors go to the round robin.
- **A contact email already used by a contact of another partner** moves that contact to the
  partner on the row; the report lists the move as an update.
- **The file is not the whole truth about contacts**: a contact missing from the file is left as
  it is (never deactivated or deleted), and the import never changes ``is_active`` or the opt-out
  and bounce dates of a contact, nor ``is_active`` of a partner. Deactivate in the admin.
- The same partner must carry the same tier, region, type and owner on all its rows; a row that
  disagrees with the partner's first row is bad.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower

from nps_project import roles

from .models import Contact, Partner, PartnerType, Tier
from .services import (
    LANGUAGE_CODES,
    ContactRow,
    contacts_upsert,
    partner_create,
    partner_update,
)

COLUMNS = (
    "partner_name",
    "tier",
    "region",
    "partner_type",
    "account_owner_email",
    "contact_name",
    "contact_email",
    "language",
)
HEADER = ",".join(COLUMNS)
DEFAULT_LANGUAGE = "en"

# ISO 639-1, the two-letter language codes (deprecated ones excluded): the services' list.
ISO_639_1 = LANGUAGE_CODES


@dataclass(frozen=True)
class ImportProblem:
    """One problem: a CSV line (None for the file as a whole) and a reason."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ImportReport:
    dry_run: bool = False
    errors: list[ImportProblem] = field(default_factory=list)
    partners_created: int = 0
    partners_updated: int = 0
    partners_unchanged: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    contacts_unchanged: int = 0
    # Things a person should know about: moved contacts, users created for unknown owners.
    notes: list[str] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if not self.ok:
            return f"Nothing was imported: {len(self.errors)} problem(s) found."
        prefix = "Dry run, nothing was written. Would have: " if self.dry_run else ""
        return (
            f"{prefix}partners: {self.partners_created} created, {self.partners_updated} "
            f"updated, {self.partners_unchanged} unchanged; contacts: {self.contacts_created} "
            f"created, {self.contacts_updated} updated, {self.contacts_unchanged} unchanged."
        )


@dataclass
class _Row:
    line: int
    partner_name: str
    tier: Tier | None
    region: str
    partner_type: PartnerType | None
    owner_email: str  # lower-cased, "" for no owner
    contact_name: str
    contact_email: str  # lower-cased
    language: str


@dataclass
class _PartnerSpec:
    name: str
    line: int
    tier: Tier | None = None
    region: str | None = None
    partner_type: PartnerType | None = None
    owner_email: str | None = None
    first_line: dict[str, int] = field(default_factory=dict)


def _max_length(model, name: str) -> int:
    return model._meta.get_field(name).max_length


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


class _RefusedRow(Exception):
    """A service refused a row's partner while writing: reported with the row's line."""

    def __init__(self, line: int, error: ValidationError):
        super().__init__(str(error))
        self.line = line
        self.messages = error.messages


class _BadCsv(Exception):
    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line


def _records(file: TextIO) -> Iterable[tuple[int, list[str]]]:
    """(first CSV line, fields) for each record; a quoted field may span several lines."""
    reader = csv.reader(file, strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _BadCsv(reader.line_num or 1, str(exc)) from exc
        yield start, fields
        start = reader.line_num + 1


def partners_import(*, file: TextIO, dry_run: bool = False) -> ImportReport:
    """Validate the whole CSV ``file`` (a text stream), then upsert partners and contacts.

    Returns an ``ImportReport``; never raises for bad input. With any error nothing is written;
    with ``dry_run`` the import runs in a transaction that is rolled back, so the counts are the
    ones a real run would give.
    """
    report = ImportReport(dry_run=dry_run)
    try:
        rows = _parse(file, report)
    except UnicodeDecodeError:
        report.errors = [ImportProblem(None, "The file is not UTF-8 text; save it as UTF-8 CSV.")]
        return report
    except _BadCsv as exc:
        report.errors.append(ImportProblem(exc.line, f"not valid CSV: {exc}"))
        report.errors.sort(key=lambda e: e.line or 0)
        return report
    if report.errors:
        report.errors.sort(key=lambda e: e.line or 0)
        return report
    try:
        with transaction.atomic():
            _write(rows, report)
            if dry_run:
                transaction.set_rollback(True)
    except _RefusedRow as exc:
        return ImportReport(
            dry_run=dry_run, errors=[ImportProblem(exc.line, m) for m in exc.messages]
        )
    except (IntegrityError, ValidationError):
        # Someone changed the same partners or contacts at the same moment.
        return ImportReport(
            dry_run=dry_run,
            errors=[
                ImportProblem(
                    None,
                    "The partners or contacts changed while importing; nothing was written. "
                    "Please try again.",
                )
            ],
        )
    return report


# --- Validation -----------------------------------------------------------------------------


def _parse(file: TextIO, report: ImportReport) -> list[_Row]:
    records = iter(_records(file))
    header = None
    for line, fields in records:
        if any(f.strip() for f in fields):
            header = (line, fields)
            break
    if header is None:
        report.errors.append(
            ImportProblem(None, f"The file is empty; the first line must be {HEADER}")
        )
        return []
    header_line, names = header
    names = [n.strip().lstrip("\ufeff").strip().lower() for n in names]
    problems = []
    unknown = [n for n in names if n not in COLUMNS]
    missing = [c for c in COLUMNS if c not in names]
    repeated = sorted({n for n in names if names.count(n) > 1 and n in COLUMNS})
    if unknown:
        problems.append("unknown column(s) " + ", ".join(repr(n) for n in unknown))
    if missing:
        problems.append("missing column(s) " + ", ".join(missing))
    if repeated:
        problems.append("repeated column(s) " + ", ".join(repeated))
    if problems:
        report.errors.append(
            ImportProblem(header_line, f"bad header: {'; '.join(problems)}. Expected {HEADER}")
        )
        return []
    index = {name: i for i, name in enumerate(names)}

    tiers = list(Tier.objects.all())
    types = list(PartnerType.objects.all())
    tiers_by_name = {t.name.casefold(): t for t in tiers}
    types_by_name = {t.name.casefold(): t for t in types}
    limits = {
        "partner_name": _max_length(Partner, "name"),
        "region": _max_length(Partner, "region"),
        "contact_name": _max_length(Contact, "name"),
        "contact_email": _max_length(Contact, "email"),
        "account_owner_email": min(
            _max_length(get_user_model(), "email"), _max_length(get_user_model(), "username")
        ),
    }

    rows: list[_Row] = []
    emails_seen: dict[str, int] = {}
    partners: dict[str, _PartnerSpec] = {}
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # a blank line
        errors: list[str] = []
        if len(fields) != len(COLUMNS):
            report.errors.append(
                ImportProblem(line, f"expected {len(COLUMNS)} values, found {len(fields)}")
            )
            continue
        value = {name: fields[i].strip() for name, i in index.items()}
        for name, text in value.items():
            if _has_control_characters(text):
                errors.append(f"{name} contains a control character")
            elif name in limits and len(text) > limits[name]:
                errors.append(f"{name} is longer than {limits[name]} characters")
        if errors:
            report.errors.extend(ImportProblem(line, e) for e in errors)
            continue

        partner_name = value["partner_name"]
        if not partner_name:
            errors.append("partner_name is empty")
        if not value["contact_name"]:
            errors.append("contact_name is empty")

        email = value["contact_email"].lower()
        if not email:
            errors.append("contact_email is empty")
        elif not _valid_email(email):
            errors.append(f"contact_email {value['contact_email']!r} is not a valid email address")
        elif email in emails_seen:
            errors.append(
                f"duplicate contact_email {email} (first given on line {emails_seen[email]})"
            )
        else:
            emails_seen[email] = line

        tier = tiers_by_name.get(value["tier"].casefold())
        if tier is None:
            errors.append(
                f"unknown tier {value['tier']!r}; valid tiers: " + ", ".join(t.name for t in tiers)
            )
        partner_type = types_by_name.get(value["partner_type"].casefold())
        if partner_type is None:
            errors.append(
                f"unknown partner_type {value['partner_type']!r}; valid types: "
                + ", ".join(t.name for t in types)
            )

        owner = value["account_owner_email"].lower()
        owner_ok = True
        if owner and not _valid_email(owner):
            owner_ok = False
            errors.append(
                f"account_owner_email {value['account_owner_email']!r} is not a valid email address"
            )

        language = value["language"].lower() or DEFAULT_LANGUAGE
        if language not in ISO_639_1:
            errors.append(
                f"language {value['language']!r} is not an ISO 639-1 code "
                "(two letters, e.g. en, de, fr)"
            )

        if partner_name:
            errors.extend(
                _partner_conflicts(
                    partners,
                    line=line,
                    name=partner_name,
                    tier=tier,
                    region=value["region"],
                    partner_type=partner_type,
                    owner=owner if owner_ok else None,
                )
            )
        if errors:
            report.errors.extend(ImportProblem(line, e) for e in errors)
            continue
        rows.append(
            _Row(
                line=line,
                partner_name=partner_name,
                tier=tier,
                region=value["region"],
                partner_type=partner_type,
                owner_email=owner,
                contact_name=value["contact_name"],
                contact_email=email,
                language=language,
            )
        )
    if not rows and not report.errors:
        report.errors.append(ImportProblem(None, "The file has a header but no rows to import."))
    return rows


def _valid_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _partner_conflicts(
    partners: dict[str, _PartnerSpec],
    *,
    line: int,
    name: str,
    tier: Tier | None,
    region: str,
    partner_type: PartnerType | None,
    owner: str | None,
) -> list[str]:
    """Check this row's partner fields against the partner's earlier rows. A field whose value
    is itself invalid on this row (None) is not compared; the first valid value sets it."""
    spec = partners.setdefault(name.casefold(), _PartnerSpec(name=name, line=line))
    problems = []
    given = {"tier": tier, "region": region, "partner_type": partner_type, "owner_email": owner}
    labels = {
        "tier": "tier",
        "region": "region",
        "partner_type": "partner_type",
        "owner_email": "account_owner_email",
    }
    for key, new in given.items():
        if new is None:
            continue
        old = getattr(spec, key)
        if old is None:
            setattr(spec, key, new)
            spec.first_line[key] = line
        elif old != new:
            problems.append(
                f"partner {spec.name!r} has {labels[key]} {_show(old)} on line "
                f"{spec.first_line[key]} but {_show(new)} here"
            )
    return problems


def _show(value) -> str:
    if isinstance(value, Tier | PartnerType):
        return repr(value.name)
    return repr(value) if value else "(empty)"


# --- Writing --------------------------------------------------------------------------------


def _chunks(items: list, size: int = 500) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _owners(emails: set[str], report: ImportReport) -> dict[str, object]:
    """Users by lower-cased email; unknown owners are created inactive (see the docstring)."""
    User = get_user_model()
    found: dict[str, object] = {}
    if not emails:
        return found
    candidates = User.objects.annotate(email_l=Lower("email")).filter(
        Q(email_l__in=emails) | Q(email__in=emails) | Q(username__in=emails)
    )
    # Prefer an active user, then the oldest, when several share an email.
    for user in sorted(candidates, key=lambda u: (not u.is_active, u.pk)):
        key = (user.email or "").lower()
        if key in emails:
            found.setdefault(key, user)
    for user in candidates:
        if user.username.lower() in emails:
            found.setdefault(user.username.lower(), user)
    missing = sorted(emails - found.keys())
    verb = "would create" if report.dry_run else "created"
    if missing:
        group, _created = Group.objects.get_or_create(name=roles.CS_STAFF)
        for email in missing:
            user = User(username=email, email=email, is_active=False)
            user.set_unusable_password()
            user.save()
            user.groups.add(group)
            found[email] = user
            report.users_created.append(email)
            report.notes.append(
                f"{verb} inactive user {email}; activate them in the admin to route "
                "follow-ups to them"
            )
    return found


def _write(rows: list[_Row], report: ImportReport) -> None:
    owners = _owners({r.owner_email for r in rows if r.owner_email}, report)

    # Partners, matched case-insensitively; an exact spelling wins over another casing.
    existing: dict[str, Partner] = {}
    for partner in Partner.objects.order_by("pk"):
        key = partner.name.casefold()
        if key not in existing or partner.name == existing[key].name:
            existing[key] = partner
    partners: dict[str, Partner] = {}
    for row in rows:
        key = row.partner_name.casefold()
        if key in partners:
            continue
        owner = owners[row.owner_email] if row.owner_email else None
        wanted = {
            "name": row.partner_name,
            "tier": row.tier,
            "partner_type": row.partner_type,
            "region": row.region,
            "account_owner": owner,
        }
        partner = existing.get(key)
        try:
            if partner is None:
                partner = partner_create(**wanted)
                report.partners_created += 1
            elif changed := _changed(partner, wanted):
                partner = partner_update(partner_id=partner.pk, **changed)
                report.partners_updated += 1
            else:
                report.partners_unchanged += 1
        except ValidationError as exc:
            raise _RefusedRow(row.line, exc) from exc
        partners[key] = partner

    emails = [r.contact_email for r in rows]
    contacts: dict[str, Contact] = {}
    for chunk in _chunks(emails):
        for contact in (
            Contact.objects.annotate(email_l=Lower("email"))
            .filter(Q(email_l__in=chunk) | Q(email__in=chunk))
            .select_related("partner")
            .order_by("pk")
        ):
            contacts.setdefault(contact.email.lower(), contact)
    for row in rows:
        partner = partners[row.partner_name.casefold()]
        contact = contacts.get(row.contact_email)
        if contact is not None and contact.partner_id != partner.pk:
            report.notes.append(
                f"line {row.line}: contact {row.contact_email} moves from partner "
                f"{contact.partner.name!r} to {partner.name!r}"
            )
    # Never is_active, opt-outs or bounces: the file is not the whole truth about contacts.
    counts = contacts_upsert(
        rows=[
            ContactRow(
                partner=partners[row.partner_name.casefold()],
                name=row.contact_name,
                email=row.contact_email,
                language=row.language,
            )
            for row in rows
        ]
    )
    report.contacts_created += counts.created
    report.contacts_updated += counts.updated
    report.contacts_unchanged += counts.unchanged


def _changed(partner: Partner, wanted: dict) -> dict:
    """The fields of ``wanted`` that differ on ``partner`` (relations compared by id)."""
    changed = {}
    for name, value in wanted.items():
        field = Partner._meta.get_field(name)
        current = getattr(partner, field.attname)
        if current != (value.pk if field.is_relation and value is not None else value):
            changed[name] = value
    return changed
