"""Writes for the survey side of the loop: waves, invitations, sending, responses, opt-outs.

Every function here is safe to call twice: the database constraints are the backstop and each
side effect (an email) is preceded by a conditional UPDATE that claims the row.
"""

from __future__ import annotations

import collections
import datetime as dt
import email.policy
import functools
import io
import logging
import re
import secrets
import smtplib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from smtplib import SMTPException, SMTPServerDisconnected

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import sanitize_address
from django.core.validators import validate_email
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.html import escape as html_escape
from django.utils.translation import gettext as _

from nps_project.compiled import CompiledQuery
from scoring.nps import category as score_category

from .models import (
    Contact,
    Invitation,
    InvitationToken,
    Partner,
    PartnerType,
    Program,
    Response,
    Tier,
    Wave,
)
from .schedule import Cadence, period_label
from .tokens import hash_token, new_token

logger = logging.getLogger(__name__)

_END = object()


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
            | Q(status=Invitation.Status.SENDING, claimed_at__lt=now - _stale_after())
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


def _stale_after() -> dt.timedelta:
    """How long a row may stay in flight before the sweep takes it back (see settings)."""
    return dt.timedelta(seconds=settings.NPS_SEND_STALE_SECONDS)


# Releases stamped within this many seconds count against the current minute's rate budget.
# Beat ticks are a minute apart, so the previous tick's releases (about 60 s ago) never count,
# while a second release in the same minute (the tick after ``invitations_create``) does.
RATE_WINDOW = dt.timedelta(seconds=50)


def _rate_budgets(*, now: dt.datetime) -> tuple[int | None, dict[int, int]]:
    """What may still be released this minute: (global budget or None, {program_id: budget}).

    Only programs with a ``send_rate_per_minute`` appear in the dict. Invitations released (their
    ``enqueued_at``) and reminders claimed (``last_reminded_at``) within ``RATE_WINDOW`` are
    spent. Two to four aggregate queries, whatever the wave size.
    """
    rates = dict(
        Program.objects.filter(send_rate_per_minute__gt=0).values_list("pk", "send_rate_per_minute")
    )
    global_rate = settings.NPS_SEND_RATE_PER_MINUTE
    if not rates and not global_rate:
        return None, {}
    since = now - RATE_WINDOW
    spent: dict[int, int] = {}
    for stamp in ("enqueued_at", "last_reminded_at"):
        counts = (
            Invitation.objects.filter(**{f"{stamp}__gt": since})
            .values("wave__program_id")
            .annotate(n=Count("pk"))
            .values_list("wave__program_id", "n")
        )
        for program_id, n in counts:
            spent[program_id] = spent.get(program_id, 0) + n
    budgets = {pk: max(rate - spent.get(pk, 0), 0) for pk, rate in rates.items()}
    global_budget = max(global_rate - sum(spent.values()), 0) if global_rate else None
    return global_budget, budgets


def _within_budget(
    rows: list[tuple[int, int]], *, global_budget: int | None, budgets: dict[int, int]
) -> list[int]:
    """The ids of ``rows`` ((id, program_id), oldest first) that the rate budgets allow."""
    kept = []
    for pk, program_id in rows:
        if global_budget is not None and global_budget <= 0:
            break
        if program_id in budgets:
            if budgets[program_id] <= 0:
                continue
            budgets[program_id] -= 1
        if global_budget is not None:
            global_budget -= 1
        kept.append(pk)
    return kept


