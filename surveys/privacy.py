"""Privacy: retention, a contact's data export, and erasure on request.

- **Retention.** A program with ``retention_months`` = N keeps partners' words for N months:
  ``retention_apply`` (beat, daily) blanks the comment and extra-question answers of its
  responses submitted earlier than N months ago, and the comment copied into webhook deliveries
  about them. Score, category and segment (tier, type, region, owner) stay, so trends and NPS
  figures do not move. A contact's details (name, email, delivery notes) are anonymised once
  every invitation it ever had belongs to a program with a retention and is older than that
  program's N months: a contact still surveyed by a program without retention, or recently, is
  kept. Never-invited contacts (the roster) are left alone. The notes on the timelines of
  follow-ups about those answers (staff's notes, logged calls and emails, a revised answer's
  words) are blanked too, as are the follow-up's "action taken" and closing reason: staff quote
  partners there. Who did what when on the timeline stays.
- **Export.** ``contact_data_export`` gathers what is held about one contact as JSON.
- **Erasure.** ``contact_erase`` anonymises one contact now and blanks all its comments and
  answers and the notes of every follow-up about it, whatever their age; the admin action logs it
  in the audit log.

Anonymising is idempotent: an anonymised contact's address is ``anonymised-<id>@anonymised.invalid``
and a blanked response has no comment and no answers, so running it twice changes nothing.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import functools
import operator

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .models import Contact, Invitation, InvitationToken, Program, Response

ANONYMISED_NAME = "Anonymised contact"
ANONYMISED_DOMAIN = "anonymised.invalid"  # RFC 2606: never a real mailbox
BATCH = 1000


def months_before(when: dt.datetime, months: int) -> dt.datetime:
    """``when`` minus a number of calendar months (the day clamped to the month's end)."""
    index = when.year * 12 + (when.month - 1) - months
    year, month = divmod(index, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def anonymised_email(contact_id: int) -> str:
    return f"anonymised-{contact_id}@{ANONYMISED_DOMAIN}"


def is_anonymised(contact: Contact) -> bool:
    return contact.email.endswith("@" + ANONYMISED_DOMAIN)


@dataclasses.dataclass
class RetentionReport:
    responses_blanked: int = 0
    contacts_anonymised: int = 0
    deliveries_scrubbed: int = 0
    followup_notes_blanked: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _has_words():
    """Responses that still hold a partner's words."""
    return ~Q(comment="") | ~Q(answers={})


def _scrub_deliveries(response_ids: list[int]) -> int:
    """Blank the comment copied into webhook deliveries (``response.created``,
    ``followup.*``) about these responses. The envelope and every other field stay."""
    from webhooks.models import Delivery

    scrubbed = 0
    rows = Delivery.objects.filter(payload__data__response_id__in=response_ids).only("payload")
    for delivery in rows.iterator(chunk_size=500):
        data = (delivery.payload or {}).get("data") or {}
        if data.get("comment"):
            data["comment"] = ""
            delivery.save(update_fields=["payload", "updated_at"])
            scrubbed += 1
    return scrubbed


def _blank_responses(queryset) -> tuple[int, int]:
    """Blank comment and answers of ``queryset`` in batches; (responses, deliveries) touched."""
    blanked = scrubbed = 0
    while True:
        ids = list(queryset.filter(_has_words()).values_list("pk", flat=True)[:BATCH])
        if not ids:
            return blanked, scrubbed
        with transaction.atomic():
            blanked += Response.objects.filter(pk__in=ids).update(comment="", answers={})
            scrubbed += _scrub_deliveries(ids)


def _blank_followup_notes(followups) -> int:
    """Blank the free text of ``followups`` (a FollowUp queryset): their timeline notes, "action
    taken" and closing reason. Returns how many timeline entries were blanked. The timeline is
    otherwise append-only; this is the one exception, for privacy."""
    from followups.models import FollowUp, FollowUpEvent

    blanked = 0
    while True:
        ids = list(
            FollowUpEvent.objects.filter(followup__in=followups)
            .exclude(note="")
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            break
        blanked += FollowUpEvent.objects.filter(pk__in=ids).update(note="")
    FollowUp.objects.filter(pk__in=followups.values("pk")).filter(
        ~Q(action_taken="") | ~Q(closed_reason="")
    ).update(action_taken="", closed_reason="")
    return blanked


def _anonymise_contacts(contact_ids: list[int]) -> int:
    """Replace name and address, deactivate, drop delivery notes and the links' token hashes."""
    done = 0
    for contact_id in contact_ids:
        with transaction.atomic():
            done += (
                Contact.objects.filter(pk=contact_id)
                .exclude(email__endswith="@" + ANONYMISED_DOMAIN)
                .update(
                    name=ANONYMISED_NAME,
                    email=anonymised_email(contact_id),
                    is_active=False,
                    is_key=False,
                    bounce_reason="",
                    updated_at=timezone.now(),
                )
            )
            Invitation.objects.filter(contact_id=contact_id).exclude(last_error="").update(
                last_error=""
            )
            InvitationToken.objects.filter(invitation__contact_id=contact_id).delete()
    return done


def retention_apply(*, now: dt.datetime | None = None) -> RetentionReport:
    """Apply every program's retention (see the module docstring). Safe to run twice."""
    from followups.models import FollowUp

    now = now or timezone.now()
    report = RetentionReport()
    programs = list(Program.objects.filter(retention_months__gt=0))
    if not programs:
        return report
    cutoffs = {p.pk: months_before(now, p.retention_months) for p in programs}
    for program_id, cutoff in cutoffs.items():
        blanked, scrubbed = _blank_responses(
            Response.objects.filter(program_id=program_id, submitted_at__lt=cutoff)
        )
        report.responses_blanked += blanked
        report.deliveries_scrubbed += scrubbed
        report.followup_notes_blanked += _blank_followup_notes(
            FollowUp.objects.filter(
                Q(response__program_id=program_id, response__submitted_at__lt=cutoff)
                | Q(
                    response__isnull=True,
                    invitation__wave__program_id=program_id,
                    invitation__created_at__lt=cutoff,
                )
            )
        )
    # An invitation is still "kept" when its program has no retention or it is younger than
    # its program's cutoff; a contact with no kept invitation is anonymised.
    kept = Q(wave__program__retention_months__isnull=True) | Q(wave__program__retention_months=0)
    kept |= functools.reduce(
        operator.or_,
        (Q(wave__program_id=pk, created_at__gte=cutoff) for pk, cutoff in cutoffs.items()),
    )
    invitations = Invitation.objects.filter(contact=OuterRef("pk"))
    contact_ids = list(
        Contact.objects.filter(Exists(invitations))
        .exclude(Exists(invitations.filter(kept)))
        .exclude(email__endswith="@" + ANONYMISED_DOMAIN)
        .values_list("pk", flat=True)
    )
    report.contacts_anonymised = _anonymise_contacts(contact_ids)
    return report


def contact_data_export(*, contact_id: int) -> dict:
    """Everything held about one contact, as JSON-ready data: the contact, its partner's name,
    each invitation (wave, status, dates) with its response (score, comment, answers, segment)
    and the follow-up's status. Reads only; the caller records the export in the audit log."""
    contact = Contact.objects.select_related("partner").get(pk=contact_id)
    invitations = (
        Invitation.objects.filter(contact=contact)
        .select_related("wave__program", "response__followup")
        .order_by("created_at", "pk")
    )

    def iso(value):
        return value.isoformat() if value else None

    rows = []
    for invitation in invitations:
        response = getattr(invitation, "response", None)
        followup = getattr(response, "followup", None) if response is not None else None
        rows.append(
            {
                "program": invitation.wave.program.name,
                "wave": invitation.wave.label,
                "status": invitation.status,
                "sent_at": iso(invitation.sent_at),
                "reminders_sent": invitation.reminders_sent,
                "response": None
                if response is None
                else {
                    "score": response.score,
                    "category": response.category,
                    "comment": response.comment,
                    "answers": response.answers,
                    "wants_contact": response.wants_contact,
                    "language": response.language,
                    "submitted_at": iso(response.submitted_at),
                    "updated_at": iso(response.updated_at),
                    "followup_status": followup.status if followup is not None else None,
                },
            }
        )
    return {
        "contact": {
            "id": contact.pk,
            "name": contact.name,
            "email": contact.email,
            "language": contact.language,
            "partner": contact.partner.name,
            "is_active": contact.is_active,
            "opted_out_at": iso(contact.opted_out_at),
            "bounced_at": iso(contact.bounced_at),
            "complained_at": iso(contact.complained_at),
            "created_at": iso(contact.created_at),
        },
        "invitations": rows,
        "exported_at": iso(timezone.now()),
    }


@transaction.atomic
def contact_erase(*, contact_id: int, by, request=None) -> bool:
    """Erase one contact's personal data on request: anonymise the contact, blank every comment
    and answer it gave (and their copies in webhook deliveries), delete its link tokens; scores
    and segments stay. Logged in the audit log with who asked. Returns False if the contact
    was already anonymised (still logged: someone asked)."""
    from audit.services import Action, audit_record
    from followups.models import FollowUp

    contact = Contact.objects.select_for_update().get(pk=contact_id)
    already = is_anonymised(contact)
    blanked, scrubbed = _blank_responses(Response.objects.filter(contact_id=contact_id))
    notes = _blank_followup_notes(
        FollowUp.objects.filter(
            Q(response__contact_id=contact_id) | Q(invitation__contact_id=contact_id)
        )
    )
    anonymised = _anonymise_contacts([contact_id])
    audit_record(
        actor=by,
        action=Action.ERASE,
        target="contact",
        target_id=contact_id,
        detail={
            "responses_blanked": blanked,
            "deliveries_scrubbed": scrubbed,
            "followup_notes_blanked": notes,
            "already_anonymised": already,
        },
        request=request,
    )
    return bool(anonymised)
