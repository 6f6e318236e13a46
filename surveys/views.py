"""The partner's pages, reached from the emailed link: the survey form, the thank-you page and the
unsubscribe page. Partners have no account; the token in the link is their only credential.

- A GET or HEAD changes nothing at all, not even a "first opened" stamp: mail security scanners
  open every link in an email.
- Every outcome is a page written for a person: an unknown link is a 404, a closed survey a 410,
  a survey not open yet a 403, a bad answer a 400 that shows the form again; never a 500.
- Pages are rendered in the contact's language and the program's time zone, are not cached or
  indexed, load nothing from other sites, and do not leak the link in a ``Referer`` header.

Views are thin: ``ResponseForm`` checks the input, ``surveys.services`` reads the token and writes
the answer or the opt-out.
"""

from __future__ import annotations

import functools
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import services
from .forms import SCORES, ResponseForm, parse_score
from .models import Invitation, Response, Wave

OPEN, NOT_OPEN_YET, CLOSED = "open", "not-open-yet", "closed"

# The form page posts to itself with Django's CSRF check. Under "no-referrer" browsers send
# ``Origin: null`` with a same-origin POST, which the CSRF check rejects, so the form page uses
# "same-origin": the link still never reaches another site (the pages link to none).
FORM_REFERRER_POLICY = "same-origin"


def partner_page(view):
    """Headers of every partner page: never cached (the page holds the link's answer), never
    indexed, and no ``Referer`` carrying the token to anyone."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapped


def _program_zone(program) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(program.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return zoneinfo.ZoneInfo("UTC")


def _render(
    request,
    template: str,
    context: dict,
    *,
    invitation: Invitation | None = None,
    status: int = 200,
):
    """Render in the contact's language and the program's time zone (for an unknown link: the
    browser's language and UTC)."""
    if invitation is None:
        language = translation.get_language() or settings.LANGUAGE_CODE
        zone = zoneinfo.ZoneInfo("UTC")
    else:
        language = services.supported_language(invitation.contact.language)
        zone = _program_zone(invitation.wave.program)
        context = {
            "invitation": invitation,
            "contact": invitation.contact,
            "program": invitation.wave.program,
            "wave": invitation.wave,
            "time_zone": zone.key,
            **context,
        }
    with translation.override(language), timezone.override(zone):
        response = render(request, template, {"LANGUAGE_CODE": language, **context}, status=status)
    response.headers["Content-Language"] = language
    return response


def _wave_state(wave: Wave) -> str:
    now = timezone.now()
    if wave.is_open_at(now):
        return OPEN
    if wave.status == Wave.Status.OPEN and now < wave.opens_at:
        return NOT_OPEN_YET
    return CLOSED


def _response_of(invitation: Invitation) -> Response | None:
    try:
        return invitation.response
    except Response.DoesNotExist:
        return None


def _invalid_link(request):
    return _render(request, "surveys/invalid_link.html", {}, status=404)


def _unavailable(request, invitation: Invitation, token: str, state: str):
    """The page of a survey that does not take answers now: closed (410) or not open yet (403)."""
    return _render(
        request,
        "surveys/unavailable.html",
        {"token": token, "state": state, "response": _response_of(invitation)},
        invitation=invitation,
        status=410 if state == CLOSED else 403,
    )


@require_http_methods(["GET", "HEAD", "POST"])
@partner_page
def respond(request, token: str):
    """The survey form. GET shows it (``?score=N`` chooses N); POST records or revises the answer
    and redirects to the thank-you page."""
    invitation = services.invitation_for_token(token)
    if invitation is None:
        return _invalid_link(request)
    state = _wave_state(invitation.wave)
    if state != OPEN:
        return _unavailable(request, invitation, token, state)
    program = invitation.wave.program
    previous = _response_of(invitation)
    status = 200
    if request.method == "POST":
        form = ResponseForm(request.POST, why_prompt=program.why_prompt)
        if form.is_valid():
            try:
                services.response_submit(
                    invitation_id=invitation.pk,
                    score=form.cleaned_data["score"],
                    comment=form.cleaned_data["comment"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            except services.WaveClosedError:
                # The wave closed between loading the invitation and locking it.
                return _unavailable(request, invitation, token, CLOSED)
            else:
                return redirect("surveys:thanks", token)
        status = 400
    else:
        initial = {}
        if previous is not None:
            initial = {"score": previous.score, "comment": previous.comment}
        chosen = parse_score(request.GET.get("score"))
        if chosen is not None:
            initial["score"] = chosen
        form = ResponseForm(initial=initial, why_prompt=program.why_prompt)
    selected = form.selected_score()
    response = _render(
        request,
        "surveys/respond.html",
        {
            "token": token,
            "form": form,
            "previous": previous,
            "scores": [(n, n == selected) for n in SCORES],
        },
        invitation=invitation,
        status=status,
    )
    response.headers["Referrer-Policy"] = FORM_REFERRER_POLICY
    return response


@require_http_methods(["GET", "HEAD"])
@partner_page
def thanks(request, token: str):
    invitation = services.invitation_for_token(token)
    if invitation is None:
        return _invalid_link(request)
    response = _response_of(invitation)
    if response is None:
        # Nothing answered yet (the page was opened directly): show the form.
        return redirect("surveys:respond", token)
    return _render(
        request,
        "surveys/thanks.html",
        {
            "token": token,
            "response": response,
            "is_detractor": response.category == Response.Category.DETRACTOR,
            "can_change": _wave_state(invitation.wave) == OPEN,
            "followup_days": settings.NPS_FOLLOWUP_SLA_BUSINESS_DAYS,
        },
        invitation=invitation,
    )


@csrf_exempt  # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" with no cookies at all
@require_http_methods(["GET", "HEAD", "POST"])
@partner_page
def unsubscribe(request, token: str):
    """GET asks for confirmation and changes nothing; POST (from the page's button or a mail
    client's one-click unsubscribe) opts the contact out of every program.

    It works after the wave has closed too: an old email's unsubscribe link should still work.
    """
    invitation = services.invitation_for_token(token)
    if invitation is None:
        return _invalid_link(request)
    done = invitation.contact.opted_out_at is not None
    if request.method == "POST":
        services.contact_opt_out(contact_id=invitation.contact_id)
        done = True
    return _render(
        request, "surveys/unsubscribe.html", {"token": token, "done": done}, invitation=invitation
    )
