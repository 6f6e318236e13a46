"""Branding for the partner's emails: ``{% brand_palette program as brand %}`` gives the
program's validated colours (see ``surveys.branding``) and its https logo, or none.
``{{ wave.closes_at|answer_until }}`` is the moment to show partners as the last one to answer.
"""

import datetime as dt

from django import template
from django.utils import timezone

from surveys import branding

register = template.Library()


@register.simple_tag
def brand_palette(program):
    colours = branding.palette(getattr(program, "brand_colour", None))
    return {
        "brand": colours.brand,
        "on_brand": colours.on_brand,
        "accent": colours.accent,
        "logo_url": branding.logo_url(getattr(program, "logo_url", None)),
    }


@register.simple_tag
def program_wording(program):
    """``{% program_wording program as words %}``: subject, question and why_prompt, with the
    product's defaults translated."""
    return branding.wording(program)


@register.filter
def answer_until(closes_at):
    """The time to show as "you can answer until …": a wave that closes as a day begins (00:00
    in the zone the page or email is shown in) is shown as open until 23:59 of the day before,
    not "until Dec. 24, midnight" (read as the end of the 24th) or "until Dec. 24"."""
    if closes_at is None:
        return closes_at
    if timezone.localtime(closes_at).time() == dt.time(0, 0):
        return closes_at - dt.timedelta(minutes=1)
    return closes_at
