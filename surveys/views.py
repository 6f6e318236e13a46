"""The partner's pages, reached from the emailed link: the survey form, the thank-you page and the
unsubscribe page. Partners have no account; the token in the link is their only credential.

- A GET or HEAD changes nothing at all, not even a "first opened" stamp: mail security scanners
  open every link in an email.
- Every outcome is a page written for a person: an unknown link is a 404, a closed survey a 410,
  a survey not open yet a 403, a bad answer a 400 that shows the form again, a database outage a
  503 that says nothing was saved and sends the same answer again with one button; never a 500.
- Pages are rendered in the contact's language and the program's time zone, are not cached or
  indexed, load nothing from other sites, and do not leak the link in a ``Referer`` header.

Views are thin: ``ResponseForm`` checks the input, ``surveys.services`` reads the token and writes
the answer (``response_record``: one statement; its follow-up comes after commit) or the opt-out.
"""

from __future__ import annotations

import functools
import logging
import zoneinfo
from urllib.parse import urlencode

from csp.decorators import csp_replace
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from nps_project.security import link_rate_limit

from . import branding, services
from .form_page import FirstVisitPages, row_key
from .forms import (
    BAND_PROMPTS,
    COMMENT_MAX_LENGTH,
    SCORES,
    ResponseForm,
    band_of,
    parse_score,
    why_prompt,
)
from .models import Invitation, Program, Response, Wave

logger = logging.getLogger(__name__)

OPEN, NOT_OPEN_YET, CLOSED = "open", "not-open-yet", "closed"

# The survey form takes no CSRF token. CSRF protects an ambient credential (a session cookie)
# that a forged cross-site POST would ride on; the form has none: the link's secret token is its
# only credential, and a forged POST would have to carry it, which whoever knows it can do
# anyway. So partner pages set no cookie at all, a phone that blocks cookies can still answer,
# and every partner page sends "Referrer-Policy: no-referrer" (a CSRF check would have needed
# "same-origin" for the Origin header). Staff pages keep Django's CSRF protection.


# Partner pages have no inline style at all: their Content-Security-Policy says so.
PARTNER_CSP = {"style-src": ["'self'"]}


def partner_page(view):
    """Headers of every partner page: never cached (the page holds the link's answer), never
    indexed, and no ``Referer`` carrying the token to anyone; a stricter CSP than staff pages;
    and a rate limit per client address (``nps_project.security.link_rate_limit``)."""

    @link_rate_limit
    @csp_replace(PARTNER_CSP)
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except DatabaseError:
            logger.exception("The database failed during a partner page; answered 503")
            response = _try_again(request)
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapped


def _try_again(request) -> HttpResponse:
    """The page for a database outage (a restart, a fail-over): 503 with ``Retry-After``, saying
    that nothing was saved. A POST's fields come back as hidden inputs, so one button sends the
    same answer again. Rendered without the database (no context processors, no branding)."""
    fields = []
    if request.method == "POST":
        fields = [
            (name, value)
            for name, values in request.POST.lists()
            if name != "csrfmiddlewaretoken"
            for value in values
        ]
    language = translation.get_language_from_request(request)
    if services.supported_language(language) != language:
        language = settings.LANGUAGE_CODE
    with translation.override(language):
        html = render_to_string(
            "surveys/try_again.html",
            {
                "fields": fields,
                "action": request.get_full_path(),
                "LANGUAGE_CODE": language,
            },
        )
    response = HttpResponse(html, status=503)
    response.headers["Retry-After"] = "30"
    response.headers["Content-Language"] = language
    return response


