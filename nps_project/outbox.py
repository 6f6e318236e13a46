"""The demo outbox: staff read the emails that ``nps_project.mail.OutboxBackend`` wrote as .eml
files into ``OUTBOX_DIR``, and can click a survey link in them as the partner would.

Only for customer-success staff, and only while the outbox backend is the active email backend
(otherwise there is no outbox: 404). A message is opened by its file name, which must match
``NAME_RE`` and be one of the names listed in the folder, so no path can leave the folder.
The email's HTML is shown in a sandboxed ``<iframe srcdoc>``: no scripts, no same-origin access,
only a person's click may navigate (to the survey) or open a new tab.
"""

from __future__ import annotations

import functools
import os
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext as _

from . import roles

OUTBOX_BACKEND = "nps_project.mail.OutboxBackend"
NAME_RE = re.compile(r"^[\w.-]+\.eml$", re.ASCII)
PAGE_SIZE = 50


def outbox_enabled() -> bool:
    return settings.EMAIL_BACKEND == OUTBOX_BACKEND


def staff_outbox(view):
    """Anonymous users go to the login page; users outside customer success get 403; without the
    outbox backend the page does not exist (404)."""

    @login_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not roles.is_cs(request.user):
            raise PermissionDenied(_("The outbox is for the customer-success team."))
        if not outbox_enabled():
            raise Http404(_("Emails are not kept in an outbox with this email backend."))
        return view(request, *args, **kwargs)

    return wrapped


def _folder() -> Path:
    return Path(settings.OUTBOX_DIR)


def _names() -> list[str]:
    """The .eml files in the outbox, newest first (names start with their UTC time stamp).
    Half-written files are named ``.<name>.tmp`` and never listed."""
    try:
        entries = os.scandir(_folder())
    except FileNotFoundError:
        return []
    with entries:
        names = [e.name for e in entries if NAME_RE.match(e.name) and e.is_file()]
    return sorted(names, reverse=True)


def _parse(name: str, *, headers_only: bool = False) -> EmailMessage:
    with open(_folder() / name, "rb") as fp:
        return BytesParser(policy=policy.default).parse(fp, headersonly=headers_only)


def _date(message: EmailMessage):
    header = message["Date"]
    return getattr(header, "datetime", None)


@staff_outbox
def outbox_list(request):
    page = Paginator(_names(), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = []
    for name in page.object_list:
        try:
            message = _parse(name, headers_only=True)
        except FileNotFoundError:  # removed since the listing
            continue
        rows.append(
            {
                "name": name,
                "to": str(message["To"] or "").strip(),
                "subject": str(message["Subject"] or "").strip(),
                "date": _date(message),
            }
        )
    return render(
        request,
        "outbox/list.html",
        {"page": page, "rows": rows, "folder": str(_folder())},
    )


def _body(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        return part.get_payload(decode=True).decode("utf-8", errors="replace")


HEAD_RE = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
# Links in the preview open in a new, unsandboxed tab (``allow-popups-to-escape-sandbox``): inside
# the frame the survey page would refuse to load (X-Frame-Options: DENY).
BASE_TARGET = '<base target="_blank">'


def _preview_html(html: str) -> str:
    if not html:
        return ""
    match = HEAD_RE.search(html)
    if match is None:
        return BASE_TARGET + html
    return html[: match.end()] + BASE_TARGET + html[match.end() :]


@staff_outbox
def outbox_message(request, name: str):
    if not NAME_RE.match(name) or name not in _names():
        raise Http404(_("No such email in the outbox."))
    try:
        message = _parse(name)
    except FileNotFoundError as exc:
        raise Http404(_("No such email in the outbox.")) from exc
    headers = [
        # A long header may be folded right after its colon; unfolded, it starts with a space.
        (label, str(message[label]).strip())
        for label in ("From", "To", "Subject", "Date", "List-Unsubscribe", "List-Unsubscribe-Post")
        if message[label] is not None
    ]
    return render(
        request,
        "outbox/message.html",
        {
            "name": name,
            "subject": message["Subject"] or "",
            "headers": headers,
            "html": _preview_html(_body(message, "html")),
            "text": _body(message, "plain"),
        },
    )
