"""Customer-success pages: the follow-up queue, one follow-up, and the change log.

Views are thin: forms check the input, services in ``services.py`` write, selectors in
``selectors.py`` read. Every action is a small POST that redirects back (PRG) with a message;
a refused action changes nothing and says why.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from audit.services import Action, audit_record
from nps_project import roles
from nps_project.security import link_rate_limit

from . import selectors, services
from .forms import (
    AssignForm,
    BulkAssignForm,
    ChangeForm,
    ChangeStatusForm,
    LinkChangeForm,
    LinkFollowUpsForm,
    LogContactForm,
    QueueFilterForm,
    TransitionForm,
)
from .models import Change, FollowUp, PartnerNotice

Status = FollowUp.Status
PAGE_SIZE = 50

TAB_LABELS = {
    "mine": gettext_lazy("Mine"),
    "unassigned": gettext_lazy("Unassigned"),
    "overdue": gettext_lazy("Overdue"),
    "team": gettext_lazy("Team"),
    "closed": gettext_lazy("Closed"),
}


def cs_required(view):
    """Login required (anonymous users go to the login page); then a customer-success role,
    else 403."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not roles.is_cs(request.user):
            raise PermissionDenied(_("This page is for the customer-success team."))
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def manager_required(view):
    """Login required; then the customer-success manager role (or admin), else 403."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not roles.is_cs_manager(request.user):
            raise PermissionDenied(_("This page is for customer-success managers."))
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def _report_errors(request, error: ValidationError) -> None:
    for text in error.messages:
        messages.error(request, text)


# --- Queue ----------------------------------------------------------------------------------


@cs_required
def queue(request):
    tab = request.GET.get("tab", "mine")
    if tab not in selectors.QUEUE_TABS:
        tab = "mine"
    now = timezone.now()
    filter_form = QueueFilterForm(request.GET or None)
    filters = filter_form.filters() if request.GET else {}
    counts = selectors.queue_tab_counts(user=request.user, filters=filters, now=now)
    followups = selectors.queue_followups(user=request.user, tab=tab, filters=filters, now=now)
    page = Paginator(followups, PAGE_SIZE).get_page(request.GET.get("page"))
    tabs = [
        {"key": key, "label": TAB_LABELS[key], "count": counts[key], "current": key == tab}
        for key in selectors.QUEUE_TABS
    ]
    return render(
        request,
        "followups/queue.html",
        {
            "tab": tab,
            "tabs": tabs,
            "page": page,
            "filter_form": filter_form,
            "filtered": bool(filters),
            "now": now,
            "bulk_form": BulkAssignForm() if roles.is_cs_manager(request.user) else None,
        },
    )


@manager_required
@require_POST
def bulk_assign(request):
    """A manager reassigns the ticked follow-ups; back to the queue page they came from."""
    back = request.POST.get("next", "")
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("followups:queue")
    form = BulkAssignForm(request.POST)
    try:
        data = _valid(form)
        changed = services.followups_bulk_assign(
            followup_ids=[f.pk for f in data["followups"]],
            assignee=data["assignee"],
            by=request.user,
        )
    except ValidationError as exc:
        _report_errors(request, exc)
    else:
        who = data["assignee"].get_username() if data["assignee"] else _("nobody")
        messages.success(
            request,
            ngettext(
                "Reassigned %(n)d follow-up to %(who)s.",
                "Reassigned %(n)d follow-ups to %(who)s.",
                changed,
            )
            % {"n": changed, "who": who},
        )
    return redirect(back)


# --- One follow-up --------------------------------------------------------------------------


def _get_followup(pk: int) -> FollowUp:
    try:
        return selectors.followup_detail(pk=pk)
    except FollowUp.DoesNotExist as exc:
        raise Http404(_("No such follow-up.")) from exc


def _extra_answers(response) -> list[tuple[str, str]]:
    """(question, answer) for each extra question the partner answered, in the program's order;
    an answer to a question since removed keeps its key as the label."""
    if response is None or not response.answers:
        return []
    from surveys.forms import extra_questions

    labels = {q["key"]: q["label"] for q in extra_questions(response.program)}
    ordered = [key for key in labels if key in response.answers]
    ordered += [key for key in response.answers if key not in labels]
    return [(labels.get(key, key), str(response.answers[key])) for key in ordered]


def _status_label(value: str) -> str:
    try:
        return Status(value).label
    except ValueError:
        return value


def _next_statuses(followup: FollowUp) -> list[Status]:
    """The statuses a person may move this follow-up to; "loop closed" only once the partner
    was told (the service says the same)."""
    allowed = services.TRANSITIONS[followup.status]
    return [
        status
        for status in Status
        if status in allowed
        and (status != Status.LOOP_CLOSED or followup.loop_closed_at is not None)
    ]


@cs_required
def detail(request, pk: int):
    followup = _get_followup(pk)
    events = list(selectors.followup_timeline(followup))
    for event in events:
        if event.kind == event.Kind.STATUS:
            event.old_display = _status_label(event.old_value)
            event.new_display = _status_label(event.new_value)
        else:
            event.old_display, event.new_display = event.old_value, event.new_value
    can_edit = services.can_edit_followup(request.user, followup)
    is_manager = roles.is_cs_manager(request.user)
    initial = {"version": followup.version}
    # Who saw this partner's answer; changes are on the follow-up's own timeline (events).
    audit_record(
        actor=request.user, action=Action.VIEW, target="followup", target_id=pk, request=request
    )
    context = {
        "followup": followup,
        "contact": followup.invitation.contact if followup.invitation_id else None,
        "response": followup.response,
        "answers": _extra_answers(followup.response),
        "partner": followup.partner,
        "events": events,
        "history": selectors.partner_responses(followup.partner),
        "other_followups": selectors.partner_other_followups(followup),
        "changes": selectors.partner_changes(followup.partner),
        "can_edit": can_edit,
        "is_manager": is_manager,
        "can_take": can_edit and followup.assignee_id is None,
    }
    if can_edit:
        context.update(
            {
                "contact_form": LogContactForm(initial=initial),
                "transition_form": TransitionForm(initial=initial),
                "next_statuses": _next_statuses(followup),
                "assign_form": AssignForm(initial={**initial, "assignee": followup.assignee_id})
                if is_manager
                else None,
                "link_form": LinkChangeForm(initial=initial, followup=followup),
            }
        )
    return render(request, "followups/detail.html", context)


def followup_action(view):
    """The frame of every follow-up action: POST only, CS only, the follow-up must exist; the
    action's refusals (invalid form, stale version, rule broken) become error messages. Someone
    who may not edit the follow-up gets a 403 whatever they post (the services check the same
    rule again under the row lock). Always redirects back to the follow-up."""

    @cs_required
    @require_POST
    @functools.wraps(view)
    def wrapped(request, pk: int):
        followup = FollowUp.objects.filter(pk=pk).first()
        if followup is None:
            raise Http404(_("No such follow-up."))
        if not services.can_edit_followup(request.user, followup):
            raise PermissionDenied(
                _("You can only change follow-ups assigned to you or unassigned.")
            )
        try:
            success = view(request, followup)
        except services.StaleFollowUpError as exc:
            messages.error(request, str(exc))
        except ValidationError as exc:
            _report_errors(request, exc)
        else:
            if success:
                messages.success(request, success)
        return redirect("followups:detail", pk=pk)

    return wrapped


def _valid(form) -> dict:
    """The cleaned data, or a ValidationError carrying the form's errors."""
    if not form.is_valid():
        raise ValidationError(
            [
                msg
                if name == "__all__" or form.fields[name].widget.is_hidden
                else f"{form.fields[name].label}: {msg}"
                for name, msgs in form.errors.items()
                for msg in msgs
            ]
        )
    return form.cleaned_data