def _enqueue_spread(task, ids: list[int], *, rate_limited: bool) -> None:
    """Enqueue ``task`` after commit for ``ids`` in batches of ``NPS_SEND_BATCH_SIZE``.

    Rate-limited releases are cut into smaller batches whose countdowns spread them over the
    minute (short countdowns are safe on Redis: far below its visibility timeout), so the
    workers never sleep to keep a rate.
    """
    batch_size = settings.NPS_SEND_BATCH_SIZE
    if not rate_limited:
        for batch in _chunks(ids, batch_size):
            task.delay_on_commit(batch)
        return
    batch_size = max(1, min(batch_size, -(-len(ids) // 6)))
    batches = list(_chunks(ids, batch_size))
    for index, batch in enumerate(batches):
        countdown = round(index * 60 / len(batches), 1)
        transaction.on_commit(functools.partial(task.apply_async, (batch,), countdown=countdown))


def invitations_enqueue_due(
    *, now: dt.datetime | None = None, wave: Wave | None = None, limit: int | None = None
) -> int:
    """Enqueue send tasks, in batches, for queued invitations that have none in flight.

    Also returns rows stuck in "sending" (their worker died before the send) to the queue. Marks
    each enqueued row with ``enqueued_at`` so the next tick does not enqueue it again.

    The rate limit lives here, not in the workers: each call (beat ticks once a minute) releases
    at most ``Program.send_rate_per_minute`` rows of a program and ``NPS_SEND_RATE_PER_MINUTE``
    rows overall, minus what was already released this minute; the rest stay queued for the
    next tick.
    """
    now = now or timezone.now()
    limit = limit or settings.NPS_ENQUEUE_LIMIT
    stale = now - _stale_after()
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
    global_budget, budgets = _rate_budgets(now=now)
    rate_limited = global_budget is not None or bool(budgets)
    if rate_limited:
        pairs = list(due.values_list("pk", "wave__program_id")[:limit])
        ids = _within_budget(pairs, global_budget=global_budget, budgets=budgets)
    else:
        ids = list(due.values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    from . import tasks

    with transaction.atomic():
        for batch in _chunks(ids, 5000):
            Invitation.objects.filter(pk__in=batch).update(enqueued_at=now)
        _enqueue_spread(tasks.send_invitations, ids, rate_limited=rate_limited)
    return len(ids)


def token_issue(*, invitation: Invitation) -> str:
    """A fresh token for ``invitation``; only its hash is stored. Returns the plain token."""
    token = new_token()
    InvitationToken.objects.create(invitation=invitation, token_hash=hash_token(token))
    return token


def tokens_issue(*, invitations: list[Invitation]) -> dict[int, str]:
    """A fresh token for each invitation in one INSERT; returns {invitation_id: plain token}."""
    tokens = {invitation.pk: new_token() for invitation in invitations}
    InvitationToken.objects.bulk_create(
        [InvitationToken(invitation_id=pk, token_hash=hash_token(t)) for pk, t in tokens.items()]
    )
    return tokens


def survey_links(token: str) -> dict[str, str]:
    base = settings.SITE_URL
    respond = base + reverse("surveys:respond", args=[token])
    return {
        "survey_url": respond,
        "score_urls": [(score, f"{respond}?score={score}") for score in range(11)],
        "unsubscribe_url": base + reverse("surveys:unsubscribe", args=[token]),
    }


def address_problem(email: str) -> str | None:
    """Why ``email`` cannot be a recipient, or None. A line break anywhere (which could start a
    new header) is refused, as is anything Django's validator refuses."""
    if not isinstance(email, str) or "\r" in email or "\n" in email:
        return "The email address contains a line break."
    try:
        validate_email(email)
    except ValidationError:
        return f"Invalid email address: {email[:200]!r}."
    return None


def _invitation_context(*, contact, partner, program, wave, token: str, is_reminder: bool):
    return {
        "contact": contact,
        "partner": partner,
        "program": program,
        "wave": wave,
        "is_reminder": is_reminder,
        **survey_links(token),
    }


def _unsubscribe_headers(unsubscribe_url: str) -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def invitation_message(
    *, invitation: Invitation, token: str, connection=None, is_reminder: bool = False
):
    """The invitation (or reminder) email, in the contact's language, with the one-click
    unsubscribe headers of RFC 8058. Renders its three templates; a batch uses
    ``InvitationMessages``, which renders them once per wave, language and kind.

    Only the bare address goes in ``To``; the contact's name appears in the body alone, and the
    subject and sender name are collapsed to one line, so no name can add a header.
    """
    from nps_project.emailing import render_email, sender

    contact = invitation.contact
    program = invitation.wave.program
    context = _invitation_context(
        contact=contact,
        partner=contact.partner,
        program=program,
        wave=invitation.wave,
        token=token,
        is_reminder=is_reminder,
    )
    with translation.override(supported_language(contact.language)):
        message = render_email(
            "invitation",
            context,
            to=contact.email,
            from_email=sender(program.sender_name),
            headers=_unsubscribe_headers(context["unsubscribe_url"]),
            connection=connection,
        )
        if is_reminder:
            message.subject = _("Reminder: %(subject)s") % {"subject": message.subject}
    return message


class PerEmailValueMissing(Exception):
    """A template rendered once for many people (a batch's emails, the form's first visit)
    read an attribute that is not filled in per person (see ``NameOnly``)."""


class NameOnly:
    """Stands in for a contact or partner while a template is rendered once for many people:
    its name is a placeholder replaced per person. Any other attribute raises (Django's
    templates let that exception through), so a template that starts using, say,
    ``contact.email`` fails loudly instead of showing one contact's value to everyone.
    ``filled_by`` names the code that fills the placeholders in."""

    __slots__ = ("name", "_role", "_filled_by")

    def __init__(
        self, name: str, role: str, filled_by: str = "surveys.services.InvitationMessages"
    ):
        self.name = name
        self._role = role
        self._filled_by = filled_by

    def __getattr__(self, attribute):
        raise PerEmailValueMissing(
            f"The template uses {self._role}.{attribute}; add it to the per-person values "
            f"of {self._filled_by}."
        )


@dataclass
class _Rendered:
    subject: str | None  # final subject when it holds no placeholder, else None
    raw_subject: str
    text: str
    html: str
    from_email: str
    unsubscribe_url: str
    reminder_format: str


class InvitationMessages:
    """Builds a batch's invitation or reminder emails with the templates rendered once per
    (wave, language, kind) instead of three renders per email.

    The templates are rendered with placeholders for the values that differ per email (the
    contact's name, the partner's name and the link token); each email then replaces them in
    one pass over the text: the raw value in the text part and the subject (those templates
    turn autoescaping off), the HTML-escaped value in the HTML part, which is what the template
    engine does to a plain string. The placeholders hold a random part drawn per process, so
    no name can contain one, and a substituted value is never scanned again. The result is
    the same email as ``invitation_message`` (tests compare them); a token that is not of the
    ``new_token`` shape falls back to the full render.
    """

    def __init__(self):
        marker = f"nps{secrets.token_hex(8)}"
        self._contact = f"{marker}contact"
        self._partner = f"{marker}partner"
        self._token = f"{marker}token"
        self._pattern = re.compile(re.escape(marker) + "(contact|partner|token)")
        self._groups: dict[tuple, _Rendered] = {}

    def _render(self, invitation: Invitation, language: str, is_reminder: bool) -> _Rendered:
        from nps_project.emailing import one_line, render_parts, sender

        wave = invitation.wave
        context = _invitation_context(
            contact=NameOnly(self._contact, "contact"),
            partner=NameOnly(self._partner, "partner"),
            program=wave.program,
            wave=wave,
            token=self._token,
            is_reminder=is_reminder,
        )
        with translation.override(language):
            raw_subject, text, html = render_parts("invitation", context)
            reminder_format = _("Reminder: %(subject)s") if is_reminder else "%(subject)s"
        subject = None
        if not self._pattern.search(raw_subject):
            subject = reminder_format % {"subject": one_line(raw_subject)}
        return _Rendered(
            subject=subject,
            raw_subject=raw_subject,
            text=text,
            html=html,
            from_email=sender(wave.program.sender_name),
            unsubscribe_url=context["unsubscribe_url"],
            reminder_format=reminder_format,
        )

    def message(
        self, *, invitation: Invitation, token: str, connection=None, is_reminder: bool = False
    ):
        from nps_project.emailing import build_email, one_line

        from .tokens import looks_like_token

        if not looks_like_token(token):
            return invitation_message(
                invitation=invitation, token=token, connection=connection, is_reminder=is_reminder
            )
        contact = invitation.contact
        language = supported_language(contact.language)
        key = (invitation.wave_id, language, is_reminder)
        rendered = self._groups.get(key)
        if rendered is None:
            rendered = self._groups[key] = self._render(invitation, language, is_reminder)
        raw = {"contact": contact.name, "partner": contact.partner.name, "token": token}
        escaped = {name: html_escape(value) for name, value in raw.items()}

        def fill(template: str, values: dict) -> str:
            return self._pattern.sub(lambda match: values[match.group(1)], template)

        subject = rendered.subject
        if subject is None:
            subject = rendered.reminder_format % {
                "subject": one_line(fill(rendered.raw_subject, raw))
            }
        return build_email(
            subject=subject,
            text=fill(rendered.text, raw),
            html=fill(rendered.html, escaped),
            to=contact.email,
            from_email=rendered.from_email,
            headers=_unsubscribe_headers(rendered.unsubscribe_url.replace(self._token, token)),
            connection=connection,
        )


def _backoff(attempts: int) -> dt.timedelta:
    seconds = settings.NPS_SEND_RETRY_BASE_SECONDS * 2**attempts
    return dt.timedelta(seconds=min(seconds, settings.NPS_SEND_RETRY_MAX_SECONDS))


def _claim_returning(*, set_sql: str, set_params: list, where_sql: str, params: list, ids):
    """Run ``UPDATE surveys_invitation SET <set_sql> WHERE id IN (ids) AND <where_sql>
    RETURNING id`` and return the ids this call claimed: one statement for a whole batch, and
    a row another worker claimed first is not among them (PostgreSQL re-checks the WHERE after
    waiting for the other's row lock; SQLite runs one writer at a time)."""
    ids = list(ids)
    if not ids:
        return []
    table = Invitation._meta.db_table
    placeholders = ", ".join(["%s"] * len(ids))
    sql = (
        f"UPDATE {table} SET {set_sql} "  # noqa: S608 - fixed SQL, values are parameters
        f"WHERE id IN ({placeholders}) AND {where_sql} RETURNING id"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [*set_params, *ids, *params])
        return sorted(row[0] for row in cursor.fetchall())


def _db_time(value: dt.datetime):
    return db_connection.ops.adapt_datetimefield_value(value)


def _claim_for_sending(ids: list[int], *, now: dt.datetime) -> list[int]:
    """Claim queued invitations (queued -> sending, one more attempt); returns the claimed ids."""
    return _claim_returning(
        set_sql="status = %s, claimed_at = %s, updated_at = %s, attempts = attempts + 1",
        set_params=[Invitation.Status.SENDING, _db_time(now), _db_time(now)],
        where_sql="status = %s",
        params=[Invitation.Status.QUEUED],
        ids=ids,
    )


def _open_batch(ids: list[int]) -> list[Invitation]:
    return list(
        Invitation.objects.select_related("contact__partner", "wave__program")
        .filter(pk__in=ids)
        .order_by("pk")
    )


def invitations_send(*, invitation_ids: list[int], now: dt.datetime | None = None) -> int:
    """Email a batch of invitations over one SMTP connection. Returns how many were sent.

    The batch is claimed with one conditional UPDATE (queued -> sending) before anything is
    sent, so a batch delivered twice sends nothing the second time. Then one SELECT loads the
    claimed rows, one UPDATE cancels those that may no longer be emailed, one INSERT stores the
    tokens, and each message is marked sent right after the server accepted it, before the next
    one's content goes out (``_deliver``: over SMTP with PIPELINING, one round trip per email): a
    worker killed mid-batch leaves only unsent rows in "sending", which the sweep returns to the
    queue.

    A temporary failure puts the row back in the queue with a back-off; after
    ``NPS_SEND_MAX_ATTEMPTS`` it is marked failed with the reason. If the connection cannot be
    opened at all nothing is claimed and the error is raised for the task to retry; if it
    cannot be reopened mid-batch, the rest of the batch goes back to the queue.
    """
    now = now or timezone.now()
    connection = get_connection()
    connection.open()
    sent = 0
    try:
        claimed = _claim_for_sending(invitation_ids, now=timezone.now())
        if not claimed:
            return 0
        sendable, cancelled, invalid = [], [], {}
        for invitation in _open_batch(claimed):
            problem = address_problem(invitation.contact.email)
            if not invitation.contact.can_be_surveyed or not invitation.wave.is_open_at(
                timezone.now()
            ):
                cancelled.append(invitation.pk)
            elif problem:
                invitation.last_error = problem
                invalid[invitation.pk] = problem
            else:
                sendable.append(invitation)
        if cancelled:
            Invitation.objects.filter(pk__in=cancelled).update(
                status=Invitation.Status.CANCELLED,
                last_error="The contact can no longer be surveyed or the wave is closed.",
            )
        for pk, problem in invalid.items():
            Invitation.objects.filter(pk=pk).update(
                status=Invitation.Status.FAILED, last_error=problem
            )
        tokens = tokens_issue(invitations=sendable)
        messages = InvitationMessages()

        def build(invitation: Invitation):
            return messages.message(
                invitation=invitation, token=tokens[invitation.pk], connection=connection
            )

        for index, (invitation, error) in enumerate(_deliver(connection, sendable, build)):
            if error is None:
                _mark_sent(invitation.pk)
                sent += 1
                continue
            _send_failed(invitation, error, now=now)
            if not _reopen(connection):
                _release(sendable[index + 1 :], reason=error, now=now)
                break
    finally:
        connection.close()
    return sent


@dataclass
class _Outgoing:
    """One email ready to go: the SMTP envelope and bytes when it goes over SMTP, or the
    message for any other backend; or the error that building it raised."""

    item: object
    message: object = None
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    data: bytes = b""
    error: Exception | None = None


# An address of this shape (dot-atom local part, ASCII host name) is its own sanitized form and
# its own address in smtplib's <...>: Django's ``sanitize_address`` and smtplib's ``quoteaddr``,
# which parse every address, change nothing in it. Anything else goes through them.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


@functools.lru_cache(maxsize=256)  # a batch's sender is the same for every email
def _sanitized_cached(address: str, encoding: str) -> str:
    return sanitize_address(address, encoding)


def _sanitized(address: str, encoding: str) -> str:
    if _PLAIN_ADDRESS.fullmatch(address):
        return address
    return _sanitized_cached(address, encoding)


_quoted_cached = functools.lru_cache(maxsize=256)(smtplib.quoteaddr)


def _quoted(address: str) -> str:
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return _quoted_cached(address)


class _Compat32FoldingCache(type(email.policy.compat32)):
    """compat32 (the policy of Django's messages) remembering how it folded each header: most
    headers repeat from one email to the next (each part's Content-Type and encoding, the
    sender, the subject), and folding is two fifths of the cost of a message's bytes. (The
    generator clones the policy for each part, so the key is what folding depends on.)"""

    def fold_binary(self, name, value):
        if not isinstance(value, str):
            return super().fold_binary(name, value)
        key = (name, value, self.linesep, self.max_line_length, self.cte_type)
        folded = _FOLDED.get(key)
        if folded is None:
            folded = super().fold_binary(name, value)
            if len(_FOLDED) >= 2048:  # the per-email headers fill it; the repeated ones return
                _FOLDED.clear()
            _FOLDED[key] = folded
        return folded


_FOLDED: dict[tuple, bytes] = {}
_SMTP_POLICY = _Compat32FoldingCache(linesep="\r\n")


def _as_bytes(mime) -> bytes:
    """``mime.as_bytes(linesep="\\r\\n")`` as Django's SMTP backend makes it, byte for byte,
    with the folded headers remembered."""
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_SMTP_POLICY).flatten(mime)
    return out.getvalue()


def _prepare(item, build, *, smtp: bool) -> _Outgoing:
    """Build ``item``'s email; over SMTP also its envelope and bytes, as Django's SMTP backend
    makes them. An error is kept for the email's turn (see ``_deliver``)."""
    try:
        message = build(item)
        if not smtp:
            return _Outgoing(item, message=message)
        encoding = message.encoding or settings.DEFAULT_CHARSET
        mime = message.message()
        if mime.is_multipart():
            # A random boundary, so the email package does not search the parts for one that
            # none contains (a regular expression compiled per message: a fifth of the bytes'
            # cost). 128 random bits: no name or link can contain it.
            mime.set_boundary(f"==============={secrets.token_hex(16)}==")
        return _Outgoing(
            item,
            message=message,
            sender=_sanitized(message.from_email, encoding),
            recipients=[_sanitized(a, encoding) for a in message.recipients()],
            data=_as_bytes(mime),
        )
    except Exception as exc:  # raised in its turn, never before the previous one is marked
        return _Outgoing(item, error=exc)


def _pipelining_client(connection) -> smtplib.SMTP | None:
    """The backend's open smtplib client if the server announced PIPELINING (RFC 2920)."""
    client = connection.connection
    if client is None:
        raise SMTPServerDisconnected("The connection to the mail server is closed.")
    client.ehlo_or_helo_if_needed()
    return client if client.does_esmtp and client.has_extn("pipelining") else None


def _envelope(client: smtplib.SMTP, out: _Outgoing) -> bytes:
    """MAIL FROM, RCPT TO and DATA in one write, as smtplib's ``sendmail`` words them."""
    size = f" size={len(out.data)}" if client.has_extn("size") else ""
    lines = [f"mail FROM:{_quoted(out.sender)}{size}"]
    lines += [f"rcpt TO:{_quoted(r)}" for r in out.recipients]
    lines.append("data")
    return ("\r\n".join(lines) + "\r\n").encode(client.command_encoding)


def _envelope_replies(client: smtplib.SMTP, out: _Outgoing) -> None:
    """Read the replies to an envelope; raise what smtplib's ``sendmail`` would raise."""
    mail = client.getreply()
    refused = {}
    for recipient in out.recipients:
        code, text = client.getreply()
        if code not in (250, 251):
            refused[recipient] = (code, text)
    data = client.getreply()
    failed = mail[0] != 250 or len(refused) == len(out.recipients) or data[0] != 354
    if failed and data[0] == 354:
        client.close()  # a server that took DATA anyway: drop it, the message never ends
    if mail[0] != 250:
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], out.sender)
    if len(refused) == len(out.recipients):
        raise smtplib.SMTPRecipientsRefused(refused)
    if data[0] != 354:
        raise smtplib.SMTPDataError(*data)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _content(data: bytes) -> bytes:
    """The message as sent after DATA: leading dots doubled, ended by CRLF . CRLF."""
    quoted = data
    if data.startswith(b".") or b"\n." in data:
        quoted = _LEADING_DOT.sub(b"..", data)
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    return quoted + b".\r\n"


def _deliver(connection, items: list, build) -> Iterator[tuple[object, Exception | None]]:
    """Send ``build(item)`` for each item over ``connection``; yield ``(item, None)`` once
    the server has accepted it, or ``(item, error)`` if it did not (the caller then reopens
    the connection or stops). An error raised by ``build`` is raised in that item's turn.

    The next email's content goes out only when the caller resumes the generator, so the
    caller records each accepted email before the next one is sent. Over Django's SMTP
    backend the emails are built one ahead, and when the server announces PIPELINING (RFC
    2920) the next email's envelope (MAIL, RCPT, DATA) travels with this one's content: one
    round trip per email instead of four, and the server reads the next envelope while the
    caller records this one. No content is sent before the server's 354 to its DATA.
    """
    smtp = type(connection) is SmtpBackend  # a subclass may change how it sends
    pending = iter(items)
    upcoming: collections.deque[_Outgoing] = collections.deque()

    def top_up():
        while len(upcoming) < 2 and (item := next(pending, _END)) is not _END:
            upcoming.append(_prepare(item, build, smtp=smtp))

    in_flight = None  # the email whose envelope the server has on ``client``
    client = None
    top_up()
    while upcoming:
        out = upcoming.popleft()
        if out.error is not None:
            raise out.error
        try:
            if not smtp:
                out.message.send()
            else:
                if in_flight is not out:
                    client = _pipelining_client(connection)
                    if client is not None:
                        client.send(_envelope(client, out))
                if client is None:
                    connection.connection.sendmail(out.sender, out.recipients, out.data)
                else:
                    _envelope_replies(client, out)
                    following = upcoming[0] if upcoming and upcoming[0].error is None else None
                    envelope = _envelope(client, following) if following else b""
                    client.send(_content(out.data) + envelope)
                    in_flight = following
                    top_up()  # build the one after while the server takes this one
                    code, text = client.getreply()
                    if code != 250:
                        raise smtplib.SMTPDataError(code, text)
        except (SMTPException, OSError) as exc:
            in_flight = None
            yield out.item, exc
            top_up()
            continue
        yield out.item, None
        top_up()


def _mark_sent(pk: int) -> None:
    """One UPDATE for one email, right after the server accepted it (never batched: a worker
    killed mid-batch must leave every accepted email marked). Plain SQL: the statement is the
    one ``filter(pk=pk).update(...)`` runs, without building the query each time."""
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Invitation._meta.db_table} SET status = %s, sent_at = %s, "  # noqa: S608
            "last_error = '' WHERE id = %s",
            [Invitation.Status.SENT, _db_time(timezone.now()), pk],
        )


