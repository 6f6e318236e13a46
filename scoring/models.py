"""Comment themes: an admin-editable keyword list that tags comments at query time."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def split_keywords(raw: str) -> list[str]:
    """Keywords from the admin's text: one per line or comma-separated, trimmed, lower-cased,
    blanks and duplicates dropped, order kept."""
    seen: list[str] = []
    for part in re.split(r"[,\n]", raw or ""):
        keyword = " ".join(part.split()).lower()
        if keyword and keyword not in seen:
            seen.append(keyword)
    return seen


class Theme(models.Model):
    """A theme such as "support" with the keywords that mark a comment as being about it.

    A comment has the theme when its text contains any keyword, case-insensitively, as a
    substring: "price" matches "prices" and "Price list". Tags are computed when comments are
    read (SQL ``icontains`` for counts and filters, the same test in Python for a page's tags),
    never stored, so editing a keyword changes every report at once with no backfill.
    """

    name = models.CharField(max_length=60, unique=True)
    keywords = models.TextField(
        help_text=_(
            "One keyword or phrase per line (or comma-separated), matched case-insensitively "
            "anywhere in a comment: “price” matches “prices” and “Price list”."
        )
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def keyword_list(self) -> list[str]:
        return split_keywords(self.keywords)

    def clean(self):
        if not self.keyword_list:
            raise ValidationError({"keywords": _("Give at least one keyword.")})

    def matches(self, text: str) -> bool:
        """The Python twin of the SQL test in ``scoring.selectors.theme_condition``."""
        folded = (text or "").lower()
        return any(keyword in folded for keyword in self.keyword_list)
