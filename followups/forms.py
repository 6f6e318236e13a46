"""Forms of the follow-up pages. They check the shape of the input; the services check the rules."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from surveys.models import Program, Tier

from . import selectors
from .models import Change, FollowUp, FollowUpEvent, RootCause

Status = FollowUp.Status


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", _("Any status")), *Status.choices], required=False, label=_("Status")
    )
    assignee = forms.ModelChoiceField(
        queryset=selectors.cs_users(), required=False, empty_label=_("Anyone"), label=_("Assignee")
    )
    program = forms.ModelChoiceField(
        queryset=Program.objects.order_by("name"),
        required=False,
        empty_label=_("Any program"),
        label=_("Program"),
    )
    tier = forms.ModelChoiceField(
        queryset=Tier.objects.all(), required=False, empty_label=_("Any tier"), label=_("Tier")
    )
    region = forms.CharField(required=False, max_length=100, label=_("Region"))
    kind = forms.ChoiceField(
        choices=[("", _("Any kind")), *FollowUp.Kind.choices], required=False, label=_("Kind")
    )

    def filters(self) -> dict:
        """The valid, non-empty filters; an invalid field is ignored (and shown with its error)."""
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value}


class VersionedForm(forms.Form):
    """Carries the follow-up version the page showed, so a stale edit is refused."""

    version = forms.IntegerField(
        widget=forms.HiddenInput,
        min_value=1,
        error_messages={
            "required": _("The form was incomplete: reload the page and try again."),
            "invalid": _("The form was incomplete: reload the page and try again."),
            "min_value": _("The form was incomplete: reload the page and try again."),
        },
    )


class LogContactForm(VersionedForm):
    kind = forms.ChoiceField(
        choices=[
            (FollowUpEvent.Kind.CALL, _("Call")),
            (FollowUpEvent.Kind.EMAIL, _("Email")),
            (FollowUpEvent.Kind.NOTE, _("Note")),
        ],
        initial=FollowUpEvent.Kind.CALL,
        widget=forms.RadioSelect,
        label=_("Kind"),
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
        label=_("What was said or done"),
        error_messages={"required": _("Write what was said or done.")},
    )


class TransitionForm(VersionedForm):
    to = forms.ChoiceField(choices=Status.choices, label=_("New status"))
    root_cause = forms.ModelChoiceField(
        queryset=RootCause.objects.filter(is_active=True),
        required=False,
        empty_label=_("Choose the root cause"),
        label=_("Root cause"),
    )
    action_taken = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=5000,
        label=_("Action taken"),
    )
    closed_reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        max_length=5000,
        label=_("Why no action is needed"),
    )
    note = forms.CharField(required=False, max_length=5000, label=_("Note (optional)"))


class AssignForm(VersionedForm):
    assignee = forms.ModelChoiceField(
        queryset=selectors.cs_users(),
        required=False,
        empty_label=_("Nobody (unassigned)"),
        label=_("Assign to"),
    )


class LinkChangeForm(VersionedForm):
    change = forms.ModelChoiceField(
        queryset=Change.objects.none(),
        empty_label=_("Choose a change"),
        label=_("Change"),
        error_messages={"invalid_choice": _("Choose a change that is still open for linking.")},
    )

    def __init__(self, *args, followup: FollowUp, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["change"].queryset = selectors.linkable_changes(followup)


class ChangeForm(forms.Form):
    title = forms.CharField(max_length=200, label=_("Title"))
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        label=_("What changed"),
        help_text=Change._meta.get_field("description").help_text,
    )
    category = forms.ChoiceField(choices=Change.Category.choices, label=_("Category"))
    followup = forms.ModelChoiceField(
        queryset=FollowUp.objects.select_related("partner"),
        required=False,
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": _("That follow-up does not exist.")},
    )


class ChangeStatusForm(forms.Form):
    status = forms.ChoiceField(choices=Change.Status.choices, label=_("Status"))


class LinkFollowUpsForm(forms.Form):
    """Pick open follow-ups from a list, or type their numbers."""

    LIST_LIMIT = 200

    followups = forms.MultipleChoiceField(
        required=False, label=_("Open follow-ups"), widget=forms.SelectMultiple(attrs={"size": 8})
    )
    ids = forms.CharField(
        required=False,
        max_length=1000,
        label=_("Or follow-up numbers"),
        help_text=_("Separated by commas or spaces, e.g. 12, 40"),
    )

    def __init__(self, *args, change: Change, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["followups"].choices = [
            (f.pk, f"#{f.pk} · {f.partner.name} · {f.response.score if f.response else '—'}")
            for f in selectors.followups_linkable_to(change)[: self.LIST_LIMIT]
        ]

    def clean_ids(self) -> list[int]:
        text = self.cleaned_data["ids"].strip().replace("#", "")
        if not text:
            return []
        parts = [p for p in re.split(r"[\s,;]+", text) if p]
        bad = [p for p in parts if not p.isdigit()]
        if bad:
            raise forms.ValidationError(
                _("Not a follow-up number: %(bad)s") % {"bad": ", ".join(bad)}
            )
        return [int(p) for p in parts]

    def clean(self):
        cleaned = super().clean()
        ids = {int(pk) for pk in cleaned.get("followups") or []} | set(cleaned.get("ids") or [])
        if not self.errors and not ids:
            raise forms.ValidationError(_("Choose at least one follow-up."))
        cleaned["followup_ids"] = sorted(ids)
        return cleaned


class BulkAssignForm(forms.Form):
    """A manager gives the ticked follow-ups to one person (or nobody)."""

    followups = forms.ModelMultipleChoiceField(
        queryset=FollowUp.objects.all(),
        error_messages={
            "required": _("Tick at least one follow-up."),
            "invalid_choice": _("One of the ticked follow-ups no longer exists."),
            "invalid_pk_value": _("One of the ticked follow-ups no longer exists."),
        },
    )
    assignee = forms.ModelChoiceField(
        queryset=selectors.cs_users(),
        required=False,
        empty_label=_("Nobody (unassigned)"),
        label=_("Reassign to"),
    )