def _reopen(connection) -> bool:
    """A fresh connection after a failure (the old one may be broken); False if it cannot."""
    try:
        connection.close()
    except (SMTPException, OSError):
        pass
    try:
        connection.open()
    except (SMTPException, OSError):
        return False
    return True


def _release(invitations: list[Invitation], *, reason: Exception, now: dt.datetime) -> None:
    """Give claimed but untried rows back to the queue: the attempt is not counted, and the
    sweep takes them after the same back-off as the row that failed."""
    if not invitations:
        return
    attempts = invitations[0].attempts
    Invitation.objects.filter(
        pk__in=[i.pk for i in invitations], status=Invitation.Status.SENDING
    ).update(
        status=Invitation.Status.QUEUED,
        attempts=F("attempts") - 1,
        next_attempt_at=now + _backoff(attempts),
        enqueued_at=None,
        last_error=f"Not tried: the mail server went away ({type(reason).__name__}).",
    )


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


def _link_hash(token) -> str | None:
    """The stored hash of a survey link's token, or None for anything not shaped like one."""
    from .tokens import looks_like_token

    if not isinstance(token, str) or not token.isascii() or not looks_like_token(token):
        return None
    return hash_token(token)


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a survey link belongs to, or None for an unknown token. Reads only."""
    token_hash = _link_hash(token)
    return None if token_hash is None else _INVITATION_BY_TOKEN_HASH.first(token_hash)


# The survey link's lookup, on every partner request: compiled once per process (see
# ``nps_project.compiled``). A token hash is unique: no ORDER BY (``first()`` would add one).
_INVITATION_BY_TOKEN_HASH = CompiledQuery(
    lambda token_hash: (
        Invitation.objects.select_related("wave__program", "contact__partner", "response")
        .filter(tokens__token_hash=token_hash)
        .order_by()[:1]
    )
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


def _answer_row(
    invitation: Invitation,
    *,
    score: int,
    comment: str,
    answers: dict[str, str],
    wants_contact: bool,
    now: dt.datetime,
) -> dict:
    """The columns of a first answer to ``invitation``; the tier and partner type as ids, whose
    names the statement reads (``_SEGMENT_NAMES``): the partner's segment as it is now."""
    partner = invitation.contact.partner
    return {
        "invitation": invitation.pk,
        "wave": invitation.wave_id,
        "program": invitation.wave.program_id,
        "partner": partner.pk,
        "contact": invitation.contact_id,
        "language": supported_language(invitation.contact.language),
        "tier": partner.tier_id,
        "partner_type": partner.partner_type_id,
        "region": partner.region,
        "account_owner": partner.account_owner_id,
        **_answer_values(
            score=score, comment=comment, answers=answers, wants_contact=wants_contact, now=now
        ),
    }