def _program_zone(program) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(program.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return zoneinfo.ZoneInfo("UTC")


def _display_language(request, invitation: Invitation | None) -> tuple[str, str]:
    """(language, override): the page's language and the ``?lang=`` that chose it, if any.

    ``?lang=`` (the page's language switcher) changes only what this page shows and is carried
    in the page's own links; it is never stored. Without it: the contact's language, or for an
    unknown link the browser's. A language without a translation falls back to English.
    """
    override = _language_override(request)
    if override:
        return override, override
    if invitation is None:
        return services.supported_language(translation.get_language() or ""), ""
    return services.supported_language(invitation.contact.language), ""


def _language_override(request) -> str:
    """The language ``?lang=`` chose, if it is one with a translation; else ""."""
    asked = request.GET.get("lang")
    if isinstance(asked, str) and asked:
        language = services.supported_language(asked)
        if language == asked.lower():
            return language
    return ""


def _with_lang(url: str, override: str, **params) -> str:
    query = {k: v for k, v in {**params, "lang": override}.items() if v not in (None, "")}
    return f"{url}?{urlencode(query)}" if query else url


def _languages(
    request, override: str, current: str, score: int | None = None, path: str | None = None
) -> list[dict]:
    """The language switcher's links: this page in each language (GET, nothing stored)."""
    path = path or request.path
    return [
        {
            "code": code,
            "name": name,
            "url": _with_lang(path, code, score=score),
            "current": code == current,
        }
        for code, name in settings.LANGUAGES
        if services.supported_language(code) == code
    ]


def _render(
    request,
    template: str,
    context: dict,
    *,
    invitation: Invitation | None = None,
    status: int = 200,
    score: int | None = None,
    path: str | None = None,
):
    """Render in the display language and the program's time zone (for an unknown link: the
    browser's language and UTC), with the program's branding. ``path`` is the page's own path
    for the language switcher's links (the request's by default). A staff member's pending
    messages are not shown on a partner's page (nor used up by it)."""
    language, override = _display_language(request, invitation)
    if invitation is None:
        zone = zoneinfo.ZoneInfo("UTC")
    else:
        zone = _program_zone(invitation.wave.program)
        program = invitation.wave.program
        context = {
            "invitation": invitation,
            "contact": invitation.contact,
            "program": program,
            "wave": invitation.wave,
            "time_zone": zone.key,
            "brand_css": _brand_css_url(program),
            "logo_url": branding.logo_url(program.logo_url),
            **context,
        }
    context = {
        "LANGUAGE_CODE": language,
        "lang_override": override,
        "languages": _languages(request, override, language, score, path=path),
        "messages": (),
        **context,
    }
    if "token" in context:
        token = context["token"]
        context.setdefault(
            "respond_url", _with_lang(reverse("surveys:respond", args=[token]), override)
        )
        context.setdefault(
            "unsubscribe_url", _with_lang(reverse("surveys:unsubscribe", args=[token]), override)
        )
    with translation.override(language), timezone.override(zone):
        response = render(request, template, context, status=status)
    response.headers["Content-Language"] = language
    return response


@functools.lru_cache(maxsize=128)
def score_scale(selected: int | None, language: str) -> str:
    """The form's 0-10 scale (``surveys/_scale.html``) with ``selected`` chosen, in
    ``language``: the same for every partner, so rendered once per (choice, language) and
    process rather than on every request (it is a fifth of the page's rendering)."""
    with translation.override(language):
        return mark_safe(  # noqa: S308 - a template's output, autoescaped
            render_to_string(
                "surveys/_scale.html",
                {"scores": [(n, n == selected, band_of(n)) for n in SCORES]},
            )
        )


def _brand_css_url(program: Program) -> str:
    colour = branding.palette(program.brand_colour).brand
    return reverse("surveys:brand-css", args=[program.pk]) + "?v=" + colour.lstrip("#")


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


@csrf_exempt  # the link's token is the credential: see the note at the top of the module
@require_http_methods(["GET", "HEAD", "POST"])
@partner_page
def respond(request, token: str):
    """The survey form. GET shows it (``?score=N`` chooses N); POST records or revises the answer
    and redirects to the thank-you page."""
    if request.method == "POST":
        recorded = _record_plain_answer(request, token)
        if recorded is not None:
            return recorded
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
        form = ResponseForm(request.POST, program=program, why_prompt=program.why_prompt)
        if form.is_valid():
            try:
                services.response_record(
                    invitation=invitation,
                    score=form.cleaned_data["score"],
                    comment=form.cleaned_data["comment"],
                    answers=form.answers(),
                    wants_contact=form.cleaned_data["wants_contact"],
                )
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, messages)
            except services.WaveClosedError:
                # The wave closed between loading the invitation and writing the answer.
                return _unavailable(request, invitation, token, CLOSED)
            else:
                return _thanks_redirect(request, token)
        status = 400
    else:
        chosen = parse_score(request.GET.get("score"))
        if previous is None:
            response = _first_visit(request, invitation, token, chosen)
            if response is not None:
                return response
        initial = {}
        if previous is not None:
            initial = {
                "score": previous.score,
                "comment": previous.comment,
                "wants_contact": previous.wants_contact,
                **{f"q_{key}": value for key, value in (previous.answers or {}).items()},
            }
        if chosen is not None:
            initial["score"] = chosen
        form = ResponseForm(initial=initial, program=program, why_prompt=program.why_prompt)
    return _form_page(request, invitation, token, form, previous=previous, status=status)


