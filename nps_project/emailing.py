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


def render_parts(name: str, context: dict) -> tuple[str, str, str]:
    """The three rendered templates of ``name``: (subject as rendered, text body, HTML body).
    The subject is not yet collapsed to one line (``one_line`` does that)."""
    return (
        render_to_string(f"emails/{name}_subject.txt", context),
        render_to_string(f"emails/{name}_body.txt", context),
        render_to_string(f"emails/{name}_body.html", context),
    )


def one_line(subject: str) -> str:
    """A rendered subject on one line, runs of whitespace (line breaks too) collapsed."""
    return " ".join(subject.split())


def build_email(
    *,
    subject: str,
    text: str,
    html: str,
    to: str,
    from_email: str | None = None,
    headers: dict | None = None,
    connection=None,
) -> EmailMultiAlternatives:
    """A text email with an HTML alternative, from bodies already rendered."""
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


def render_email(
    name: str,
    context: dict,
    *,
    to: str,
    from_email: str | None = None,
    headers: dict | None = None,
    connection=None,
) -> EmailMultiAlternatives:
    subject, text, html = render_parts(name, context)
    return build_email(
        subject=one_line(subject),
        text=text,
        html=html,
        to=to,
        from_email=from_email,
        headers=headers,
        connection=connection,
    )