def _answer_values(
    *, score: int, comment: str, answers: dict[str, str], wants_contact: bool, now: dt.datetime
) -> dict:
    """The columns of an answer that come from the answer itself, not from the link."""
    return {
        "score": score,
        "category": score_category(score),
        "comment": comment,
        "answers": answers,
        "wants_contact": wants_contact,
        "submitted_at": now,
        "updated_at": now,
        "settle_state": Response.SettleState.NEW,
        "previous_score": None,
    }


def _validated_comment(comment) -> str:
    comment = (comment or "").strip()
    if len(comment) > 5000:
        raise ValidationError({"comment": _("Please keep your answer under 5,000 characters.")})
    return comment


@functools.cache
def _upsert_sql(vendor: str) -> str:
    """One statement that writes a first answer or revises the existing one, only while the
    wave takes answers (no row comes back when it does not).

    A revision keeps the segment and submission time of the first answer, and marks the row for
    settling ("revised", keeping the score it had when it was last settled) unless it changes
    neither score nor comment; an unsettled first answer stays "new". ``INSERT … SELECT …
    WHERE … ON CONFLICT … RETURNING`` is understood alike by PostgreSQL and SQLite 3.35+.
    """
    table = Response._meta.db_table
    wave_table = Wave._meta.db_table
    columns = ", ".join(Response._meta.get_field(name).column for name in _answer_row_fields())
    placeholders = ", ".join(
        f"(SELECT name FROM {_SEGMENT_NAMES[name]._meta.db_table} WHERE id = %s)"
        if name in _SEGMENT_NAMES
        else "%s"
        for name in _answer_row_fields()
    )
    return (
        f"INSERT INTO {table} ({columns}) SELECT {placeholders} "  # noqa: S608
        f"WHERE EXISTS (SELECT 1 FROM {wave_table} WHERE id = %s AND status = %s "
        "AND opens_at <= %s AND closes_at > %s) " + _UPSERT_CONFLICT
    )


def _upsert_conflict_sql() -> str:
    """The ``ON CONFLICT … RETURNING`` of both answer statements: what a revision changes."""
    table = Response._meta.db_table
    new, revised = Response.SettleState.NEW.value, Response.SettleState.REVISED.value
    return (
        "ON CONFLICT (invitation_id) DO UPDATE SET "
        "score = excluded.score, category = excluded.category, comment = excluded.comment, "
        "answers = excluded.answers, wants_contact = excluded.wants_contact, "
        "updated_at = excluded.updated_at, "
        f"previous_score = CASE {table}.settle_state WHEN '{new}' THEN NULL "
        f"WHEN '{revised}' THEN {table}.previous_score ELSE {table}.score END, "
        f"settle_state = CASE WHEN {table}.settle_state = '{new}' THEN '{new}' "
        f"WHEN {table}.score = excluded.score AND {table}.comment = excluded.comment "
        f"THEN {table}.settle_state ELSE '{revised}' END "
        "RETURNING id"
    )


_UPSERT_CONFLICT = _upsert_conflict_sql()


@functools.cache
def _token_upsert_sql() -> str:
    """``response_record_for_token``'s statement: the link's lookup and the answer's upsert in
    one. The columns come in ``_answer_row_fields`` order; the partner's segment, the ids and
    the contact's language are read by the statement itself."""
    from_tables = {
        "invitation": "i.id",
        "wave": "i.wave_id",
        "program": "w.program_id",
        "partner": "c.partner_id",
        "contact": "i.contact_id",
        "language": "c.language",
        "tier": "tier.name",
        "partner_type": "ptype.name",
        "region": "p.region",
        "account_owner": "p.account_owner_id",
    }
    fields = _answer_row_fields()
    columns = ", ".join(Response._meta.get_field(name).column for name in fields)
    values = ", ".join(from_tables.get(name, "%s") for name in fields)
    languages = ", ".join(["%s"] * len(_translated_languages()))
    return (
        f"INSERT INTO {Response._meta.db_table} ({columns}) SELECT {values} "  # noqa: S608
        f"FROM {InvitationToken._meta.db_table} t "
        f"JOIN {Invitation._meta.db_table} i ON i.id = t.invitation_id "
        f"JOIN {Wave._meta.db_table} w ON w.id = i.wave_id "
        f"JOIN {Contact._meta.db_table} c ON c.id = i.contact_id "
        f"JOIN {Partner._meta.db_table} p ON p.id = c.partner_id "
        f"LEFT JOIN {Tier._meta.db_table} tier ON tier.id = p.tier_id "
        f"LEFT JOIN {PartnerType._meta.db_table} ptype ON ptype.id = p.partner_type_id "
        "WHERE t.token_hash = %s AND w.status = %s AND w.opens_at <= %s AND w.closes_at > %s "
        f"AND c.language IN ({languages}) " + _UPSERT_CONFLICT
    )


# The segment columns a first answer copies by name from the partner's tier and partner type.
_SEGMENT_NAMES = {"tier": Tier, "partner_type": PartnerType}


def _answer_row_fields() -> tuple[str, ...]:
    return (
        "invitation",
        "wave",
        "program",
        "partner",
        "contact",
        "score",
        "category",
        "comment",
        "answers",
        "wants_contact",
        "language",
        "tier",
        "partner_type",
        "region",
        "account_owner",
        "submitted_at",
        "updated_at",
        "settle_state",
        "previous_score",
    )


def response_record(
    *,
    invitation: Invitation,
    score: int | str,
    comment: str = "",
    answers: dict[str, str] | None = None,
    wants_contact: bool = False,
    now: dt.datetime | None = None,
) -> int:
    """Record or revise the answer to ``invitation``; returns the response's id. The partner's
    write path: one SQL statement in its own transaction, nothing slow inline, no broker call.

    ``invitation`` comes with its wave, program, contact and partner (as
    ``invitation_for_token`` loads it). The statement writes only while the wave is open, and
    two submissions at the same instant produce one response (the invitation is unique). The
    partner's segment is recorded as it is at the first answer. What follows an answer (its
    follow-up, the ``response.created`` webhook, the note on a revised answer) is
    ``response_settle``'s work: the row is left marked "new" or "revised" (an outbox in the
    table itself) and the settle tick takes it within seconds, so an answer is never lost to a
    broker outage and the partner never waits for one. Raises ``ValidationError`` for a bad
    score, comment or answer and ``WaveClosedError`` when the wave is not open; nothing is
    written in either case.
    """
    now = now or timezone.now()
    value = _validated_score(score)
    comment = _validated_comment(comment)
    cleaned_answers = _validated_answers(invitation.wave.program, answers)
    if not invitation.wave.is_open_at(now):
        raise WaveClosedError
    row = _answer_row(
        invitation,
        score=value,
        comment=comment,
        answers=cleaned_answers,
        wants_contact=bool(wants_contact),
        now=now,
    )
    connection = transaction.get_connection(Response.objects.db)
    params = [
        row[name]
        if name in _SEGMENT_NAMES
        else Response._meta.get_field(name).get_db_prep_save(row[name], connection)
        for name in _answer_row_fields()
    ]
    wave_time = Wave._meta.get_field("opens_at").get_db_prep_save(now, connection)
    params += [invitation.wave_id, Wave.Status.OPEN, wave_time, wave_time]
    with connection.cursor() as cursor:
        cursor.execute(_upsert_sql(connection.vendor), params)
        returned = cursor.fetchone()
    if returned is None:
        raise WaveClosedError  # it closed between loading the invitation and writing
    return returned[0]


