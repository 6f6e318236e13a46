"""django-filter FilterSets of the list endpoints, and the ``?ordering=`` backend. A bad filter
or ordering value is a 400 with the field's message (the exception handler gives it the API's
error shape)."""

from __future__ import annotations

import datetime as dt
import re

import django_filters as filters
from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.text import get_text_list
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters as drf_filters
from rest_framework.exceptions import ValidationError

from followups.models import Change, FollowUp, FollowUpEvent
from surveys.models import Contact, Invitation, Partner, Response, Wave
from webhooks.models import Delivery, Subscription

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
MAX_ID = 2**63 - 1  # the largest BigAutoField value: larger numbers overflow the database driver


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(filters.NumberFilter):
    """An object id: a whole number from 1 to ``MAX_ID`` (else 400, never an overflow 500)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class StrictBooleanField(forms.Field):
    """``true`` or ``false`` and nothing else (Django's NullBooleanField would quietly read
    ``yes``, ``2`` or ``abc`` as "no filter")."""

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError(_("Use true or false."), code="invalid")


class BooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField


class StrictDateField(forms.DateField):
    """A date as ``YYYY-MM-DD`` only (the schema's ``format: date``)."""

    def to_python(self, value):
        if value not in (None, "") and not ISO_DATE.fullmatch(str(value)):
            raise forms.ValidationError(_("Give a date as YYYY-MM-DD."), code="invalid")
        return super().to_python(value)


class DateFilter(filters.DateFilter):
    field_class = StrictDateField


class StrictDateTimeField(IsoDateTimeField):
    """A date and time with its offset, as RFC 3339 (the schema's ``format: date-time``)."""

    def to_python(self, value):
        if value not in (None, "") and not ISO_DATETIME.fullmatch(str(value)):
            raise forms.ValidationError(
                _("Give a date and time with its offset, e.g. 2025-03-01T12:00:00Z."),
                code="invalid",
            )
        return super().to_python(value)


class IsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = StrictDateTimeField


class FilterSet(filters.FilterSet):
    """A parameter given with no value (``?status=``) is 400, not "no filter": the schema says
    what each one takes, and an empty value is none of those."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.filters:
            if name in self.data and "" in self.data.getlist(name):
                self.form.add_error(name, _("Give a value, or leave the parameter out."))
                valid = False
        return valid


def ordering_help(fields: list[str]) -> str:
    """What ``?ordering=`` takes on a list ordered by ``fields``."""
    if len(fields) == 1:
        return _("Order by %(field)s, or -%(field)s for descending order.") % {"field": fields[0]}
    return _(
        "Order by %(fields)s, separated by commas; put - before a field for descending order."
    ) % {"fields": get_text_list(fields, _("or"))}


def unknown_ordering_message(unknown: list[str], fields: list[str]) -> str:
    """The 400's message for ordering terms that are not ``fields`` (nor ``-`` one of them)."""
    terms = ", ".join(f'"{term}"' for term in unknown)
    return _("Cannot order by %(terms)s.") % {"terms": terms} + " " + ordering_help(fields)


class OrderingFilter(drf_filters.OrderingFilter):
    """``?ordering=`` as strict as the other parameters: fields from the view's
    ``ordering_fields``, comma-separated, each with ``-`` for descending. An unknown field,
    an empty value or the parameter given twice is a 400 that names the allowed fields (DRF
    alone quietly drops an unknown field and falls back to the default order). The schema lists
    the allowed values, so clients and schemathesis know them too."""

    @staticmethod
    def fields_of(view) -> list[str]:
        fields = getattr(view, "ordering_fields", None)
        if not isinstance(fields, list | tuple):
            # DRF would guess them from the serializer (or allow every column with "__all__"):
            # each list names its own, so the schema and the 400 message can name them.
            raise ImproperlyConfigured(f"{type(view).__name__} must list its ordering_fields.")
        return [field if isinstance(field, str) else field[0] for field in fields]

    @classmethod
    def terms_of(cls, view) -> list[str]:
        return [term for field in cls.fields_of(view) for term in (field, f"-{field}")]

    def get_valid_fields(self, queryset, view, context=None):
        return [(field, field) for field in self.fields_of(view)]

    def get_ordering(self, request, queryset, view):
        values = request.query_params.getlist(self.ordering_param)
        if not values:
            return self.get_default_ordering(view)
        fields = self.fields_of(view)
        if len(values) > 1:
            message = _("Give ordering once, with its fields separated by commas.")
            message = f"{message} {ordering_help(fields)}"
        elif values[0] == "":
            message = f"{_('Give a value, or leave the parameter out.')} {ordering_help(fields)}"
        else:
            terms = [term.strip() for term in values[0].split(",")]
            allowed = self.terms_of(view)
            unknown = [term for term in terms if term not in allowed]
            if not unknown:
                return terms
            message = unknown_ordering_message(unknown, fields)
        raise ValidationError({self.ordering_param: [message]})

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"{ordering_help(self.fields_of(view))} Any other value is 400.",
                "schema": {
                    "type": "array",
                    "items": {"type": "string", "enum": self.terms_of(view)},
                    "minItems": 1,
                },
                "style": "form",
                "explode": False,
            }
        ]


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


