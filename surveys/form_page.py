"""The survey form's first visit, rendered once per process and variant, filled in per partner.

Nearly every partner request is the first opening of the form: no answer yet, nothing to show
but the program's wording in the contact's language. Rendering that page through the template
engine was a third of the request. ``FirstVisitPages`` renders it once per variant (the
program and wave rows as they are, the display language, the ``?lang=`` choice and the score
chosen by a score link) with placeholders for the two values that differ per partner: the
link's token and the contact's name. Each request then fills them in, in one pass over the
page: the token as it is (URL-safe, needing no escaping, checked here), the name
HTML-escaped, which is what the template engine does to a plain string. The placeholders
hold a random part drawn per process, so no name can contain one, and a filled-in value is
never scanned again.

The result is byte for byte the page the full render gives (``tests/surveys/test_form_page.py``
compares them for hostile names, every language, score links, branding and extra questions).
A revisit (an answer to show), a bad POST and a token of another shape take the full render.
The variant key holds every column of the program and the wave, so an admin's edit shows at
once in every process; translations and templates change only with a deploy.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable

from django.utils.html import escape

from .services import NameOnly

_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


def row_key(instance) -> str:
    """Every column of ``instance``, as a string fit for a cache key."""
    return repr(tuple(getattr(instance, f.attname) for f in instance._meta.concrete_fields))


class FirstVisitPages:
    """A bounded LRU of first-visit pages split at their placeholders."""

    def __init__(self, maxsize: int = 256):
        marker = f"nps{secrets.token_hex(8)}"
        self.token = f"{marker}token"
        self.name = f"{marker}name"
        self._pattern = re.compile(re.escape(marker) + "(token|name)")
        self._pages: OrderedDict[tuple, list[str]] = OrderedDict()
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def stand_in(self, role: str) -> NameOnly:
        """The contact (or invitation) for the render with placeholders: a name only."""
        return NameOnly(self.name, role, filled_by="surveys.form_page.FirstVisitPages")

    def page(self, key: tuple, *, render: Callable[[], str], token: str, name: str) -> str | None:
        """The page for ``key`` with the values filled in; ``render()`` makes it with the
        placeholders on a miss. None if a value cannot be filled in safely (the caller then
        renders the page in full)."""
        if not _URL_SAFE.fullmatch(token):
            return None
        with self._lock:
            parts = self._pages.get(key)
            if parts is not None:
                self._pages.move_to_end(key)
        if parts is None:
            parts = self._pattern.split(render())
            with self._lock:
                self._pages[key] = parts
                while len(self._pages) > self.maxsize:
                    self._pages.popitem(last=False)
        values = {"token": token, "name": escape(name)}
        filled = parts.copy()
        filled[1::2] = [values[slot] for slot in parts[1::2]]
        return "".join(filled)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