SCORE_VALUES = frozenset(str(n) for n in SCORES)
PLAIN_FIELDS = frozenset({"csrfmiddlewaretoken", "score", "comment", "wants_contact"})


def _record_plain_answer(request, token: str):
    """The common POST in one statement (``services.response_record_for_token``): a valid
    score, a comment the form would take as it is, the box ticked or not, no answer to an extra
    question. Returns the redirect to the thank-you page, or None for everything else (the
    full path then checks it with ``ResponseForm`` and writes it, or says why not)."""
    data = request.POST
    score = data.get("score")
    comment = data.get("comment", "")
    ticked = data.get("wants_contact")
    if (
        score not in SCORE_VALUES
        or len(comment.strip()) > COMMENT_MAX_LENGTH
        or "\x00" in comment
        or ticked not in (None, "on")
        or any(data.get(key) for key in data if key not in PLAIN_FIELDS)
    ):
        return None
    recorded = services.response_record_for_token(
        token=token, score=int(score), comment=comment, wants_contact=ticked == "on"
    )
    if recorded is None:
        return None
    return _thanks_redirect(request, token)


def _thanks_redirect(request, token: str):
    """After an answer: the thank-you page, in the language ``?lang=`` chose, if any."""
    return redirect(
        _with_lang(reverse("surveys:thanks", args=[token]), _language_override(request))
    )


def _form_page(
    request,
    invitation: Invitation,
    token: str,
    form: ResponseForm,
    *,
    previous: Response | None,
    status: int = 200,
    stand_ins: dict | None = None,
) -> HttpResponse:
    """The survey form, rendered in full. ``stand_ins`` replace context values (the first
    visit's placeholders)."""
    program = invitation.wave.program
    selected = form.selected_score()
    language, override = _display_language(request, invitation)
    with translation.override(language):
        words = branding.wording(program)
        prompt = why_prompt(program.why_prompt, selected)
        prompts = {
            "none": why_prompt(program.why_prompt, None),
            **{band: str(text) for band, text in BAND_PROMPTS.items()},
        }
    response = _render(
        request,
        "surveys/respond.html",
        {
            "token": token,
            "form": form,
            "previous": previous,
            "scale": score_scale(selected, language),
            "why_prompt": prompt,
            "prompts": prompts,
            "questions": form.question_rows(),
            "wants_contact": form["wants_contact"].value(),
            "form_action": _with_lang(reverse("surveys:respond", args=[token]), override),
            "words": words,
            **(stand_ins or {}),
        },
        invitation=invitation,
        status=status,
        score=selected if request.method != "POST" else None,
        path=reverse("surveys:respond", args=[token]),
    )
    return response


_FIRST_VISITS = FirstVisitPages()