class PartnerFilter(FilterSet):
    name = filters.CharFilter(lookup_expr="icontains", help_text="Part of the name.")
    tier = filters.CharFilter(field_name="tier__name", lookup_expr="iexact")
    partner_type = filters.CharFilter(field_name="partner_type__name", lookup_expr="iexact")
    region = filters.CharFilter(lookup_expr="iexact")
    account_owner = IdFilter(field_name="account_owner_id")
    is_active = BooleanFilter()

    class Meta:
        model = Partner
        fields = ["name", "tier", "partner_type", "region", "account_owner", "is_active"]


class ContactFilter(FilterSet):
    partner = IdFilter(field_name="partner_id")
    email = filters.CharFilter(lookup_expr="iexact")
    is_active = BooleanFilter()
    opted_out = BooleanFilter(field_name="opted_out_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Contact
        fields = ["partner", "email", "is_active", "opted_out"]


class WaveFilter(FilterSet):
    program = IdFilter(field_name="program_id")
    status = filters.ChoiceFilter(choices=Wave.Status.choices)

    class Meta:
        model = Wave
        fields = ["program", "status"]


class InvitationFilter(FilterSet):
    wave = IdFilter(field_name="wave_id")
    contact = IdFilter(field_name="contact_id")
    status = filters.ChoiceFilter(choices=Invitation.Status.choices)

    class Meta:
        model = Invitation
        fields = ["wave", "contact", "status"]


class ResponseFilter(FilterSet):
    program = IdFilter(field_name="program_id")
    wave = IdFilter(field_name="wave_id")
    partner = IdFilter(field_name="partner_id")
    category = filters.ChoiceFilter(choices=Response.Category.choices)
    tier = filters.CharFilter(lookup_expr="iexact", help_text="The tier when the partner answered.")
    region = filters.CharFilter(lookup_expr="iexact")
    partner_type = filters.CharFilter(lookup_expr="iexact")
    account_owner = IdFilter(field_name="account_owner_id")
    submitted_after = DateFilter(
        method="filter_after", help_text="First day included (UTC), e.g. 2025-01-01."
    )
    submitted_before = DateFilter(method="filter_before", help_text="Last day included.")

    class Meta:
        model = Response
        fields = [
            "program",
            "wave",
            "partner",
            "category",
            "tier",
            "region",
            "partner_type",
            "account_owner",
            "submitted_after",
            "submitted_before",
        ]

    def filter_after(self, queryset, name, value):
        return queryset.filter(submitted_at__gte=_day_start(value))

    def filter_before(self, queryset, name, value):
        return queryset.filter(submitted_at__lt=_day_start(value + dt.timedelta(days=1)))


class FollowUpFilter(FilterSet):
    status = filters.MultipleChoiceFilter(choices=FollowUp.Status.choices)
    priority = filters.ChoiceFilter(choices=FollowUp.Priority.choices)
    assignee = IdFilter(field_name="assignee_id")
    unassigned = BooleanFilter(field_name="assignee", lookup_expr="isnull")
    partner = IdFilter(field_name="partner_id")
    overdue = BooleanFilter(
        method="filter_overdue",
        help_text="Late on first contact (uncontacted past due_at) or on resolution "
        "(unresolved past resolution_due_at).",
    )

    class Meta:
        model = FollowUp
        fields = ["status", "priority", "assignee", "unassigned", "partner", "overdue"]

    def filter_overdue(self, queryset, name, value):
        overdue = FollowUp.overdue_q(timezone.now())
        return queryset.filter(overdue) if value else queryset.exclude(overdue)


class FollowUpEventFilter(FilterSet):
    followup = IdFilter(field_name="followup_id")
    kind = filters.ChoiceFilter(choices=FollowUpEvent.Kind.choices)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = FollowUpEvent
        fields = ["followup", "kind", "created_after"]


class ChangeFilter(FilterSet):
    status = filters.ChoiceFilter(choices=Change.Status.choices)
    category = filters.ChoiceFilter(choices=Change.Category.choices)
    followup = IdFilter(field_name="followups")

    class Meta:
        model = Change
        fields = ["status", "category", "followup"]


class SubscriptionFilter(FilterSet):
    is_active = BooleanFilter()
    format = filters.ChoiceFilter(choices=Subscription.Format.choices)

    class Meta:
        model = Subscription
        fields = ["is_active", "format"]


class DeliveryFilter(FilterSet):
    subscription = IdFilter(field_name="subscription_id")
    status = filters.ChoiceFilter(choices=Delivery.Status.choices)
    event = filters.ChoiceFilter(choices=Subscription.Event.choices)
    event_id = filters.UUIDFilter()

    class Meta:
        model = Delivery
        fields = ["subscription", "status", "event", "event_id"]