def response_record_for_token(
    *,
    token: str,
    score: int,
    comment: str = "",
    wants_contact: bool = False,
    now: dt.datetime | None = None,
) -> int | None:
    """Record or revise the answer to the invitation of the survey link ``token``, with no
    answers to extra questions, in one SQL statement that finds the link and writes: the form's
    POST takes this path first. Returns the response's id, or None when the statement wrote
    nothing, which it does unless the link is known, its wave open and the contact's language
    stored as the code the answer keeps (``supported_language`` of it is itself, so nothing
    needs normalising): the caller then takes the full path (``invitation_for_token`` and
    ``response_record``), which writes the same row or says why it cannot.

    The row is that of ``response_record`` (tests compare them column by column): the
    partner's segment as it is at the first answer, "new" or "revised" for the settle tick.
    Raises ``ValidationError`` for a bad score or comment, before any SQL.
    """
    now = now or timezone.now()
    value = _validated_score(score)
    comment = _validated_comment(comment)
    token_hash = _link_hash(token)
    if token_hash is None:
        return None
    row = _answer_values(
        score=value, comment=comment, answers={}, wants_contact=bool(wants_contact), now=now
    )
    connection = transaction.get_connection(Response.objects.db)
    params = [
        Response._meta.get_field(name).get_db_prep_save(row[name], connection)
        for name in _answer_row_fields()
        if name in row
    ]
    wave_time = Wave._meta.get_field("opens_at").get_db_prep_save(now, connection)
    params += [token_hash, Wave.Status.OPEN, wave_time, wave_time]
    params += sorted(_translated_languages())
    with connection.cursor() as cursor:
        cursor.execute(_token_upsert_sql(), params)
        returned = cursor.fetchone()
    return None if returned is None else returned[0]


_SKIPPED = object()


def response_settle(*, response_id: int, now: dt.datetime | None = None, skip_locked: bool = False):
    """Do what follows an answer's last write: its follow-up (rules, or being a detractor), the
    ``response.created`` webhook for a first answer, the note on a follow-up of a revised one.
    Returns the response's follow-up, if it has one.

    Idempotent and safe to run concurrently: the response row is locked and its ``settle_state``
    says what is left to do; a settled response is left alone. A revision written while this
    runs waits for the lock and is settled by the next tick. With ``skip_locked`` a row that
    another worker holds is left to it (returns ``_SKIPPED``).
    """
    from followups.models import FollowUp
    from followups.services import followup_for_response

    now = now or timezone.now()
    with transaction.atomic():
        response = (
            Response.objects.select_for_update(of=("self",), skip_locked=skip_locked)
            .select_related("partner__account_owner")
            .filter(pk=response_id)
            .first()
        )
        if response is None:
            # Erased since, or (with skip_locked) another worker is settling it.
            if skip_locked and Response.objects.filter(pk=response_id).exists():
                return _SKIPPED
            return None
        state = response.settle_state
        if state == Response.SettleState.DONE:
            return FollowUp.objects.filter(response=response).first()
        first = state == Response.SettleState.NEW
        followup = followup_for_response(
            response=response,
            revised_from=None if first else response.previous_score,
            now=now,
            sla_from=response.updated_at,
        )
        if first:
            from webhooks import payloads
            from webhooks.services import event_emit

            event_emit(event="response.created", payload=payloads.response_data(response))
        Response.objects.filter(pk=response.pk).update(
            settle_state=Response.SettleState.DONE, previous_score=None
        )
    return followup


