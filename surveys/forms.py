"""The partner's survey form. It checks the input; ``response_submit`` writes."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

SCORES = range(11)
COMMENT_MAX_LENGTH = 5000  # the same limit as Response.comment and response_submit


def parse_score(value) -> int | None:
    """A whole number from 0 to 10 written plainly ("7", not "07", " 7" or "7.0"), else None.

    Used for the ``?score=N`` of the email's score links, where a bad value is ignored.
    """
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    score = int(value)
    return score if score in SCORES and str(score) == value else None


class ResponseForm(forms.Form):
    score = forms.TypedChoiceField(
        choices=[(str(n), str(n)) for n in SCORES],
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("Choose a score from 0 to 10."),
            "invalid_choice": _("Choose a score from 0 to 10."),
        },
    )
    comment = forms.CharField(
        required=False,
        max_length=COMMENT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={
            "max_length": _(
                "Please keep your answer under 5,000 characters (it has %(show_value)s)."
            ),
        },
    )

    def __init__(self, *args, why_prompt: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["comment"].label = why_prompt or _("What is the main reason for your score?")

    def selected_score(self) -> int | None:
        """The score to show as chosen: the submitted one, else the initial one."""
        if self.is_bound:
            return parse_score(self.data.get("score"))
        initial = self.initial.get("score")
        return initial if initial in SCORES else None
