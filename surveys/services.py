"""Writes for the survey side of the loop: waves, invitations, sending, responses, opt-outs.

Every function here is safe to call twice: the database constraints are the backstop and each
side effect (an email) is preceded by a conditional UPDATE that claims the row.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable
from smtplib import SMTPException

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from scoring.nps import category as score_category

from .models import Contact, Invitation, InvitationToken, Program, Response, Wave
from .schedule import Cadence, period_label
from .tokens import hash_token, new_token

logger = logging.getLogger(__name__)

# A queued invitation whose send task has not run for this long is enqueued again; a row
# claimed ("sending") for this long belonged to a worker that died and is put back in the queue.
STALE_AFTER = dt.timedelta(minutes=15)


class WaveClosedError(Exception):
    """The invitation's wave is not open: the answer cannot be recorded or changed."""


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def supported_language(code: str) -> str:
    """The contact's language if the product has a translation for it, else English.

    Case-insensitive, and a regional variant counts as its language (``DE``, ``de-AT`` -> ``de``).
    A valid code without a translation yet (a language in ``LANGUAGES`` whose catalogue is not in
    ``LOCALE_PATHS``, or one not offered at all) falls back to English for content, so a page
    never claims ``lang="xx"`` while showing English text.
    """
    code = (code or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return code if code in _translated_languages() else settings.LANGUAGE_CODE


@functools.cache
def _translated_languages() -> frozenset[str]:
    """The offered languages with a compiled catalogue of ours (English needs none)."""
    from pathlib import Path

    found = {settings.LANGUAGE_CODE}
    for code, _name in settings.LANGUAGES:
        for folder in settings.LOCALE_PATHS:
            if (Path(folder) / code / "LC_MESSAGES" / "django.mo").is_file():
                found.add(code)
    return frozenset(found)


# --- Waves ----------------------------------------------------------------------------------


def wave_open(*, program: Program, period_start: dt.date) -> tuple[Wave, bool]:
    """Open the wave of ``program`` for ``period_start``; returns (wave, created).

    Exactly once per program and period: the unique constraint decides a race between two
    ticks, and the loser gets the winner's wave with ``created=False``.
    """
    cadence = Cadence.of(program)
    opens_at = cadence.opens_at(period_start)
    with transaction.atomic():
        wave, created = Wave.objects.get_or_create(
            program=program,
            period_start=period_start,
            defaults={
                "label": period_label(period_start, program.frequency),
                "opens_at": opens_at,
                "closes_at": opens_at + dt.timedelta(days=program.response_window_days),
                "status": Wave.Status.OPEN,
            },
        )
        if created:
            _mark_skipped_periods(program=program, cadence=cadence, before=period_start)
            from . import tasks

            transaction.on_commit(lambda: tasks.populate_wave.delay(wave.pk))
    return wave, created


def _mark_skipped_periods(*, program: Program, cadence: Cadence, before: dt.date) -> None:
    """Record the periods between the previous wave and ``before`` as skipped (beat was down),
    so a gap is visible instead of a flood of late waves."""
    previous = (
        Wave.objects.filter(program=program, period_start__lt=before)
        .order_by("-period_start")
        .values_list("period_start", flat=True)
        .first()
    )
    if previous is None:
        return
    skipped = []
    period = cadence.next_period(previous)
    while period < before:
        opens_at = cadence.opens_at(period)
        skipped.append(
            Wave(
                program=program,
                period_start=period,
                label=period_label(period, program.frequency),
                opens_at=opens_at,
                closes_at=opens_at + dt.timedelta(days=program.response_window_days),
                status=Wave.Status.SKIPPED,
            )
        )
        period = cadence.next_period(period)
    Wave.objects.bulk_create(skipped, ignore_conflicts=True)


def programs_due(*, now: dt.datetime | None = None) -> list[tuple[Program, dt.date]]:
    """Active programs whose current period has no wave yet and is still open for answers.

    Only the current period is considered, so after downtime one wave opens, not one per
    missed period; a period whose response window has already passed is not opened at all.
    """
    now = now or timezone.now()
    due = []
    for program in Program.objects.filter(is_active=True):
        cadence = Cadence.of(program)
        period = cadence.period_on_or_before(now)
        if period < program.starts_on:
            continue
        closes_at = cadence.opens_at(period) + dt.timedelta(days=program.response_window_days)
        if now >= closes_at:
            continue
        if not Wave.objects.filter(program=program, period_start=period).exists():
            due.append((program, period))
    return due


def waves_open_due(*, now: dt.datetime | None = None) -> list[Wave]:
    """The beat tick: open the current period's wave of every program in ``programs_due``."""
    opened = []
    for program, period in programs_due(now=now):
        wave, created = wave_open(program=program, period_start=period)
        if created:
            logger.info("Opened wave %s (%s)", wave.pk, wave)
            opened.append(wave)
    return opened


def waves_close_due(*, now: dt.datetime | None = None) -> int:
    """Close open waves whose response window has ended; cancels their unsent invitations."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Wave.objects.filter(status=Wave.Status.OPEN, closes_at__lte=now).values_list(
                "pk", flat=True
            )
        )
        if not due:
            return 0
        # Also rows left "sending" by a worker that died: the sweep only serves open waves, so
        # nothing else would ever settle them. A row claimed recently is left to its worker.
        Invitation.objects.filter(wave_id__in=due).filter(
            Q(status=Invitation.Status.QUEUED)
            | Q(status=Invitation.Status.SENDING, claimed_at__lt=now - STALE_AFTER)
        ).update(status=Invitation.Status.CANCELLED, last_error="The wave closed before sending.")
        return Wave.objects.filter(pk__in=due, status=Wave.Status.OPEN).update(
            status=Wave.Status.CLOSED, updated_at=now
        )


# --- Invitations ----------------------------------------------------------------------------


def eligible_contacts(*, wave: Wave):
    """Contacts the wave may invite: active partner and contact, not opted out or bounced,
    in the program's audience, and not invited by any program within its throttle window."""
    program = wave.program
    contacts = Contact.objects.filter(
        is_active=True,
        opted_out_at__isnull=True,
        bounced_at__isnull=True,
        complained_at__isnull=True,
        partner__is_active=True,
    )
    tier_ids = list(program.tiers.values_list("pk", flat=True))
    if tier_ids:
        contacts = contacts.filter(partner__tier_id__in=tier_ids)
    type_ids = list(program.partner_types.values_list("pk", flat=True))
    if type_ids:
        contacts = contacts.filter(partner__partner_type_id__in=type_ids)
    if program.regions:
        region_q = Q()
        for region in program.regions:
            region_q |= Q(partner__region__iexact=region)
        contacts = contacts.filter(region_q)
    throttle_since = wave.opens_at - dt.timedelta(days=program.throttle_days)
    # An invitation cancelled or failed before it reached the contact did not survey them.
    recently_invited = (
        Invitation.objects.filter(created_at__gte=throttle_since)
        .exclude(status__in=[Invitation.Status.CANCELLED, Invitation.Status.FAILED])
        .exclude(wave=wave)
    )
    return contacts.exclude(pk__in=recently_invited.values("contact_id")).exclude(
        pk__in=Invitation.objects.filter(wave=wave).values("contact_id")
    )


def invitations_create(*, wave: Wave, now: dt.datetime | None = None, chunk: int = 2000) -> int:
    """Create the wave's missing invitations in bulk and enqueue their sending. Idempotent."""
    now = now or timezone.now()
    if wave.status != Wave.Status.OPEN:
        return 0
    contact_ids = list(eligible_contacts(wave=wave).values_list("pk", flat=True))
    for ids in _chunks(contact_ids, chunk):
        with transaction.atomic():
            Invitation.objects.bulk_create(
                [Invitation(wave=wave, contact_id=cid, created_at=now) for cid in ids],
                ignore_conflicts=True,
            )
    invitations_enqueue_due(now=now, wave=wave)
    return len(contact_ids)


def invitations_enqueue_due(
    *, now: dt.datetime | None = None, wave: Wave | None = None, limit: int = 20000
) -> int:
    """Enqueue send tasks, in batches, for queued invitations that have none in flight.

    Also returns rows stuck in "sending" (their worker died) to the queue. Marks each enqueued
    row with ``enqueued_at`` so the next tick does not enqueue it again.
    """
    now = now or timezone.now()
    stale = now - STALE_AFTER
    rows = Invitation.objects.filter(wave__status=Wave.Status.OPEN)
    if wave is not None:
        rows = rows.filter(wave=wave)
    stuck = rows.filter(status=Invitation.Status.SENDING, claimed_at__lt=stale)
    # A row whose worker died on every attempt would otherwise go round forever.
    stuck.filter(attempts__gte=settings.NPS_SEND_MAX_ATTEMPTS).update(
        status=Invitation.Status.FAILED,
        last_error="The worker sending it stopped on every attempt.",
    )
    stuck.update(status=Invitation.Status.QUEUED, enqueued_at=None)
    due = (
        rows.filter(status=Invitation.Status.QUEUED)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk")
    )
    ids = list(due.values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    from . import tasks

    batch_size = settings.NPS_SEND_BATCH_SIZE
    with transaction.atomic():
        for batch in _chunks(ids, 5000):
            Invitation.objects.filter(pk__in=batch).update(enqueued_at=now)
        for batch in _chunks(ids, batch_size):
            tasks.send_invitations.delay_on_commit(batch)
    return len(ids)


def token_issue(*, invitation: Invitation) -> str:
    """A fresh token for ``invitation``; only its hash is stored. Returns the plain token."""
    token = new_token()
    InvitationToken.objects.create(invitation=invitation, token_hash=hash_token(token))
    return token


def survey_links(token: str) -> dict[str, str]:
    base = settings.SITE_URL
    respond = base + reverse("surveys:respond", args=[token])
    return {
        "survey_url": respond,
        "score_urls": [(score, f"{respond}?score={score}") for score in range(11)],
        "unsubscribe_url": base + reverse("surveys:unsubscribe", args=[token]),
    }


def invitation_message(*, invitation: Invitation, token: str, connection=None):
    """The invitation email, in the contact's language, with the one-click unsubscribe headers
    of RFC 8058."""
    from nps_project.emailing import render_email, sender

    contact = invitation.contact
    program = invitation.wave.program
    links = survey_links(token)
    context = {
        "contact": contact,
        "partner": contact.partner,
        "program": program,
        "wave": invitation.wave,
        **links,
    }
    with translation.override(supported_language(contact.language)):
        return render_email(
            "invitation",
            context,
            to=contact.email,
            from_email=sender(program.sender_name),
            headers={
                "List-Unsubscribe": f"<{links['unsubscribe_url']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
            connection=connection,
        )


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(minutes=min(2**attempts, 240))


def invitations_send(*, invitation_ids: list[int], now: dt.datetime | None = None) -> int:
    """Email a batch of invitations over one SMTP connection. Returns how many were sent.

    Each row is claimed with a conditional UPDATE (queued -> sending) before anything is sent, so
    a batch delivered twice sends nothing the second time. A temporary failure puts the row back
    in the queue with a back-off; after ``NPS_SEND_MAX_ATTEMPTS`` it is marked failed with the
    reason. If the connection cannot be opened at all nothing is claimed and the error is raised
    for the task to retry.
    """
    now = now or timezone.now()
    connection = get_connection()
    connection.open()
    sent = 0
    try:
        for invitation_id in invitation_ids:
            claimed = Invitation.objects.filter(
                pk=invitation_id, status=Invitation.Status.QUEUED
            ).update(
                status=Invitation.Status.SENDING,
                claimed_at=timezone.now(),
                attempts=F("attempts") + 1,
            )
            if not claimed:
                continue
            invitation = Invitation.objects.select_related("contact__partner", "wave__program").get(
                pk=invitation_id
            )
            if not invitation.contact.can_be_surveyed or not invitation.wave.is_open_at(
                timezone.now()
            ):
                Invitation.objects.filter(pk=invitation_id).update(
                    status=Invitation.Status.CANCELLED,
                    last_error="The contact can no longer be surveyed or the wave is closed.",
                )
                continue
            token = token_issue(invitation=invitation)
            try:
                invitation_message(invitation=invitation, token=token, connection=connection).send()
            except (SMTPException, OSError) as exc:
                _send_failed(invitation, exc, now=now)
                # The connection may be broken now; a fresh one serves the rest of the batch.
                connection.close()
                connection.open()
                continue
            Invitation.objects.filter(pk=invitation_id).update(
                status=Invitation.Status.SENT, sent_at=timezone.now(), last_error=""
            )
            sent += 1
    finally:
        connection.close()
    return sent


def _send_failed(invitation: Invitation, exc: Exception, *, now: dt.datetime) -> None:
    reason = f"{type(exc).__name__}: {exc}"[:1000]
    attempts = invitation.attempts
    if attempts >= settings.NPS_SEND_MAX_ATTEMPTS:
        status, next_attempt = Invitation.Status.FAILED, None
    else:
        status, next_attempt = Invitation.Status.QUEUED, now + _backoff(attempts)
    logger.warning("Sending invitation %s failed (%s): %s", invitation.pk, attempts, reason)
    Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.SENDING).update(
        status=status, last_error=reason, next_attempt_at=next_attempt, enqueued_at=None
    )


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a survey link belongs to, or None for an unknown token. Reads only."""
    from .tokens import looks_like_token

    if not isinstance(token, str) or not token.isascii() or not looks_like_token(token):
        return None
    return (
        Invitation.objects.select_related("wave__program", "contact__partner", "response")
        .filter(tokens__token_hash=hash_token(token))
        .first()
    )


# --- Responses ------------------------------------------------------------------------------


def _validated_score(score) -> int:
    try:
        value = int(score)
    except (TypeError, ValueError):
        value = None
    if value is None or str(score).strip() != str(value) or not 0 <= value <= 10:
        raise ValidationError({"score": _("Choose a score from 0 to 10.")})
    return value


ANSWER_MAX_LENGTH = 1000  # one extra question's text answer


def _validated_answers(program: Program, answers) -> dict[str, str]:
    """The answers to ``program.extra_questions``: known keys only, a choice among the choices,
    text trimmed and at most ``ANSWER_MAX_LENGTH`` characters; empty answers are left out."""
    if answers is None:
        return {}
    if not isinstance(answers, dict):
        raise ValidationError({"answers": _("The answers could not be read.")})
    questions = {q.get("key"): q for q in (program.extra_questions or []) if isinstance(q, dict)}
    cleaned, errors = {}, {}
    for key, value in answers.items():
        question = questions.get(key)
        if question is None:
            errors[f"q_{key}"] = _("This question is not part of the survey.")
            continue
        value = "" if value is None else value
        if not isinstance(value, str):
            errors[f"q_{key}"] = _("The answers could not be read.")
            continue
        value = value.strip()
        if not value:
            continue
        if question.get("type") == "choice" and value not in (question.get("choices") or []):
            errors[f"q_{key}"] = _("Choose one of the answers offered.")
        elif len(value) > ANSWER_MAX_LENGTH:
            errors[f"q_{key}"] = _("Please keep this answer under 1,000 characters.")
        else:
            cleaned[key] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def response_submit(
    *,
    invitation_id: int,
    score: int | str,
    comment: str = "",
    answers: dict[str, str] | None = None,
    wants_contact: bool = False,
    now: dt.datetime | None = None,
) -> Response:
    """Record or revise the answer to one invitation; a detractor gets its follow-up.

    Locks the invitation row, so two submissions at the same instant produce one response. The
    answer may be revised while the wave is open; the partner's segment is recorded as it is at
    the first answer. ``answers`` holds the program's extra questions by key (validated against
    ``Program.extra_questions``); ``wants_contact`` is the "please contact me" box. Raises
    ``ValidationError`` for a bad score, comment or answer and ``WaveClosedError`` when the
    wave is not open; nothing is written in either case.
    """
    from followups.services import followup_for_response

    now = now or timezone.now()
    value = _validated_score(score)
    comment = (comment or "").strip()
    if len(comment) > 5000:
        raise ValidationError({"comment": _("Please keep your answer under 5,000 characters.")})
    invitation = (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("wave__program", "contact__partner__tier", "contact__partner__partner_type")
        .get(pk=invitation_id)
    )
    cleaned_answers = _validated_answers(invitation.wave.program, answers)
    wants_contact = bool(wants_contact)
    if not invitation.wave.is_open_at(now):
        raise WaveClosedError
    partner = invitation.contact.partner
    category = score_category(value)
    response = Response.objects.filter(invitation=invitation).first()
    if response is None:
        response = Response.objects.create(
            invitation=invitation,
            wave=invitation.wave,
            program_id=invitation.wave.program_id,
            partner=partner,
            contact=invitation.contact,
            score=value,
            category=category,
            comment=comment,
            answers=cleaned_answers,
            wants_contact=wants_contact,
            language=supported_language(invitation.contact.language),
            tier=partner.tier.name,
            partner_type=partner.partner_type.name,
            region=partner.region,
            account_owner_id=partner.account_owner_id,
            submitted_at=now,
        )
        revised_from = None
    else:
        revised_from = (response.score, response.comment)
        response.score, response.category, response.comment = value, category, comment
        response.answers, response.wants_contact = cleaned_answers, wants_contact
        response.save(
            update_fields=[
                "score",
                "category",
                "comment",
                "answers",
                "wants_contact",
                "updated_at",
            ]
        )
    followup_for_response(response=response, revised_from=revised_from, now=now)
    if revised_from is None:
        from webhooks import payloads
        from webhooks.services import event_emit

        event_emit(event="response.created", payload=payloads.response_data(response))
    return response


# --- Contacts -------------------------------------------------------------------------------


@transaction.atomic
def contact_opt_out(*, contact_id: int, now: dt.datetime | None = None) -> bool:
    """Opt a contact out of every program; returns False if they already were. Their queued
    invitations are cancelled so nothing more is sent."""
    now = now or timezone.now()
    changed = Contact.objects.filter(pk=contact_id, opted_out_at__isnull=True).update(
        opted_out_at=now
    )
    if changed:
        Invitation.objects.filter(contact_id=contact_id, status=Invitation.Status.QUEUED).update(
            status=Invitation.Status.CANCELLED, last_error="The contact opted out."
        )
    return bool(changed)


@transaction.atomic
def contacts_resubscribe(*, contact_ids: Iterable[int]) -> list[Contact]:
    """Clear the opt-out of the given contacts (an admin's decision, e.g. the contact asked by
    email to be surveyed again). Returns the contacts that were opted out and now are not; the
    others are left alone, so calling it twice is harmless. The caller checks the permission."""
    contacts = list(
        Contact.objects.select_for_update()
        .filter(pk__in=list(contact_ids), opted_out_at__isnull=False)
        .order_by("pk")
    )
    if contacts:
        Contact.objects.filter(pk__in=[c.pk for c in contacts]).update(
            opted_out_at=None, updated_at=timezone.now()
        )
        for contact in contacts:
            contact.opted_out_at = None
    return contacts
