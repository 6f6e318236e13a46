"""Branding for the partner's emails: ``{% brand_palette program as brand %}`` gives the
program's validated colours (see ``surveys.branding``) and its https logo, or none."""

from django import template

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
