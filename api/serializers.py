"""Input and output serializers. Output serializers never carry invitation tokens or their
hashes, webhook secrets (except once, when created) or API keys (except once, when issued)."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from followups.models import Change, FollowUp, FollowUpEvent, RootCause
from nps_project import roles
from surveys.models import Contact, Invitation, Partner, PartnerType, Program, Response, Tier, Wave
from surveys.services import LANGUAGE_CODES
from webhooks.models import Delivery, Subscription

from . import fields as strict
from .filters import ISO_DATE, MAX_ID

User = get_user_model()

# --- Shared fields ------------------------------------------------------------------------------


class UserSummarySerializer(strict.StrictModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "email"]
        read_only_fields = fields


@extend_schema_field(OpenApiTypes.STR)
class NameField(serializers.RelatedField):
    """A tier or partner type by name, matched case-insensitively."""

    default_error_messages = {
        "does_not_exist": _("Unknown {kind} “{value}”. Choose one of: {choices}."),
        "invalid": _("Give the name as text."),
    }

    def __init__(self, kind: str, **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data.strip():
            self.fail("invalid")
        match = self.get_queryset().filter(name__iexact=data.strip()).first()
        if match is None:
            choices = ", ".join(self.get_queryset().values_list("name", flat=True))
            self.fail("does_not_exist", kind=self.kind, value=data, choices=choices)
        return match

    def to_representation(self, value):
        return value.name


class StaffEmailField(strict.EmailField):
    """A customer-success user named by email (case-insensitive)."""

    default_error_messages = {
        "no_user": _("No active customer-success user has the email “{value}”."),
    }

    def run_validation(self, data=serializers.empty):
        email = super().run_validation(data)
        if email is None:
            return None
        user = User.objects.filter(email__iexact=email, is_active=True).first()
        if user is None or not roles.is_cs(user):
            self.fail("no_user", value=email)
        return user


class StaffUserField(strict.PrimaryKeyRelatedField):
    """A user by id; the services decide whether that user may take the work."""

    def __init__(self, **kwargs):
        kwargs.setdefault("queryset", User.objects.filter(is_active=True))
        super().__init__(**kwargs)


# --- Partners and contacts ----------------------------------------------------------------------


class PartnerSerializer(strict.StrictModelSerializer):
    tier = NameField("tier", queryset=Tier.objects.all())
    partner_type = NameField("partner type", queryset=PartnerType.objects.all())
    account_owner = UserSummarySerializer(read_only=True, allow_null=True)
    account_owner_email = StaffEmailField(
        write_only=True,
        required=False,
        allow_null=True,
        help_text="Set the account owner by email; null removes it.",
    )

    class Meta:
        model = Partner
        fields = [
            "id",
            "name",
            "tier",
            "partner_type",
            "region",
            "account_owner",
            "account_owner_email",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError(_("Give the partner a name."))
        return value

    def validate_region(self, value):
        return value.strip()


class ContactSerializer(strict.StrictModelSerializer):
    partner = strict.PrimaryKeyRelatedField(queryset=Partner.objects.all())
    language = strict.CharField(max_length=8, required=False, default="en")

    class Meta:
        model = Contact
        fields = [
            "id",
            "partner",
            "name",
            "email",
            "language",
            "is_active",
            "is_key",
            "opted_out_at",
            "bounced_at",
            "complained_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "opted_out_at",
            "bounced_at",
            "complained_at",
            "created_at",
            "updated_at",
        ]

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError(_("Give the contact's name."))
        return value

    def validate_email(self, value):
        return value.strip().lower()

    def validate_language(self, value):
        code = (value or "").strip().lower()
        if code not in LANGUAGE_CODES:
            raise serializers.ValidationError(
                _("“%(code)s” is not an ISO 639-1 language code (e.g. en, de, fr).")
                % {"code": value}
            )
        return code


class ContactUpsertRowSerializer(ContactSerializer):
    """One row of a bulk upsert: the email is the key, so it is not checked for uniqueness."""

    email = strict.EmailField(max_length=254)

    class Meta(ContactSerializer.Meta):
        fields = ["partner", "name", "email", "language", "is_active", "is_key"]
        read_only_fields = []


class ContactBulkUpsertSerializer(serializers.Serializer):
    contacts = ContactUpsertRowSerializer(many=True, allow_empty=False, max_length=1000)

    def validate_contacts(self, rows):
        seen, duplicates = set(), set()
        for row in rows:
            if row["email"] in seen:
                duplicates.add(row["email"])
            seen.add(row["email"])
        if duplicates:
            raise serializers.ValidationError(
                _("Each email may appear once; repeated: %(emails)s.")
                % {"emails": ", ".join(sorted(duplicates))}
            )
        return rows


class BulkUpsertResultSerializer(serializers.Serializer):
    created = strict.IntegerField()
    updated = strict.IntegerField()
    unchanged = strict.IntegerField()


# --- Programs, waves, invitations, responses -------------------------------------------------


class ProgramSerializer(strict.StrictModelSerializer):
    tiers = NameField("tier", queryset=Tier.objects.all(), many=True, required=False)
    partner_types = NameField(
        "partner type", queryset=PartnerType.objects.all(), many=True, required=False
    )
    regions = serializers.ListField(
        child=strict.CharField(max_length=100), required=False, max_length=100
    )
    reminder_days = serializers.ListField(
        child=strict.IntegerField(min_value=1, max_value=365), required=False, max_length=20
    )

    class Meta:
        model = Program
        fields = [
            "id",
            "name",
            "is_active",
            "sender_name",
            "subject",
            "question",
            "why_prompt",
            "intro",
            "extra_questions",
            "logo_url",
            "brand_colour",
            "tiers",
            "partner_types",
            "regions",
            "frequency",
            "anchor_month",
            "anchor_day",
            "send_hour",
            "time_zone",
            "starts_on",
            "response_window_days",
            "reminder_days",
            "max_reminders",
            "throttle_days",
            "send_rate_per_minute",
            "no_response_followup_days",
            "retention_months",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "anchor_month": {"min_value": 1, "max_value": 12},
            "anchor_day": {"min_value": 1, "max_value": 28},
            "send_hour": {"min_value": 0, "max_value": 23},
            "response_window_days": {"min_value": 1, "max_value": 365},
            "max_reminders": {"max_value": 20},
            "throttle_days": {"max_value": 3650},
            "send_rate_per_minute": {"max_value": 100000},
            "no_response_followup_days": {"min_value": 1, "max_value": 365},
            "retention_months": {"min_value": 1, "max_value": 1200},
        }


class WaveSerializer(strict.StrictModelSerializer):
    invitations = strict.IntegerField(read_only=True, source="invitation_count")
    responses = strict.IntegerField(read_only=True, source="response_count")

    class Meta:
        model = Wave
        fields = [
            "id",
            "program",
            "period_start",
            "label",
            "status",
            "opens_at",
            "closes_at",
            "invitations",
            "responses",
        ]
        read_only_fields = fields


class InvitationSerializer(strict.StrictModelSerializer):
    """No token and no token hash: a survey link is the partner's only credential."""

    has_response = strict.BooleanField(read_only=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "wave",
            "contact",
            "status",
            "attempts",
            "sent_at",
            "reminders_sent",
            "last_reminded_at",
            "first_opened_at",
            "has_response",
            "created_at",
        ]
        read_only_fields = fields


