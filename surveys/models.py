"""Partners, their contacts, survey programs, waves, invitations and responses.

The invariants of the loop live here as database constraints: one wave per program and period,
one invitation per contact and wave, one response per invitation, a score from 0 to 10 whose
stored category agrees with it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class NamedChoice(models.Model):
    """An admin-editable list entry, matched case-insensitively by the import."""

    name = models.CharField(max_length=60)
    rank = models.PositiveSmallIntegerField(default=0, help_text=_("Sort order, lowest first."))

    class Meta:
        abstract = True
        ordering = ["rank", "name"]

    def __str__(self) -> str:
        return self.name


class Tier(NamedChoice):
    class Meta(NamedChoice.Meta):
        constraints = [models.UniqueConstraint(Lower("name"), name="surveys_tier_name_ci_unique")]


class PartnerType(NamedChoice):
    class Meta(NamedChoice.Meta):
        constraints = [
            models.UniqueConstraint(Lower("name"), name="surveys_partnertype_name_ci_unique")
        ]


class Partner(models.Model):
    name = models.CharField(max_length=200, unique=True)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="partners")
    partner_type = models.ForeignKey(PartnerType, on_delete=models.PROTECT, related_name="partners")
    region = models.CharField(max_length=100, blank=True)
    account_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_partners",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    # Stored lower-cased by the services; unique across partners so one person gets one email.
    email = models.EmailField(unique=True)
    language = models.CharField(max_length=8, default="en", help_text=_("ISO 639-1 code."))
    is_active = models.BooleanField(default=True)
    is_key = models.BooleanField(
        default=False,
        help_text=_("A key contact who does not answer creates a “no response” follow-up."),
    )
    opted_out_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Marked our email as spam.")
    )
    bounce_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["partner__name", "name"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def can_be_surveyed(self) -> bool:
        return (
            self.is_active
            and self.opted_out_at is None
            and self.bounced_at is None
            and self.complained_at is None
        )


class Program(models.Model):
    class Frequency(models.IntegerChoices):
        MONTHLY = 1, _("Monthly")
        QUARTERLY = 3, _("Quarterly")
        HALF_YEARLY = 6, _("Half-yearly")
        YEARLY = 12, _("Yearly")

    name = models.CharField(max_length=200, unique=True)
    is_active = models.BooleanField(default=True, help_text=_("Untick to pause the schedule."))
    sender_name = models.CharField(max_length=100, default="Partner Program")
    subject = models.CharField(
        max_length=200, default="How likely are you to recommend us to a colleague?"
    )
    question = models.CharField(
        max_length=300,
        default="How likely are you to recommend us to a friend or colleague?",
    )
    why_prompt = models.CharField(max_length=300, default="What is the main reason for your score?")
    intro = models.TextField(
        blank=True, help_text=_("A short paragraph under the greeting in the email and form.")
    )
    extra_questions = models.JSONField(
        default=list,
        blank=True,
        help_text=_(
            'Optional questions after the score, e.g. [{"key": "support", "label": "How was '
            'support?", "type": "choice", "choices": ["Good", "Poor"]}]; type is text or choice.'
        ),
    )
    # Branding, so the email and page look like the vendor.
    logo_url = models.URLField(blank=True, help_text=_("An https:// image, about 200×60 px."))
    brand_colour = models.CharField(
        max_length=7, default="#0b5cad", help_text=_("Hex colour, e.g. #0b5cad.")
    )
    # Audience: an empty selection means everyone.
    tiers = models.ManyToManyField(Tier, blank=True, related_name="programs")
    partner_types = models.ManyToManyField(PartnerType, blank=True, related_name="programs")
    regions = models.JSONField(
        default=list, blank=True, help_text=_('Regions as a JSON list, e.g. ["EMEA"]; empty = all.')
    )
    # Cadence: waves open every `frequency` months, counted from `anchor_month`, on
    # `anchor_day` at `send_hour` local time in `timezone`.
    frequency = models.PositiveSmallIntegerField(
        choices=Frequency.choices, default=Frequency.QUARTERLY
    )
    anchor_month = models.PositiveSmallIntegerField(default=1)
    anchor_day = models.PositiveSmallIntegerField(default=15)
    send_hour = models.PositiveSmallIntegerField(default=9)
    time_zone = models.CharField(max_length=64, default="UTC", help_text=_("e.g. Europe/Berlin"))
    starts_on = models.DateField(
        default=timezone.localdate, help_text=_("No wave opens for periods before this date.")
    )
    response_window_days = models.PositiveSmallIntegerField(default=14)
    reminder_days = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Days after the wave opens to remind non-responders, e.g. [4, 9]."),
    )
    max_reminders = models.PositiveSmallIntegerField(default=2)
    throttle_days = models.PositiveSmallIntegerField(
        default=60,
        help_text=_("Do not survey a contact again within this many days, whichever program."),
    )
    send_rate_per_minute = models.PositiveIntegerField(
        default=0, help_text=_("Emails per minute at most; 0 = as fast as the workers go.")
    )
    no_response_followup_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "Days into a wave after which a key contact's silence creates a follow-up; "
            "empty = never."
        ),
    )
    retention_months = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "Anonymise comments and contact details older than this; scores and segments stay."
        ),
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(anchor_month__gte=1, anchor_month__lte=12),
                name="surveys_program_anchor_month_1_12",
            ),
            models.CheckConstraint(
                condition=Q(anchor_day__gte=1, anchor_day__lte=28),
                name="surveys_program_anchor_day_1_28",
            ),
            models.CheckConstraint(
                condition=Q(send_hour__gte=0, send_hour__lte=23),
                name="surveys_program_send_hour_0_23",
            ),
            models.CheckConstraint(
                condition=Q(response_window_days__gte=1), name="surveys_program_window_positive"
            ),
            models.CheckConstraint(
                condition=Q(brand_colour__regex=r"^#[0-9A-Fa-f]{6}$"),
                name="surveys_program_brand_colour_hex",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        from .schedule import validate_timezone

        errors = {}
        if not 1 <= (self.anchor_day or 0) <= 28:
            errors["anchor_day"] = _("Choose a day from 1 to 28, so every month has it.")
        if not 1 <= (self.anchor_month or 0) <= 12:
            errors["anchor_month"] = _("Choose a month from 1 to 12.")
        if not 0 <= (self.send_hour if self.send_hour is not None else -1) <= 23:
            errors["send_hour"] = _("Choose an hour from 0 to 23.")
        try:
            validate_timezone(self.time_zone)
        except ValueError as exc:
            errors["time_zone"] = str(exc)
        if not isinstance(self.reminder_days, list) or not all(
            isinstance(d, int) and 0 < d < (self.response_window_days or 0)
            for d in self.reminder_days
        ):
            errors["reminder_days"] = _(
                "Give a list of whole days, each after the wave opens and before it closes."
            )
        if not isinstance(self.regions, list) or not all(isinstance(r, str) for r in self.regions):
            errors["regions"] = _('Give a list of region names, e.g. ["EMEA", "APAC"].')
        errors.update(self._clean_branding())
        if errors:
            raise ValidationError(errors)

    def _clean_branding(self) -> dict:
        """The partner-facing fields: brand colour, logo and extra questions."""
        import re

        errors = {}
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", self.brand_colour or ""):
            errors["brand_colour"] = _("Give a hex colour with a # and six digits, e.g. #0b5cad.")
        if self.logo_url and not self.logo_url.startswith("https://"):
            errors["logo_url"] = _(
                "Give an https:// address, so mail clients and browsers show it."
            )
        questions = self.extra_questions
        keys = (
            [q.get("key") for q in questions]
            if isinstance(questions, list) and all(isinstance(q, dict) for q in questions)
            else None
        )
        if (
            keys is None
            or len(set(keys)) != len(keys)
            or not all(
                isinstance(q.get("key"), str)
                and re.fullmatch(r"[a-z0-9_]{1,40}", q["key"])
                and isinstance(q.get("label"), str)
                and q["label"].strip()
                and q.get("type", "text") in ("text", "choice")
                and (
                    q.get("type", "text") == "text"
                    or (
                        isinstance(q.get("choices"), list)
                        and q["choices"]
                        and all(isinstance(c, str) and c.strip() for c in q["choices"])
                    )
                )
                for q in questions
            )
        ):
            errors["extra_questions"] = _(
                'Give a list of questions, each with a unique "key" (lower-case letters, digits, '
                '_), a "label" and a "type" of "text" or "choice"; a choice needs a list of '
                '"choices".'
            )
        return errors


class Wave(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")
        SKIPPED = "skipped", _("Skipped")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="waves")
    # The scheduled local date of this period's wave: the key of the period.
    period_start = models.DateField()
    label = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["program", "-opens_at"]
        get_latest_by = "opens_at"
        constraints = [
            models.UniqueConstraint(
                fields=["program", "period_start"], name="surveys_wave_one_per_program_period"
            ),
            models.CheckConstraint(
                condition=Q(closes_at__gt=models.F("opens_at")),
                name="surveys_wave_closes_after_opening",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program} · {self.label}"

    def is_open_at(self, when) -> bool:
        return self.status == self.Status.OPEN and self.opens_at <= when < self.closes_at


class Invitation(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="invitations")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="invitations")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Set when a send task is enqueued for the row, so a tick does not enqueue it again.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["wave", "contact"], name="surveys_invitation_one_per_contact_wave"
            ),
        ]
        indexes = [
            # Serves the send sweep: "queued invitations whose task is missing or stale".
            models.Index(
                fields=["status", "enqueued_at"],
                name="surveys_inv_queued_idx",
                condition=Q(status__in=["queued", "sending"]),
            ),
            # Serves the fatigue throttle: "was this contact invited since <date>?".
            models.Index(fields=["contact", "created_at"], name="surveys_inv_contact_created"),
        ]

    def __str__(self) -> str:
        return f"{self.contact.email} · {self.wave}"


class InvitationToken(models.Model):
    """A secret in a survey link. Only its SHA-256 is stored.

    The first email and each reminder carry a fresh token, because the plain token is never kept;
    every token of an invitation opens the same survey until the wave closes.
    """

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"token for invitation {self.invitation_id}"


class Response(models.Model):
    class Category(models.TextChoices):
        PROMOTER = "promoter", _("Promoter")
        PASSIVE = "passive", _("Passive")
        DETRACTOR = "detractor", _("Detractor")

    class SettleState(models.TextChoices):
        NEW = "new", _("New answer, not settled yet")
        REVISED = "revised", _("Revised answer, not settled yet")
        DONE = "done", _("Settled")

    invitation = models.OneToOneField(Invitation, on_delete=models.CASCADE, related_name="response")
    # Denormalised from the invitation so reports aggregate one table. No index of their own:
    # the composite indexes below lead with them (each index is one more write per answer).
    wave = models.ForeignKey(
        Wave, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    program = models.ForeignKey(
        Program, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="responses")
    score = models.PositiveSmallIntegerField()
    category = models.CharField(max_length=10, choices=Category.choices)
    comment = models.TextField(blank=True, max_length=5000)
    answers = models.JSONField(
        default=dict, blank=True, help_text=_("Answers to the program's extra questions.")
    )
    wants_contact = models.BooleanField(
        default=False, help_text=_("The partner asked to be contacted.")
    )
    language = models.CharField(max_length=8, default="en")
    # The partner's segment as it was when the response came in.
    tier = models.CharField(max_length=60)
    partner_type = models.CharField(max_length=60)
    region = models.CharField(max_length=100, blank=True)
    account_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # What the answer's last write left to do after the partner's request: its follow-up, the
    # ``response.created`` webhook, the note on a revised answer (``surveys.services.
    # response_settle``, run by a task after commit and by the sweep as a backstop).
    settle_state = models.CharField(
        max_length=8, choices=SettleState.choices, default=SettleState.NEW, editable=False
    )
    # The score before an unsettled revision (for the note on its follow-up); else null.
    previous_score = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__gte=0, score__lte=10), name="surveys_response_score_0_10"
            ),
            models.CheckConstraint(
                condition=(
                    Q(score__gte=9, category="promoter")
                    | Q(score__gte=7, score__lte=8, category="passive")
                    | Q(score__lte=6, category="detractor")
                ),
                name="surveys_response_category_matches_score",
            ),
        ]
        indexes = [
            # Serves the per-wave report: counts by category for a wave.
            models.Index(fields=["wave", "category"], name="surveys_resp_wave_cat"),
            models.Index(fields=["partner", "submitted_at"], name="surveys_resp_partner_time"),
            # Serves a filtered report (one program, one tier, a date range) as an index-only
            # scan: every column the aggregate reads is in the index.
            models.Index(
                fields=["program", "tier", "submitted_at", "category"],
                name="surveys_resp_prog_tier_time",
            ),
            # Serves the settle sweep: the few answers whose after-commit work has not run.
            models.Index(
                fields=["updated_at"],
                condition=~Q(settle_state="done"),
                name="surveys_resp_unsettled",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.score} from {self.contact_id} in {self.wave_id}"
