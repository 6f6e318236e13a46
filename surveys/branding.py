"""A program's brand colour, made safe to use on the partner's pages and in emails.

The colour is checked by the database (``surveys_program_brand_colour_hex``) and by
``Program.clean``; this module still refuses anything but ``#rrggbb`` before it reaches a page,
and picks colours that keep WCAG AA contrast whatever the vendor chose: the text on a
brand-coloured button is white or near-black, whichever reads better, and a brand colour too
light for links and borders on white is replaced by the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

DEFAULT_COLOUR = "#0b5cad"
HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
DARK_TEXT = "#1b1f24"


def _luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two ``#rrggbb`` colours, from 1 to 21."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@dataclass(frozen=True)
class Palette:
    brand: str  # the vendor's colour, for fills (the chosen score, the submit button)
    on_brand: str  # text on a brand fill
    accent: str  # links, borders and focus on white: the brand if it has 4.5:1, else default

    def stylesheet(self) -> str:
        return f":root{{--brand:{self.brand};--on-brand:{self.on_brand};--accent:{self.accent};}}\n"


def palette(colour: str | None) -> Palette:
    brand = colour.lower() if isinstance(colour, str) and HEX.match(colour) else DEFAULT_COLOUR
    on_brand = "#ffffff" if contrast(brand, "#ffffff") >= contrast(brand, DARK_TEXT) else DARK_TEXT
    if contrast(brand, "#ffffff") < 4.5:
        # A light brand fill still carries readable dark text, but links on white need more.
        accent = DEFAULT_COLOUR
    else:
        accent = brand
    return Palette(brand=brand, on_brand=on_brand, accent=accent)


def logo_url(url: str | None) -> str:
    """The program's logo if it is an https:// address, else "" (no mixed content, no
    ``javascript:``)."""
    return url if isinstance(url, str) and url.startswith("https://") else ""


# The product's default wording of a program, translated: a program that keeps a default shows
# it in the contact's language; wording an admin wrote is shown as written.
DEFAULT_WORDING = {
    "subject": _("How likely are you to recommend us to a colleague?"),
    "question": _("How likely are you to recommend us to a friend or colleague?"),
    "why_prompt": _("What is the main reason for your score?"),
}


def wording(program) -> dict[str, str]:
    """The program's subject, question and "why?" prompt for the active language."""
    from .models import Program

    texts = {}
    for field, translated in DEFAULT_WORDING.items():
        value = getattr(program, field, "") or ""
        default = Program._meta.get_field(field).default
        texts[field] = str(translated) if not value or value == default else value
    return texts