@followup_action
def log_contact(request, followup: FollowUp) -> str:
    data = _valid(LogContactForm(request.POST))
    services.followup_log_contact(
        followup_id=followup.pk,
        by=request.user,
        kind=data["kind"],
        note=data["note"],
        version=data["version"],
    )
    return {
        "call": _("Call logged."),
        "email": _("Email logged."),
        "note": _("Note added."),
    }[data["kind"]]


@followup_action
def transition(request, followup: FollowUp) -> str:
    data = _valid(TransitionForm(request.POST))
    followup = services.followup_transition(
        followup_id=followup.pk,
        to=data["to"],
        by=request.user,
        note=data["note"],
        root_cause=data["root_cause"],
        action_taken=data["action_taken"],
        closed_reason=data["closed_reason"],
        version=data["version"],
    )
    return _("Status is now “%(status)s”.") % {"status": followup.get_status_display()}


@followup_action
def assign(request, followup: FollowUp) -> str:
    data = _valid(AssignForm(request.POST))
    followup = services.followup_assign(
        followup_id=followup.pk, assignee=data["assignee"], by=request.user, version=data["version"]
    )
    if followup.assignee is None:
        return _("The follow-up is now unassigned.")
    if followup.assignee.pk == request.user.pk:
        return _("The follow-up is yours now.")
    return _("Assigned to %(name)s.") % {"name": followup.assignee.get_username()}