class PartnerSummarySerializer(strict.StrictModelSerializer):
    class Meta:
        model = Partner
        fields = ["id", "name"]
        read_only_fields = fields


class ResponseSerializer(strict.StrictModelSerializer):
    partner = PartnerSummarySerializer(read_only=True)
    account_owner = UserSummarySerializer(read_only=True, allow_null=True)
    followup = serializers.SerializerMethodField()

    class Meta:
        model = Response
        fields = [
            "id",
            "program",
            "wave",
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
            "followup",
            "submitted_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_followup(self, obj) -> int | None:
        return getattr(obj, "followup_id", None)


# --- Follow-ups and changes -----------------------------------------------------------------


class FollowUpSerializer(strict.StrictModelSerializer):
    partner = PartnerSummarySerializer(read_only=True)
    assignee = UserSummarySerializer(read_only=True, allow_null=True)
    score = strict.IntegerField(
        source="response.score",
        read_only=True,
        allow_null=True,
        help_text="Null for a “no response” follow-up (a key contact who did not answer).",
    )
    comment = strict.CharField(source="response.comment", read_only=True, allow_null=True)
    root_cause = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    is_overdue = serializers.SerializerMethodField()

    class Meta:
        model = FollowUp
        fields = [
            "id",
            "kind",
            "response",
            "invitation",
            "partner",
            "score",
            "comment",
            "assignee",
            "status",
            "priority",
            "due_at",
            "resolution_due_at",
            "is_overdue",
            "first_contacted_at",
            "root_cause",
            "action_taken",
            "closed_reason",
            "resolved_at",
            "loop_closed_at",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_is_overdue(self, obj) -> bool:
        return obj.is_overdue()


class VersionMixin(serializers.Serializer):
    version = strict.IntegerField(
        required=False,
        min_value=1,
        help_text="The follow-up's version as you read it; a stale version is refused with 409.",
    )


class FollowUpAssignSerializer(VersionMixin):
    assignee = StaffUserField(allow_null=True, help_text="A user id; null unassigns.")


class FollowUpTransitionSerializer(VersionMixin):
    to = strict.ChoiceField(choices=FollowUp.Status.choices)
    note = strict.CharField(required=False, allow_blank=True, max_length=5000, default="")
    root_cause = strict.PrimaryKeyRelatedField(
        queryset=RootCause.objects.filter(is_active=True), required=False, allow_null=True
    )
    action_taken = strict.CharField(required=False, allow_blank=True, max_length=5000, default="")
    closed_reason = strict.CharField(required=False, allow_blank=True, max_length=5000, default="")


class FollowUpNoteSerializer(VersionMixin):
    kind = strict.ChoiceField(
        choices=[
            (FollowUpEvent.Kind.NOTE, "Note"),
            (FollowUpEvent.Kind.CALL, "Call logged"),
            (FollowUpEvent.Kind.EMAIL, "Email logged"),
        ],
        default=FollowUpEvent.Kind.NOTE,
    )
    note = strict.CharField(max_length=5000)


class FollowUpBulkAssignSerializer(serializers.Serializer):
    followup_ids = serializers.ListField(
        child=strict.IntegerField(min_value=1, max_value=2**63 - 1),
        allow_empty=False,
        max_length=1000,
        help_text="The follow-ups to give to `assignee`; an unknown one refuses them all.",
    )
    assignee = StaffUserField(allow_null=True, help_text="A user id; null unassigns them.")


class BulkAssignResultSerializer(serializers.Serializer):
    changed = strict.IntegerField(help_text="How many follow-ups changed hands.")


class FollowUpEventSerializer(strict.StrictModelSerializer):
    actor = UserSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = FollowUpEvent
        fields = ["id", "followup", "kind", "actor", "old_value", "new_value", "note", "created_at"]
        read_only_fields = fields


class ChangeSerializer(strict.StrictModelSerializer):
    owner = UserSummarySerializer(read_only=True, allow_null=True)
    created_by = UserSummarySerializer(read_only=True, allow_null=True)
    followups = strict.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Change
        fields = [
            "id",
            "title",
            "description",
            "category",
            "status",
            "owner",
            "shipped_at",
            "followups",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ChangeCreateSerializer(serializers.Serializer):
    title = strict.CharField(max_length=200)
    description = strict.CharField(max_length=10000)
    category = strict.ChoiceField(choices=Change.Category.choices)
    owner = StaffUserField(required=False, allow_null=True)
    followup_ids = serializers.ListField(
        child=strict.IntegerField(min_value=1), required=False, max_length=1000, default=list
    )


class ChangeUpdateSerializer(serializers.Serializer):
    title = strict.CharField(max_length=200, required=False)
    description = strict.CharField(max_length=10000, required=False)
    category = strict.ChoiceField(choices=Change.Category.choices, required=False)
    owner = StaffUserField(required=False, allow_null=True)
    status = strict.ChoiceField(choices=Change.Status.choices, required=False)


class ChangeLinkSerializer(serializers.Serializer):
    followup_ids = serializers.ListField(
        child=strict.IntegerField(min_value=1), allow_empty=False, max_length=1000
    )


class LinkResultSerializer(serializers.Serializer):
    linked = strict.IntegerField(help_text="How many follow-ups were newly linked.")
    change = ChangeSerializer()


class NotifyResultSerializer(serializers.Serializer):
    queued = strict.IntegerField(help_text="Partner emails queued now.")


# --- NPS ------------------------------------------------------------------------------------


class QueryIdField(serializers.IntegerField):
    """An id in a query string: digits only (DRF alone reads ``1.0`` as 1)."""

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(r"[0-9]{1,19}", data):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryDateField(serializers.DateField):
    """A date as ``YYYY-MM-DD`` only (DRF alone also reads ``20250101``)."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
            self.fail("invalid", format="YYYY-MM-DD")
        return super().to_internal_value(value)


class NpsQuerySerializer(serializers.Serializer):
    GROUPS = ["wave", "tier", "region", "partner_type", "account_owner"]

    program = QueryIdField(required=False)
    wave = QueryIdField(required=False)
    submitted_after = QueryDateField(
        required=False, help_text="First day included (UTC), e.g. 2025-01-01."
    )
    submitted_before = QueryDateField(required=False, help_text="Last day included (UTC).")
    tier = strict.CharField(required=False, max_length=60)
    region = strict.CharField(required=False, max_length=100)
    partner_type = strict.CharField(required=False, max_length=60)
    account_owner = QueryIdField(required=False)
    group_by = strict.ChoiceField(choices=GROUPS, required=False)

    def validate(self, attrs):
        after, before = attrs.get("submitted_after"), attrs.get("submitted_before")
        if after and before and after > before:
            raise serializers.ValidationError(
                {"submitted_before": [_("The end date is before the start date.")]}
            )
        return attrs


class NpsFiguresSerializer(serializers.Serializer):
    n = strict.IntegerField()
    promoters = strict.IntegerField()
    passives = strict.IntegerField()
    detractors = strict.IntegerField()
    nps = serializers.FloatField(allow_null=True, help_text="-100 to 100; null with no responses.")
    standard_error = serializers.FloatField(allow_null=True)
    margin_of_error = serializers.FloatField(
        allow_null=True, help_text="95%: 1.96 standard errors."
    )


class NpsGroupSerializer(NpsFiguresSerializer):
    key = strict.CharField(
        allow_null=True,
        help_text="The wave or account owner id (as text), or the segment value; null for "
        "responses without one.",
    )
    label = strict.CharField()


class NpsReportSerializer(serializers.Serializer):
    group_by = strict.CharField(allow_null=True)
    overall = NpsFiguresSerializer()
    groups = NpsGroupSerializer(many=True)


# --- Webhooks and tokens -----------------------------------------------------------------------


class SubscriptionSerializer(strict.StrictModelSerializer):
    owner = UserSummarySerializer(read_only=True, allow_null=True)
    events = serializers.ListField(
        child=strict.ChoiceField(choices=Subscription.Event.choices),
        allow_empty=False,
        max_length=len(Subscription.Event.values),
    )
    url = strict.URLField(max_length=500)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "url",
            "events",
            "format",
            "description",
            "is_active",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
            "owner",
            "created_at",
            "updated_at",
        ]


class SubscriptionCreatedSerializer(SubscriptionSerializer):
    secret = strict.CharField(
        read_only=True, help_text="The signing secret. Shown only in this answer: store it now."
    )

    class Meta(SubscriptionSerializer.Meta):
        fields = [*SubscriptionSerializer.Meta.fields, "secret"]


class DeliverySerializer(strict.StrictModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "subscription",
            "event_id",
            "event",
            "payload",
            "status",
            "attempts",
            "next_attempt_at",
            "response_code",
            "duration_ms",
            "error",
            "created_at",
            "delivered_at",
        ]
        read_only_fields = fields


class TokenSerializer(serializers.Serializer):
    user = UserSummarySerializer(read_only=True, allow_null=True)
    created = serializers.DateTimeField(read_only=True)


class TokenCreateSerializer(serializers.Serializer):
    user = StaffUserField(help_text="The user the integration acts as.")


class TokenCreatedSerializer(TokenSerializer):
    key = strict.CharField(read_only=True, help_text="Shown only in this answer.")
