"""Render a multipart email from three templates: ``emails/<name>_{subject,body}.txt`` and
``emails/<name>_body.html``."""

from __future__ import annotations

from email.utils import formataddr, parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def sender(display_name: str) -> str:
    """``"Display Name" <address>`` with the configured address; formataddr quotes the name, and
    newlines are removed so a name cannot inject a header."""
    _name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    clean = " ".join(display_name.split())
    return formataddr((clean, address))


def render_email(
    name: str,
    context: dict,
    *,
    to: str,
    from_email: str | None = None,
    headers: dict | None = None,
    connection=None,
) -> EmailMultiAlternatives:
    subject = " ".join(render_to_string(f"emails/{name}_subject.txt", context).split())
    text = render_to_string(f"emails/{name}_body.txt", context)
    html = render_to_string(f"emails/{name}_body.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=from_email or settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=headers or {},
        connection=connection,
    )
    message.attach_alternative(html, "text/html")
    return message