@followup_action
def link_change(request, followup: FollowUp) -> str:
    data = _valid(LinkChangeForm(request.POST, followup=followup))
    # change_link_followups takes no version: the check is made here. Linking is additive and
    # idempotent, so a race past this check loses nothing.
    if data["version"] != followup.version:
        raise services.StaleFollowUpError(
            _(
                "Someone else changed this follow-up while you were looking at it. "
                "Your change was not saved; here is the current state."
            )
        )
    change = data["change"]
    services.change_link_followups(change_id=change.pk, followup_ids=[followup.pk], by=request.user)
    return _("Linked to the change “%(title)s”.") % {"title": change.title}


# --- Changes --------------------------------------------------------------------------------


@cs_required
def change_list(request):
    page = Paginator(selectors.change_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "followups/change_list.html", {"page": page})


@cs_required
def change_create(request):
    """Log a change; ``?followup=<pk>`` (from a follow-up page) links it straight away."""
    form = ChangeForm(request.POST or None, initial={"followup": request.GET.get("followup")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            change = services.change_create(
                title=data["title"],
                description=data["description"],
                category=data["category"],
                by=request.user,
                followup_ids=[data["followup"].pk] if data["followup"] else (),
            )
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            messages.success(request, _("Change logged."))
            return redirect("followups:change-detail", pk=change.pk)
    raw = str(form["followup"].value() or "")
    followup = (
        FollowUp.objects.select_related("partner").filter(pk=raw).first() if raw.isdigit() else None
    )
    if raw and followup is None and request.method == "GET":
        raise Http404(_("No such follow-up."))
    return render(request, "followups/change_form.html", {"form": form, "followup": followup})


def _add_service_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            for item in errors:
                form.add_error(field if field in form.fields else None, item)
    else:
        form.add_error(None, error)


def _get_change(pk: int) -> Change:
    try:
        return selectors.change_detail(pk=pk)
    except Change.DoesNotExist as exc:
        raise Http404(_("No such change.")) from exc


@cs_required
def change_detail(request, pk: int):
    change = _get_change(pk)
    linked = list(selectors.change_linked_followups(change))
    for followup in linked:
        followup.notice = followup.change_notices[0] if followup.change_notices else None
    counts = selectors.change_notice_counts(change)
    return render(
        request,
        "followups/change_detail.html",
        {
            "change": change,
            "linked": linked,
            "notice_counts": counts,
            "notices_total": sum(counts.values()),
            "status_form": ChangeStatusForm(initial={"status": change.status}),
            "link_form": LinkFollowUpsForm(change=change),
            "is_shipped": change.status == Change.Status.SHIPPED,
        },
    )


def change_action(view):
    """POST only, CS only, the change must exist; refusals become error messages."""

    @cs_required
    @require_POST
    @functools.wraps(view)
    def wrapped(request, pk: int):
        change = Change.objects.filter(pk=pk).first()
        if change is None:
            raise Http404(_("No such change."))
        try:
            success = view(request, change)
        except ValidationError as exc:
            _report_errors(request, exc)
        else:
            messages.success(request, success)
        return redirect("followups:change-detail", pk=pk)

    return wrapped


@change_action
def change_status(request, change: Change) -> str:
    data = _valid(ChangeStatusForm(request.POST))
    change = services.change_update_status(
        change_id=change.pk, status=data["status"], by=request.user
    )
    return _("Status is now “%(status)s”.") % {"status": change.get_status_display()}


@change_action
def change_link(request, change: Change) -> str:
    data = _valid(LinkFollowUpsForm(request.POST, change=change))
    added = services.change_link_followups(
        change_id=change.pk, followup_ids=data["followup_ids"], by=request.user
    )
    if not added:
        return _("Those follow-ups were already linked.")
    return ngettext("Linked %(n)d follow-up.", "Linked %(n)d follow-ups.", added) % {"n": added}


@cs_required
def change_notify(request, pk: int):
    """GET: preview the email each recipient would get. POST: queue them."""
    change = _get_change(pk)
    if request.method == "POST":
        try:
            queued = services.change_notify_partners(change_id=pk, by=request.user)
        except ValidationError as exc:
            _report_errors(request, exc)
        else:
            messages.success(
                request,
                ngettext("Queued %(n)d email.", "Queued %(n)d emails.", queued) % {"n": queued},
            )
            blocked = sum(
                1
                for followup in services.notice_recipients(change)
                if not services.contact_can_be_told(followup.invitation.contact)
            )
            if blocked:
                messages.warning(
                    request,
                    ngettext(
                        "%(n)d contact opted out of email or bounced and was not emailed: tell "
                        "them another way, then close the loop on the follow-up.",
                        "%(n)d contacts opted out of email or bounced and were not emailed: tell "
                        "them another way, then close the loop on their follow-ups.",
                        blocked,
                    )
                    % {"n": blocked},
                )
        return redirect("followups:change-detail", pk=pk)
    if change.status != Change.Status.SHIPPED:
        messages.error(request, _("Ship the change before telling partners about it."))
        return redirect("followups:change-detail", pk=pk)
    previews = []
    recipients = services.notice_recipients(change)
    # The real email carries a fresh personal link, issued when it is sent; a GET issues none.
    sample_link = settings.SITE_URL + reverse("partner-pages:page", args=["x" * 32])
    for followup in recipients:
        notice = PartnerNotice(change=change, followup=followup)
        message = services.notice_message(notice, partner_page_url=sample_link)
        contact = followup.invitation.contact
        previews.append(
            {
                "followup": followup,
                "to": ", ".join(message.to),
                "from": message.from_email,
                "subject": message.subject,
                "body": message.body,
                "blocked": not services.contact_can_be_told(contact),
            }
        )
    return render(
        request,
        "followups/change_notify.html",
        {
            "change": change,
            "previews": previews,
            "sendable": sum(1 for p in previews if not p["blocked"]),
            "cancel_url": reverse("followups:change-detail", args=[pk]),
        },
    )


# --- Managers: loop KPIs and recovery -------------------------------------------------------


@manager_required
def kpis(request):
    """Loop KPIs overall, per owner and per program, and recovery per owner and per change."""
    from .kpis import kpis as compute
    from .kpis import kpis_by

    now = timezone.now()
    rows = selectors.kpi_rows()
    return render(
        request,
        "followups/kpis.html",
        {
            "overall": compute(rows, now=now),
            "by_owner": kpis_by(rows, "owner", now=now),
            "by_program": kpis_by(rows, "program", now=now),
            "recovery_by_owner": selectors.recovery_by_owner(),
            "recovery_by_change": selectors.recovery_by_change(),
        },
    )


# --- The partner's public page --------------------------------------------------------------


@link_rate_limit
def partner_page(request, token: str):
    """ "You told us, we did": the shipped changes linked to one partner's feedback. Reached by a
    secret link; reads only (a GET changes nothing); an unknown or expired link is a friendly
    404 page."""
    partner = services.partner_for_page_token(token)
    if partner is None:
        return render(request, "followups/public_unknown.html", status=404)
    response = render(
        request,
        "followups/public_changes.html",
        {"partner": partner, "changes": selectors.partner_shipped_changes(partner)},
    )
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response