def responses_settle_pending(*, limit: int = 500) -> int:
    """The settle tick (every few seconds): settle the answers written since the last one, oldest
    first, up to ``limit``. Returns how many it settled. Rows another worker is settling are
    skipped, so ticks that overlap share the work."""
    pending = list(
        Response.objects.exclude(settle_state=Response.SettleState.DONE)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    settled = 0
    for response_id in pending:
        if response_settle(response_id=response_id, skip_locked=True) is not _SKIPPED:
            settled += 1
    return settled


def response_submit(
    *,
    invitation_id: int,
    score: int | str,
    comment: str = "",
    answers: dict[str, str] | None = None,
    wants_contact: bool = False,
    now: dt.datetime | None = None,
) -> Response:
    """Record or revise the answer to one invitation and settle it at once, in one transaction:
    for callers other than the partner's form (the demo, scripts, tests), who want the
    follow-up there when it returns. Same rules and errors as ``response_record``."""
    invitation = Invitation.objects.select_related("wave__program", "contact__partner").get(
        pk=invitation_id
    )
    with transaction.atomic():
        response_id = response_record(
            invitation=invitation,
            score=score,
            comment=comment,
            answers=answers,
            wants_contact=wants_contact,
            now=now,
        )
        response_settle(response_id=response_id, now=now)
    return Response.objects.select_related("followup").get(pk=response_id)


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


@transaction.atomic
def contacts_clear_delivery_block(*, contact_ids: Iterable[int]) -> list[Contact]:
    """Clear the hard bounce and spam complaint of the given contacts (an admin's decision, e.g.
    after the address was corrected or the contact asked to be surveyed again). Returns the
    contacts that had one; calling it twice is harmless. The caller checks the permission and
    logs the change."""
    contacts = list(
        Contact.objects.select_for_update()
        .filter(pk__in=list(contact_ids))
        .filter(Q(bounced_at__isnull=False) | Q(complained_at__isnull=False))
        .order_by("pk")
    )
    if contacts:
        Contact.objects.filter(pk__in=[c.pk for c in contacts]).update(
            bounced_at=None, complained_at=None, bounce_reason="", updated_at=timezone.now()
        )
    return contacts


# --- Reminders ------------------------------------------------------------------------------


def reminders_owed(*, wave: Wave, now: dt.datetime) -> int:
    """How many reminders a non-responder of ``wave`` should have had by ``now``: the reminder
    days that have passed, never more than the program's ``max_reminders``."""
    program = wave.program
    days = sorted(d for d in (program.reminder_days or []) if isinstance(d, int) and d > 0)
    passed = sum(1 for d in days if wave.opens_at + dt.timedelta(days=d) <= now)
    return min(passed, program.max_reminders)


def _remindable(invitations):
    """Sent, unanswered invitations whose contact may still be emailed."""
    return invitations.filter(
        status=Invitation.Status.SENT,
        response__isnull=True,
        contact__is_active=True,
        contact__opted_out_at__isnull=True,
        contact__bounced_at__isnull=True,
        contact__complained_at__isnull=True,
        contact__partner__is_active=True,
    )


def reminders_enqueue_due(*, now: dt.datetime | None = None, limit: int | None = None) -> int:
    """The reminder tick: enqueue reminder batches for non-responders who are owed one.

    One query per open wave (there are few), bounded by ``limit`` and the rate budgets. A row
    owed two reminders after downtime gets one (see ``reminders_send``). Enqueuing the same row
    twice (two ticks before a worker ran) is harmless: the send claims each row once.
    """
    now = now or timezone.now()
    limit = limit or settings.NPS_ENQUEUE_LIMIT
    global_budget, budgets = _rate_budgets(now=now)
    rate_limited = global_budget is not None or bool(budgets)
    ids: list[int] = []
    waves = Wave.objects.select_related("program").filter(
        status=Wave.Status.OPEN, opens_at__lte=now, closes_at__gt=now
    )
    for wave in waves.order_by("opens_at"):
        owed = reminders_owed(wave=wave, now=now)
        if not owed or len(ids) >= limit:
            continue
        due = _remindable(wave.invitations.filter(reminders_sent__lt=owed)).order_by("pk")
        pairs = [
            (pk, wave.program_id) for pk in due.values_list("pk", flat=True)[: limit - len(ids)]
        ]
        if rate_limited:
            kept = _within_budget(pairs, global_budget=global_budget, budgets=budgets)
            if global_budget is not None:
                global_budget -= len(kept)
        else:
            kept = [pk for pk, _program in pairs]
        ids.extend(kept)
    if not ids:
        return 0
    from . import tasks

    with transaction.atomic():
        _enqueue_spread(tasks.send_reminders, ids, rate_limited=rate_limited)
    return len(ids)


def _claim_reminders(ids: list[int], *, owed: int, now: dt.datetime) -> list[int]:
    """Claim reminder number ``owed`` for unanswered, sent rows that have had fewer: one
    conditional UPDATE of ``reminders_sent``, so a double run sends each reminder once."""
    response_table = Response._meta.db_table
    table = Invitation._meta.db_table
    return _claim_returning(
        set_sql="reminders_sent = %s, last_reminded_at = %s, updated_at = %s",
        set_params=[owed, _db_time(now), _db_time(now)],
        where_sql=(
            f"reminders_sent < %s AND status = %s AND NOT EXISTS "
            f"(SELECT 1 FROM {response_table} r WHERE r.invitation_id = {table}.id)"
        ),
        params=[owed, Invitation.Status.SENT],
        ids=ids,
    )


def reminders_send(*, invitation_ids: list[int], now: dt.datetime | None = None) -> int:
    """Email reminders to a batch of non-responders over one SMTP connection (``_deliver``:
    pipelined when the server allows it); returns how many.

    Each reminder carries a fresh token (the plain one of the first email was never kept). A
    row is skipped if its contact answered, opted out, bounced or complained, or the wave
    closed. After downtime a row owed several reminders gets one, counted as all of them, so
    reminders never bunch up and never exceed ``max_reminders``. A failed send gives the claim
    back for the next tick; a worker killed between claim and send loses that one reminder
    (a missed reminder is better than a second one).
    """
    now = now or timezone.now()
    candidates = _open_batch(invitation_ids)
    by_owed: dict[int, list[int]] = {}
    for invitation in candidates:
        contact = invitation.contact
        if not contact.can_be_surveyed or not contact.partner.is_active:
            continue
        if not invitation.wave.is_open_at(now) or address_problem(contact.email):
            continue
        owed = reminders_owed(wave=invitation.wave, now=now)
        if owed > invitation.reminders_sent:
            by_owed.setdefault(owed, []).append(invitation.pk)
    if not by_owed:
        return 0
    connection = get_connection()
    connection.open()
    sent = 0
    previous = {i.pk: (i.reminders_sent, i.last_reminded_at) for i in candidates}
    by_pk = {i.pk: i for i in candidates}
    messages = InvitationMessages()
    try:
        for owed, ids in by_owed.items():
            claimed = [by_pk[pk] for pk in _claim_reminders(ids, owed=owed, now=timezone.now())]
            tokens = tokens_issue(invitations=claimed)

            def build(invitation: Invitation, tokens=tokens):
                return messages.message(
                    invitation=invitation,
                    token=tokens[invitation.pk],
                    connection=connection,
                    is_reminder=True,
                )

            for invitation, error in _deliver(connection, claimed, build):
                if error is None:
                    sent += 1
                    continue
                logger.warning("Reminder for invitation %s failed: %s", invitation.pk, error)
                count, at = previous[invitation.pk]
                Invitation.objects.filter(pk=invitation.pk, reminders_sent=owed).update(
                    reminders_sent=count, last_reminded_at=at
                )
                _reopen(connection)
    finally:
        connection.close()
    return sent


# --- Bounces and complaints -----------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryEvent:
    """One event from the email provider: a bounce (hard or soft) or a spam complaint."""

    kind: str  # "bounce" or "complaint"
    email: str
    permanent: bool
    reason: str
    at: dt.datetime


@dataclass
class DeliveryEventsReport:
    bounced: list[str] = field(default_factory=list)
    complained: list[str] = field(default_factory=list)
    already_marked: int = 0
    soft_bounces: int = 0
    unknown: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        return (
            f"{len(self.bounced)} hard bounce(s) and {len(self.complained)} complaint(s) "
            f"recorded, {self.already_marked} already marked, {self.soft_bounces} soft "
            f"bounce(s) ignored, {len(self.unknown)} unknown address(es)"
            + (" (dry run: nothing written)" if self.dry_run else "")
        )


DELIVERY_EVENT_KINDS = ("bounce", "complaint")


def delivery_event_parse(raw, *, now: dt.datetime) -> DeliveryEvent:
    """Check one event: ``{"type": "bounce"|"complaint", "email": "...", "bounce_type":
    "hard"|"soft" (bounces only, default hard), "reason": "...", "at": ISO 8601 (optional)}``.
    Raises ``ValidationError`` with a message a person can act on."""
    if not isinstance(raw, dict):
        raise ValidationError("An event must be an object with type and email.")
    kind = str(raw.get("type") or "").strip().lower()
    if kind not in DELIVERY_EVENT_KINDS:
        raise ValidationError(f"Unknown event type {kind!r}; use bounce or complaint.")
    email = raw.get("email")
    if not isinstance(email, str) or address_problem(email.strip()):
        raise ValidationError(f"Not an email address: {str(email)[:200]!r}.")
    bounce_type = str(raw.get("bounce_type") or "hard").strip().lower()
    if bounce_type not in ("hard", "soft"):
        raise ValidationError(f"Unknown bounce_type {bounce_type!r}; use hard or soft.")
    reason = raw.get("reason") or ""
    if not isinstance(reason, str):
        raise ValidationError("The reason must be text.")
    at = now
    if raw.get("at"):
        parsed = parse_datetime(str(raw["at"]))
        if parsed is None or timezone.is_naive(parsed):
            raise ValidationError(
                f"Unreadable time {raw['at']!r}; use ISO 8601 with an offset, "
                "e.g. 2027-04-15T09:00:00+00:00."
            )
        at = parsed
    return DeliveryEvent(
        kind=kind,
        email=email.strip().lower(),
        permanent=kind == "complaint" or bounce_type == "hard",
        reason=" ".join(reason.split())[:300],
        at=at,
    )


def delivery_events_record(
    *, events: list, now: dt.datetime | None = None, dry_run: bool = False
) -> DeliveryEventsReport:
    """Record the provider's bounce and complaint events on the contacts.

    Validate, then mutate: one bad event raises ``ValidationError`` (listing every bad event by
    position) and nothing is written. A hard bounce sets ``bounced_at`` and ``bounce_reason``,
    a complaint ``complained_at``; the contact's queued invitations are cancelled, and
    ``eligible_contacts`` and the reminder queries exclude the contact from then on. A soft
    bounce changes nothing. An event for a contact already marked is counted, not re-applied,
    so a provider that posts an event twice is harmless.
    """
    now = now or timezone.now()
    if not isinstance(events, list):
        raise ValidationError("Give a list of events.")
    parsed, errors = [], []
    for index, raw in enumerate(events, start=1):
        try:
            parsed.append(delivery_event_parse(raw, now=now))
        except ValidationError as exc:
            errors.append(f"Event {index}: {' '.join(exc.messages)}")
    if errors:
        raise ValidationError(errors)
    report = DeliveryEventsReport(dry_run=dry_run)
    with transaction.atomic():
        for event in parsed:
            contact = Contact.objects.filter(email=event.email).first()
            if contact is None:
                report.unknown.append(event.email)
                continue
            if not event.permanent:
                report.soft_bounces += 1
                continue
            if event.kind == "bounce":
                rows = Contact.objects.filter(pk=contact.pk, bounced_at__isnull=True)
                changes = {"bounced_at": event.at, "bounce_reason": event.reason}
                done = report.bounced
            else:
                rows = Contact.objects.filter(pk=contact.pk, complained_at__isnull=True)
                changes = {"complained_at": event.at}
                done = report.complained
            if not rows.exists():
                report.already_marked += 1
                continue
            done.append(event.email)
            if dry_run:
                continue
            rows.update(**changes, updated_at=now)
            Invitation.objects.filter(
                contact_id=contact.pk, status=Invitation.Status.QUEUED
            ).update(
                status=Invitation.Status.CANCELLED,
                last_error=f"The address {'bounced' if event.kind == 'bounce' else 'complained'}.",
            )
            logger.info("Recorded a %s for contact %s", event.kind, contact.pk)
    return report


# --- Partners, contacts and programs --------------------------------------------------------
# Maintenance writes for the API, the CSV import (``surveys.importing``) and the admin. Each one
# checks everything first and raises ``ValidationError`` with a message per field, then writes
# in one transaction. An update takes only the fields it is given (the others default to
# ``UNCHANGED``) and does not touch the row, not even ``updated_at``, when nothing changes.
# (The imports below sit here, not at the top, because this section was appended to the module.)

import enum  # noqa: E402
import unicodedata  # noqa: E402
import zoneinfo  # noqa: E402
from typing import Any  # noqa: E402

from django.db import IntegrityError  # noqa: E402
from django.db.models.functions import Lower  # noqa: E402

from nps_project import roles  # noqa: E402


class Unchanged(enum.Enum):
    """The type of ``UNCHANGED``: an argument an update leaves as it is."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED

# ISO 639-1: the two-letter language codes a contact may have (deprecated ones excluded).
LANGUAGE_CODES = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy
    da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht
    hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky
    la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny
    oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss
    st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo
    za zh zu
    """.split()
)