def _first_visit(request, invitation: Invitation, token: str, chosen: int | None):
    """The form of a link not answered yet, from ``_FIRST_VISITS`` (see ``surveys.form_page``);
    None if it cannot be filled in safely (the caller renders in full)."""
    program = invitation.wave.program
    language, override = _display_language(request, invitation)
    key = (language, override, chosen, row_key(invitation.wave), row_key(program))
    pages = _FIRST_VISITS

    def render() -> str:
        form = ResponseForm(
            initial={} if chosen is None else {"score": chosen},
            program=program,
            why_prompt=program.why_prompt,
        )
        stand_ins = {
            "contact": pages.stand_in("contact"),
            "invitation": pages.stand_in("invitation"),
        }
        page = _form_page(
            request, invitation, pages.token, form, previous=None, stand_ins=stand_ins
        )
        return page.content.decode(page.charset)

    html = pages.page(key, render=render, token=token, name=invitation.contact.name)
    if html is None:
        return None
    response = HttpResponse(html)
    response.headers["Content-Language"] = language
    return response


def partner_updates_url(invitation: Invitation, token: str) -> str | None:
    """The partner's "you told us, we did" page, reached with the survey link's own token, when
    changes have shipped in answer to the partner's earlier feedback; else None (no link)."""
    from followups.selectors import partner_shipped_changes

    if not partner_shipped_changes(invitation.contact.partner).exists():
        return None
    return reverse("surveys:updates", args=[token])


@require_http_methods(["GET", "HEAD"])
@partner_page
def updates(request, token: str):
    """ "You told us, we did" for the partner of a survey link: the shipped changes linked to its
    feedback. Reads only; valid for as long as the link is."""
    from followups.selectors import partner_shipped_changes

    invitation = services.invitation_for_token(token)
    if invitation is None:
        return _invalid_link(request)
    partner = invitation.contact.partner
    return render(
        request,
        "followups/public_changes.html",
        {"partner": partner, "changes": partner_shipped_changes(partner)},
    )


@require_http_methods(["GET", "HEAD"])
@partner_page
def thanks(request, token: str):
    """What happens next, per category; a detractor is told someone will be in touch."""
    invitation = services.invitation_for_token(token)
    if invitation is None:
        return _invalid_link(request)
    response = _response_of(invitation)
    if response is None:
        # Nothing answered yet (the page was opened directly): show the form.
        _language, override = _display_language(request, invitation)
        return redirect(_with_lang(reverse("surveys:respond", args=[token]), override))
    return _render(
        request,
        "surveys/thanks.html",
        {
            "token": token,
            "response": response,
            "is_detractor": response.category == Response.Category.DETRACTOR,
            "can_change": _wave_state(invitation.wave) == OPEN,
            "followup_days": settings.NPS_FOLLOWUP_SLA_BUSINESS_DAYS,
            "updates_url": partner_updates_url(invitation, token),
        },
        invitation=invitation,
    )


@require_http_methods(["GET", "HEAD"])
def brand_css(request, program_id: int):
    """A program's colours as CSS custom properties, from its validated brand colour. A file,
    not an inline style, so the pages keep working under a CSP without 'unsafe-inline'. Its
    address carries the colour, so it can be cached for long."""
    colour = Program.objects.filter(pk=program_id).values_list("brand_colour", flat=True).first()
    if colour is None:
        raise Http404
    response = HttpResponse(branding.palette(colour).stylesheet(), content_type="text/css")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def csrf_failure(request, reason: str = ""):
    """``CSRF_FAILURE_VIEW``: a partner whose browser did not send the form's cookie gets a page
    that says what to do, in their language, instead of Django's developer page. Staff pages
    keep Django's page."""
    prefix = reverse("surveys:respond", args=["x" * 32]).split("x" * 32)[0]
    if not request.path.startswith(prefix):
        return django_csrf_failure(request, reason=reason)
    token = request.path[len(prefix) :].split("/", 1)[0]
    invitation = services.invitation_for_token(token)
    response = _render(
        request,
        "surveys/csrf_failure.html",
        {"back_url": request.get_full_path()},
        invitation=invitation,
        status=403,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


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
