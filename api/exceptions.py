"""Every API error has one shape:

    {"error": {"code": "invalid", "message": "…", "fields": {"score": ["…"]}}}

``code`` is a stable machine word (``invalid``, ``not_authenticated``, ``permission_denied``,
``not_found``, ``method_not_allowed``, ``conflict``, ``throttled``, ``server_error`` …),
``message`` a sentence for people, ``fields`` the messages per input field (empty when the error
is not about a field). Django's ``ValidationError`` and ``PermissionDenied`` raised by the
services become 400 and 403; ``StaleFollowUpError`` becomes 409; anything unexpected is logged
and answered with a 500 in the same shape, never a stack trace.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ObjectDoesNotExist, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from followups.services import StaleFollowUpError

logger = logging.getLogger(__name__)

NON_FIELD = "non_field_errors"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The object changed since you read it."


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _django_validation_to_drf(exc: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(exc, "error_dict"):
        detail = {
            (NON_FIELD if field == "__all__" else field): [str(m) for m in messages]
            for field, messages in exc.message_dict.items()
        }
    else:
        detail = [str(m) for m in exc.messages]
    return exceptions.ValidationError(detail)


def _flatten(value) -> list[str]:
    if isinstance(value, dict):
        out = []
        for key, inner in value.items():
            out += [f"{key}: {m}" for m in _flatten(inner)]
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            # A list of dicts is per-row errors (bulk input): name the row, counting from 0.
            prefix = f"[{index}] " if isinstance(item, dict) else ""
            out += [prefix + m for m in _flatten(item)]
        return out
    return [str(value)]


def _validation_body(detail) -> dict:
    if isinstance(detail, dict):
        fields = {key: value for key, value in detail.items() if key != NON_FIELD}
        general = _flatten(detail.get(NON_FIELD, []))
        if general:
            message = " ".join(general)
        elif len(fields) == 1:
            key, value = next(iter(fields.items()))
            message = f"{key}: {_flatten(value)[0]}" if _flatten(value) else _("Invalid input.")
        else:
            message = _("Some fields are invalid: %(names)s.") % {"names": ", ".join(fields)}
        if general:
            fields = {**fields, NON_FIELD: general} if fields else {}
        return error_body("invalid", message, _plain(fields))
    return error_body("invalid", " ".join(_flatten(detail)) or _("Invalid input."))


def _plain(value):
    """ErrorDetail strings -> str, recursively, so the JSON is plain."""
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = _django_validation_to_drf(exc)
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        exc = exceptions.NotFound(_("Not found."))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, StaleFollowUpError):
        exc = Conflict(str(exc))
    elif isinstance(exc, SuspiciousOperation):  # e.g. too many form fields in one request
        exc = exceptions.ParseError(str(exc))

    if not isinstance(exc, exceptions.APIException):
        view = context.get("view")
        logger.exception("Unhandled error in API view %s", type(view).__name__)
        set_rollback()
        return Response(
            error_body("server_error", _("Something went wrong on our side. It was logged.")),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = f"{int(exc.wait)}"
    if isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc.detail)
    else:
        code = exc.detail.code if hasattr(exc.detail, "code") else exc.default_code
        body = error_body(str(code or exc.default_code), str(exc.detail))
    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)
