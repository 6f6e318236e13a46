"""The report filter form shared by the dashboard, the comments list and the exports.

It validates the query string (GET) into ``selectors.ReportFilters``; a bad value is an error
message on the page, never a 500 or a silently ignored filter.
"""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from surveys.models import Response

from . import selectors

BLANK = [("", _("All"))]


class ReportFilterForm(forms.Form):
    submitted_after = forms.DateField(
        required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    submitted_before = forms.DateField(
        required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"})
    )
    tier = forms.ChoiceField(required=False, label=_("Tier"))
    region = forms.ChoiceField(required=False, label=_("Region"))
    partner_type = forms.ChoiceField(required=False, label=_("Partner type"))
    account_owner = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, label=_("Account owner")
    )

    def __init__(self, *args, choices: dict, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("tier", "region", "partner_type"):
            self.fields[name].choices = BLANK + [(value, value) for value in choices[name]]
        self.fields["account_owner"].choices = BLANK + [
            (str(pk), username) for pk, username in choices["account_owner"]
        ]

    def clean(self):
        data = super().clean()
        after, before = data.get("submitted_after"), data.get("submitted_before")
        if after and before and after > before:
            self.add_error("submitted_before", _("The end date is before the start date."))
        return data

    def report_filters(self, *, program=None) -> selectors.ReportFilters:
        """The cleaned data as filters (call after ``is_valid``)."""
        data = self.cleaned_data
        return selectors.ReportFilters(
            program=getattr(program, "pk", program),
            submitted_after=data.get("submitted_after"),
            submitted_before=data.get("submitted_before"),
            tier=data.get("tier") or None,
            region=data.get("region") or None,
            partner_type=data.get("partner_type") or None,
            account_owner=data.get("account_owner"),
        )


class CommentFilterForm(ReportFilterForm):
    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    category = forms.ChoiceField(
        required=False, label=_("Category"), choices=BLANK + list(Response.Category.choices)
    )
    wave = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label=_("Wave"))
    theme = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label=_("Theme"))

    def __init__(self, *args, waves, themes, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["wave"].choices = BLANK + [(str(w.pk), w.label) for w in waves]
        self.fields["theme"].choices = BLANK + [(str(t.pk), t.name) for t in themes]