def _text(errors: dict, field: str, value, *, model, empty: str | None) -> str:
    """``value`` stripped. Records an error when it is not text, is empty (if ``empty`` gives
    the reason it may not be), is longer than the column or holds a control character."""
    if not isinstance(value, str):
        errors[field] = _("Give text.")
        return ""
    text = value.strip()
    limit = model._meta.get_field(field).max_length
    if empty and not text:
        errors[field] = empty
    elif limit and len(text) > limit:
        errors[field] = _("Use at most %(limit)d characters.") % {"limit": limit}
    elif any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        errors[field] = _("Remove the control characters (such as line breaks or tabs).")
    return text


def _language(errors: dict, code) -> str:
    text = code.strip().lower() if isinstance(code, str) else ""
    if text not in LANGUAGE_CODES:
        errors["language"] = _(
            "“%(code)s” is not an ISO 639-1 language code (two letters, e.g. en, de, fr)."
        ) % {"code": code}
    return text


def _email_format(errors: dict, email) -> str:
    """The email stripped and lower-cased (contacts are keyed by it); an error if invalid."""
    text = email.strip().lower() if isinstance(email, str) else ""
    try:
        validate_email(text)
        if len(text) > Contact._meta.get_field("email").max_length:
            raise ValidationError("too long")
    except ValidationError:
        errors["email"] = _("Enter a valid email address.")
    return text


def _contacts_by_email(emails: list[str], *, lock: bool = False) -> dict[str, Contact]:
    """Stored contacts by lower-cased email (an older row stored in another case matches)."""
    found: dict[str, Contact] = {}
    for chunk in _chunks(emails, 500):
        rows = (
            Contact.objects.annotate(email_l=Lower("email"))
            .filter(Q(email__in=chunk) | Q(email_l__in=chunk))
            .order_by("pk")
        )
        if lock:
            rows = rows.select_for_update()
        for contact in rows:
            found.setdefault(contact.email.lower(), contact)
    return found


def _is_on_cs_team(user) -> bool:
    """In a customer-success group, active or not: the CSV import creates owners inactive."""
    return user.is_superuser or user.groups.filter(name__in=roles.ALL_ROLES).exists()


def _apply(obj, wanted: dict[str, Any]) -> list[str]:
    """Set the fields of ``wanted`` that differ on ``obj``; returns their names. Relations are
    compared by id, so an unchanged one costs no query."""
    changed = []
    for name, value in wanted.items():
        if value is UNCHANGED:
            continue
        field = obj._meta.get_field(name)
        if field.is_relation and not field.many_to_many:
            same = getattr(obj, field.attname) == (value.pk if value is not None else None)
        else:
            same = getattr(obj, name) == value
        if not same:
            setattr(obj, name, value)
            changed.append(name)
    return changed


def _partner_checked(
    *, partner_id: int | None, name, tier, partner_type, region, account_owner
) -> dict[str, Any]:
    """The given partner fields, cleaned; raises ``ValidationError`` listing every problem."""
    errors: dict[str, str] = {}
    if name is not UNCHANGED:
        name = _text(errors, "name", name, model=Partner, empty=_("Give the partner a name."))
        if "name" not in errors:
            clash = Partner.objects.filter(name__iexact=name).exclude(pk=partner_id)
            if clash.exists():
                errors["name"] = _("A partner named “%(name)s” already exists.") % {"name": name}
    if region is not UNCHANGED:
        region = _text(errors, "region", region, model=Partner, empty=None)
    if tier is None:
        errors["tier"] = _("Choose a tier.")
    if partner_type is None:
        errors["partner_type"] = _("Choose a partner type.")
    if account_owner not in (None, UNCHANGED) and not _is_on_cs_team(account_owner):
        errors["account_owner"] = _("%(name)s is not on the customer-success team.") % {
            "name": account_owner.get_username()
        }
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "tier": tier,
        "partner_type": partner_type,
        "region": region,
        "account_owner": account_owner,
    }


@transaction.atomic
def partner_create(
    *,
    name: str,
    tier: Tier,
    partner_type: PartnerType,
    region: str = "",
    account_owner=None,
    is_active: bool = True,
) -> Partner:
    """A new partner. Names are unique in any letter case; the account owner, if any, must be
    on the customer-success team."""
    fields = _partner_checked(
        partner_id=None,
        name=name,
        tier=tier,
        partner_type=partner_type,
        region=region,
        account_owner=account_owner,
    )
    try:
        with transaction.atomic():
            return Partner.objects.create(**fields, is_active=is_active)
    except IntegrityError as exc:  # the same name, created at the same moment
        raise ValidationError(
            {"name": _("A partner named “%(name)s” already exists.") % {"name": fields["name"]}}
        ) from exc


@transaction.atomic
def partner_update(
    *,
    partner_id: int,
    name: str | Unchanged = UNCHANGED,
    tier: Tier | Unchanged = UNCHANGED,
    partner_type: PartnerType | Unchanged = UNCHANGED,
    region: str | Unchanged = UNCHANGED,
    account_owner: Any = UNCHANGED,
    is_active: bool | Unchanged = UNCHANGED,
) -> Partner:
    """Change the given fields of a partner (locks its row); ``account_owner=None`` removes
    the owner. Reactivate with ``is_active=True``."""
    partner = Partner.objects.select_for_update().get(pk=partner_id)
    fields = _partner_checked(
        partner_id=partner_id,
        name=name,
        tier=tier,
        partner_type=partner_type,
        region=region,
        account_owner=account_owner,
    )
    changed = _apply(partner, {**fields, "is_active": is_active})
    if changed:
        partner.save(update_fields=[*changed, "updated_at"])
    return partner


@transaction.atomic
def partner_deactivate(*, partner_id: int) -> bool:
    """Stop surveying a partner; it is kept with its history. False if it already was inactive
    (``Partner.DoesNotExist`` if there is no such partner)."""
    partner = Partner.objects.select_for_update().get(pk=partner_id)
    if not partner.is_active:
        return False
    partner.is_active = False
    partner.save(update_fields=["is_active", "updated_at"])
    return True


def partner_validate(
    *,
    partner_id: int | None = None,
    name: str | Unchanged = UNCHANGED,
    tier: Tier | None | Unchanged = UNCHANGED,
    partner_type: PartnerType | None | Unchanged = UNCHANGED,
    region: str | Unchanged = UNCHANGED,
    account_owner: Any = UNCHANGED,
) -> None:
    """Check partner fields as ``partner_create`` (no ``partner_id``) or ``partner_update``
    would, writing nothing: raises the same ``ValidationError``, a message per field. For forms
    that show every problem before anything is saved (the admin); they then call the write."""
    _partner_checked(
        partner_id=partner_id,
        name=name,
        tier=tier,
        partner_type=partner_type,
        region=region,
        account_owner=account_owner,
    )


def _contact_checked(*, contact_id: int | None, partner, name, email, language) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if partner is None:
        errors["partner"] = _("Choose the contact's partner.")
    if name is not UNCHANGED:
        name = _text(errors, "name", name, model=Contact, empty=_("Give the contact's name."))
    if email is not UNCHANGED:
        email = _email_format(errors, email)
        if "email" not in errors:
            clash = (
                Contact.objects.annotate(email_l=Lower("email"))
                .filter(email_l=email)
                .exclude(pk=contact_id)
            )
            if clash.exists():
                errors["email"] = _("Another contact already has the email %(email)s.") % {
                    "email": email
                }
    if language is not UNCHANGED:
        language = _language(errors, language)
    if errors:
        raise ValidationError(errors)
    return {"partner": partner, "name": name, "email": email, "language": language}


@transaction.atomic
def contact_create(
    *,
    partner: Partner,
    name: str,
    email: str,
    language: str = "en",
    is_active: bool = True,
    is_key: bool = False,
) -> Contact:
    """A new contact. The email is stored lower-cased and is unique across partners (one person
    gets one survey email); the language is an ISO 639-1 code."""
    fields = _contact_checked(
        contact_id=None, partner=partner, name=name, email=email, language=language
    )
    try:
        with transaction.atomic():
            return Contact.objects.create(**fields, is_active=is_active, is_key=is_key)
    except IntegrityError as exc:  # the same email, created at the same moment
        raise ValidationError(
            {"email": _("Another contact already has the email %(email)s.") % fields}
        ) from exc


