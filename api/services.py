"""Writes the API needs that no app service offers yet: partner, contact and program
maintenance and editing a change's text. Keyword-only, atomic, validated before they write.

Follow-up work, changes' status and links, and notices go through ``followups.services``;
webhook subscriptions through ``webhooks.services``. (Partner and contact writes belong in
``surveys.services`` once the CSV import lands there; they are here so the API does not write
models from views.)
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework.authtoken.models import Token

from followups.models import Change
from nps_project import roles
from surveys.models import Contact, Partner, Program

PARTNER_FIELDS = ("name", "tier", "partner_type", "region", "account_owner", "is_active")
CONTACT_FIELDS = ("partner", "name", "email", "language", "is_active")


def _apply(obj, data: dict, fields) -> list[str]:
    changed = []
    for field in fields:
        try:
            current = getattr(obj, field)
        except ObjectDoesNotExist:  # a relation not set yet on a new object
            current = None
        if field in data and current != data[field]:
            setattr(obj, field, data[field])
            changed.append(field)
    return changed


def _save_clean(obj, *, exclude=()) -> None:
    obj.full_clean(exclude=list(exclude))
    obj.save()


# --- Partners -------------------------------------------------------------------------------


@transaction.atomic
def partner_create(*, data: dict) -> Partner:
    partner = Partner()
    _apply(partner, data, PARTNER_FIELDS)
    _save_clean(partner)
    return partner


@transaction.atomic
def partner_update(*, partner_id: int, data: dict) -> Partner:
    partner = Partner.objects.select_for_update().get(pk=partner_id)
    if _apply(partner, data, PARTNER_FIELDS):
        _save_clean(partner)
    return partner


@transaction.atomic
def partner_deactivate(*, partner_id: int) -> bool:
    """Deactivate a partner (it is kept, with its history); False if it already was."""
    return bool(
        Partner.objects.filter(pk=partner_id, is_active=True).update(
            is_active=False, updated_at=timezone.now()
        )
    )


# --- Contacts -------------------------------------------------------------------------------


@transaction.atomic
def contact_create(*, data: dict) -> Contact:
    contact = Contact()
    _apply(contact, {**data, "email": data["email"].strip().lower()}, CONTACT_FIELDS)
    _save_clean(contact)
    return contact


@transaction.atomic
def contact_update(*, contact_id: int, data: dict) -> Contact:
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    if "email" in data:
        data = {**data, "email": data["email"].strip().lower()}
    if _apply(contact, data, CONTACT_FIELDS):
        _save_clean(contact)
    return contact


@transaction.atomic
def contact_deactivate(*, contact_id: int) -> bool:
    return bool(
        Contact.objects.filter(pk=contact_id, is_active=True).update(
            is_active=False, updated_at=timezone.now()
        )
    )


def contacts_upsert(*, rows: list[dict]) -> dict[str, int]:
    """Create or update contacts by email (lower-cased), all or nothing.

    Each row holds ``partner`` (a Partner), ``name``, ``email`` and optionally ``language`` and
    ``is_active``. A row equal to the stored contact changes nothing. Opt-outs and bounces are
    never touched: only the contact can opt back in. Returns counts of created, updated and
    unchanged rows.
    """
    rows = [{**row, "email": row["email"].strip().lower()} for row in rows]
    now = timezone.now()
    try:
        with transaction.atomic():
            existing = {
                c.email: c
                for c in Contact.objects.select_for_update().filter(
                    email__in=[r["email"] for r in rows]
                )
            }
            new, changed, unchanged = [], [], 0
            for row in rows:
                contact = existing.get(row["email"])
                if contact is None:
                    new.append(Contact(**row, created_at=now, updated_at=now))
                elif _apply(contact, row, CONTACT_FIELDS):
                    contact.updated_at = now
                    changed.append(contact)
                else:
                    unchanged += 1
            Contact.objects.bulk_create(new, batch_size=500)
            Contact.objects.bulk_update(
                changed, fields=[*CONTACT_FIELDS, "updated_at"], batch_size=500
            )
    except IntegrityError as exc:
        raise ValidationError(
            _("Another request created some of these contacts at the same time; send it again.")
        ) from exc
    return {"created": len(new), "updated": len(changed), "unchanged": unchanged}


# --- Programs -------------------------------------------------------------------------------

PROGRAM_M2M = ("tiers", "partner_types")


@transaction.atomic
def program_save(*, data: dict, program_id: int | None = None) -> Program:
    """Create (no ``program_id``) or update a program; ``Program.clean`` checks the cadence,
    time zone, reminder days and regions, the database constraints back it."""
    if program_id is None:
        program = Program()
    else:
        program = Program.objects.select_for_update().get(pk=program_id)
    for field, value in data.items():
        if field not in PROGRAM_M2M:
            setattr(program, field, value)
    _save_clean(program)
    for field in PROGRAM_M2M:
        if field in data:
            getattr(program, field).set(data[field])
    return program


# --- Changes --------------------------------------------------------------------------------


@transaction.atomic
def change_edit(*, change_id: int, by, data: dict) -> Change:
    """Edit a change's title, description, category or owner, with ``change_create``'s rules."""
    if not roles.is_cs(by):
        raise PermissionDenied(_("Only customer-success staff can log changes."))
    change = Change.objects.select_for_update().get(pk=change_id)
    errors = {}
    if "title" in data:
        data["title"] = (data["title"] or "").strip()
        if not data["title"]:
            errors["title"] = _("Give the change a title.")
    if "description" in data:
        data["description"] = (data["description"] or "").strip()
        if not data["description"]:
            errors["description"] = _("Describe what changed: partners will read it.")
    if data.get("owner") is not None and not roles.is_cs(data["owner"]):
        errors["owner"] = _("%(name)s is not on the customer-success team.") % {
            "name": data["owner"].get_username()
        }
    if errors:
        raise ValidationError(errors)
    if _apply(change, data, ("title", "description", "category", "owner")):
        change.save()
    return change


@transaction.atomic
def change_update(*, change_id: int, by, data: dict) -> Change:
    """Edit a change's fields and move its status in one transaction (status through
    ``followups.services.change_update_status``, which stamps the ship date)."""
    from followups.services import change_update_status

    data = dict(data)
    status = data.pop("status", None)
    change = change_edit(change_id=change_id, by=by, data=data)
    if status is not None:
        change = change_update_status(change_id=change_id, status=status, by=by)
    return change


# --- API tokens -----------------------------------------------------------------------------


@transaction.atomic
def token_issue(*, user) -> Token:
    """A new API token for ``user``, replacing (so revoking) any previous one."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def token_revoke(*, user_id: int) -> bool:
    deleted, _rows = Token.objects.filter(user_id=user_id).delete()
    return bool(deleted)
