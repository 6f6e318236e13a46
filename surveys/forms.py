"""The partner's survey form. It checks the input; ``response_submit`` writes."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .services import ANSWER_MAX_LENGTH

SCORES = range(11)
COMMENT_MAX_LENGTH = 5000  # the same limit as Response.comment and response_submit

# The "why?" prompt follows the score band: the product's wording, translated. A program's own
# ``why_prompt`` is shown when no score is chosen yet.
BAND_PROMPTS = {
    "detractor": _("What disappointed you most, and what should we do better?"),
    "passive": _("What would make it a 10 for you?"),
    "promoter": _("What do you value most in working with us?"),
}
DEFAULT_WHY_PROMPT = "What is the main reason for your score?"  # Program.why_prompt's default


def parse_score(value) -> int | None:
    """A whole number from 0 to 10 written plainly ("7", not "07", " 7" or "7.0"), else None.

    Used for the ``?score=N`` of the email's score links, where a bad value is ignored.
    """
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    score = int(value)
    return score if score in SCORES and str(score) == value else None


def band_of(score: int | None) -> str | None:
    if score is None:
        return None
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def why_prompt(program_prompt: str, score: int | None) -> str:
    """The label of the "why?" box: the band's prompt once a score is chosen, else the
    program's prompt (the product's default wording is translated, a program's own is not)."""
    band = band_of(score)
    if band is not None:
        return str(BAND_PROMPTS[band])
    if not program_prompt or program_prompt == DEFAULT_WHY_PROMPT:
        return str(_("What is the main reason for your score?"))
    return program_prompt


def extra_questions(program) -> list[dict]:
    """The program's well-formed extra questions (``Program.clean`` rejects bad ones; a row
    saved around it is skipped here rather than breaking the partner's page)."""
    questions = []
    for question in program.extra_questions or []:
        if not isinstance(question, dict):
            continue
        key, label, kind = question.get("key"), question.get("label"), question.get("type")
        if not isinstance(key, str) or not key or not isinstance(label, str) or not label:
            continue
        choices = question.get("choices") or []
        if kind == "choice" and isinstance(choices, list) and choices:
            questions.append({"key": key, "label": label, "type": "choice", "choices": choices})
        elif kind in (None, "text"):
            questions.append({"key": key, "label": label, "type": "text", "choices": []})
    return questions


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
    wants_contact = forms.BooleanField(required=False)

    def __init__(self, *args, program=None, why_prompt: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.program_prompt = why_prompt
        self.fields["comment"].label = why_prompt or _("What is the main reason for your score?")
        self.questions = extra_questions(program) if program is not None else []
        for question in self.questions:
            name = f"q_{question['key']}"
            if question["type"] == "choice":
                self.fields[name] = forms.ChoiceField(
                    required=False,
                    choices=[(c, c) for c in question["choices"]],
                    label=question["label"],
                    error_messages={"invalid_choice": _("Choose one of the answers offered.")},
                )
            else:
                self.fields[name] = forms.CharField(
                    required=False,
                    max_length=ANSWER_MAX_LENGTH,
                    label=question["label"],
                    error_messages={
                        "max_length": _("Please keep this answer under 1,000 characters.")
                    },
                )

    def selected_score(self) -> int | None:
        """The score to show as chosen: the submitted one, else the initial one."""
        if self.is_bound:
            return parse_score(self.data.get("score"))
        initial = self.initial.get("score")
        return initial if initial in SCORES else None

    def answers(self) -> dict[str, str]:
        """The extra questions' answers by key, for ``response_submit``."""
        return {q["key"]: self.cleaned_data.get(f"q_{q['key']}") or "" for q in self.questions}

    def question_rows(self) -> list[dict]:
        """What the template needs per extra question: its field, kind, choices and value."""
        rows = []
        for question in self.questions:
            bound = self[f"q_{question['key']}"]
            value = bound.value() or ""
            rows.append(
                {
                    **question,
                    "field": bound,
                    "value": value,
                    "options": [(c, c == value) for c in question["choices"]],
                }
            )
        return rows