@transaction.atomic
def contact_update(
    *,
    contact_id: int,
    partner: Partner | Unchanged = UNCHANGED,
    name: str | Unchanged = UNCHANGED,
    email: str | Unchanged = UNCHANGED,
    language: str | Unchanged = UNCHANGED,
    is_active: bool | Unchanged = UNCHANGED,
    is_key: bool | Unchanged = UNCHANGED,
) -> Contact:
    """Change the given fields of a contact (locks its row). Opt-outs, bounces and complaints
    are not fields here: only the contact opts back in (``contacts_resubscribe`` for admins)."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    fields = _contact_checked(
        contact_id=contact_id, partner=partner, name=name, email=email, language=language
    )
    changed = _apply(contact, {**fields, "is_active": is_active, "is_key": is_key})
    if changed:
        try:
            with transaction.atomic():
                contact.save(update_fields=[*changed, "updated_at"])
        except IntegrityError as exc:
            raise ValidationError(
                {"email": _("Another contact already has the email %(email)s.") % fields}
            ) from exc
    return contact


@transaction.atomic
def contact_deactivate(*, contact_id: int) -> bool:
    """Stop surveying a contact; False if it already was inactive."""
    contact = Contact.objects.select_for_update().get(pk=contact_id)
    if not contact.is_active:
        return False
    contact.is_active = False
    contact.save(update_fields=["is_active", "updated_at"])
    return True


def contact_validate(
    *,
    contact_id: int | None = None,
    partner: Partner | None | Unchanged = UNCHANGED,
    name: str | Unchanged = UNCHANGED,
    email: str | Unchanged = UNCHANGED,
    language: str | Unchanged = UNCHANGED,
) -> None:
    """Check contact fields as ``contact_create`` (no ``contact_id``) or ``contact_update``
    would, writing nothing: raises the same ``ValidationError``, a message per field."""
    _contact_checked(
        contact_id=contact_id, partner=partner, name=name, email=email, language=language
    )


@dataclass(frozen=True)
class ContactRow:
    """One contact of a bulk upsert. ``is_active`` and ``is_key`` None: a new contact gets the
    defaults (active, not key), an existing one keeps what it has."""

    partner: Partner
    name: str
    email: str
    language: str = "en"
    is_active: bool | None = None
    is_key: bool | None = None


@dataclass(frozen=True)
class UpsertCounts:
    created: int
    updated: int
    unchanged: int


def contacts_upsert(*, rows: Iterable[ContactRow]) -> UpsertCounts:
    """Create or update contacts keyed by their lower-cased email, all or nothing.

    Every row is checked first; any bad row raises ``ValidationError`` naming each bad row by
    its index (from 0) and nothing is written. A row equal to the stored contact writes nothing.
    A contact whose email is given with another partner moves to that partner. Opt-outs,
    bounces and complaints are never touched: only the contact can opt back in.
    """
    rows = list(rows)
    problems: list[str] = []
    clean: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for index, row in enumerate(rows):
        errors: dict[str, str] = {}
        if not isinstance(row.partner, Partner):
            errors["partner"] = _("Choose the contact's partner.")
        name = _text(errors, "name", row.name, model=Contact, empty=_("Give the contact's name."))
        email = _email_format(errors, row.email)
        language = _language(errors, row.language)
        if "email" not in errors:
            if email in first_row:
                errors["email"] = _("%(email)s is also in row %(row)d; give each email once.") % {
                    "email": email,
                    "row": first_row[email],
                }
            first_row.setdefault(email, index)
        if errors:
            problems += [
                _("row %(row)d: %(field)s: %(message)s")
                % {"row": index, "field": field, "message": message}
                for field, message in errors.items()
            ]
            continue
        wanted = {"partner": row.partner, "name": name, "email": email, "language": language}
        if row.is_active is not None:
            wanted["is_active"] = row.is_active
        if row.is_key is not None:
            wanted["is_key"] = row.is_key
        clean.append(wanted)
    if problems:
        raise ValidationError({"contacts": problems})

    now = timezone.now()
    created: list[Contact] = []
    updated: list[Contact] = []
    changed_fields: set[str] = set()
    try:
        with transaction.atomic():
            existing = _contacts_by_email([w["email"] for w in clean], lock=True)
            for wanted in clean:
                contact = existing.get(wanted["email"])
                if contact is None:
                    created.append(Contact(**wanted, created_at=now, updated_at=now))
                    continue
                changed = _apply(contact, wanted)
                if changed:
                    contact.updated_at = now
                    changed_fields.update(changed)
                    updated.append(contact)
            Contact.objects.bulk_create(created, batch_size=500)
            if updated:
                Contact.objects.bulk_update(
                    updated, fields=[*sorted(changed_fields), "updated_at"], batch_size=500
                )
    except IntegrityError as exc:
        raise ValidationError(
            _("Another request created some of these contacts at the same time; send it again.")
        ) from exc
    return UpsertCounts(
        created=len(created),
        updated=len(updated),
        unchanged=len(clean) - len(created) - len(updated),
    )


# Program fields a caller may set: the editable columns, and the audience's many-to-many ones.
PROGRAM_AUDIENCE = ("tiers", "partner_types")


def _program_fields() -> frozenset[str]:
    return frozenset(
        f.name for f in Program._meta.concrete_fields if f.editable and not f.primary_key
    )


@functools.cache
def _time_zones() -> frozenset[str]:
    """IANA zone names. Not ``localtime`` (whatever the server is set to) nor the database's
    internal ``posixrules`` and ``Factory``, which some systems list too."""
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules", "Factory"}


def _program_save(program: Program, *, fields: dict[str, Any], audience: dict[str, Any]) -> None:
    """Validate ``program`` with ``fields`` set (``Program.clean`` and the column limits), then
    save it and set its audience. Raises ``ValidationError`` with every problem first."""
    unknown = set(fields) - _program_fields()
    if unknown:
        raise TypeError(f"Not program fields: {', '.join(sorted(unknown))}")
    errors: dict[str, list[str]] = {}
    if "name" in fields:
        holder: dict[str, str] = {}
        fields["name"] = _text(
            holder, "name", fields["name"], model=Program, empty=_("Give the program a name.")
        )
        if not holder:
            clash = Program.objects.filter(name__iexact=fields["name"]).exclude(pk=program.pk)
            if clash.exists():
                holder["name"] = _("A program named “%(name)s” already exists.") % {
                    "name": fields["name"]
                }
        errors.update({k: [v] for k, v in holder.items()})
    if "time_zone" in fields and fields["time_zone"] not in _time_zones():
        errors["time_zone"] = [
            _("Unknown time zone “%(name)s”; use a name like Europe/Berlin.")
            % {"name": fields["time_zone"]}
        ]
    changed = _apply(program, fields)
    try:
        program.full_clean(exclude=["name", *errors] if "name" in fields else list(errors))
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, messages)
    for name, items in audience.items():
        kinds = Tier | PartnerType
        if items is not UNCHANGED and not all(isinstance(item, kinds) for item in items):
            errors[name] = [_("Choose from the list.")]
    if errors:
        raise ValidationError(errors)
    if program.pk is None:
        program.save()
    elif changed:
        program.save(update_fields=[*changed, "updated_at"])
    for name, items in audience.items():
        if items is not UNCHANGED:
            getattr(program, name).set(items)


@transaction.atomic
def program_create(
    *,
    name: str,
    tiers: Iterable[Tier] = (),
    partner_types: Iterable[PartnerType] = (),
    **fields: Any,
) -> Program:
    """A new survey program. ``fields`` are ``Program`` columns (cadence, texts, branding,
    reminders …; the model's defaults for the rest); an empty audience means everyone.
    Names are unique in any letter case."""
    program = Program()
    _program_save(
        program,
        fields={"name": name, **fields},
        audience={"tiers": list(tiers), "partner_types": list(partner_types)},
    )
    return program


@transaction.atomic
def program_update(
    *,
    program_id: int,
    tiers: Iterable[Tier] | Unchanged = UNCHANGED,
    partner_types: Iterable[PartnerType] | Unchanged = UNCHANGED,
    **fields: Any,
) -> Program:
    """Change the given columns and audience of a program (locks its row). The schedule uses
    the new cadence from its next wave on; open waves keep their dates."""
    program = Program.objects.select_for_update().get(pk=program_id)
    _program_save(
        program,
        fields=fields,
        audience={
            "tiers": tiers if tiers is UNCHANGED else list(tiers),
            "partner_types": partner_types if partner_types is UNCHANGED else list(partner_types),
        },
    )
    return program
