"""One page-number class for every list, and cursors for the two long, append-mostly streams
(responses and follow-up events) that integrators poll.

Strict on input, like every other parameter: ``page`` and ``page_size`` are whole numbers in
range or the answer is 400 with the field's message (DRF alone would quietly ignore a bad
``page_size`` and clamp a large one). A page past the end, or an unknown cursor, is 404."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from rest_framework import pagination
from rest_framework.exceptions import ValidationError

DIGITS = re.compile(r"[0-9]{1,9}")


def _whole_number(request, name: str, *, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise ValidationError(
            {name: [_("Give a whole number from 1 to %(max)d.") % {"max": maximum}]}
        )
    return int(raw)


def _size_parameter(schema_parameters: list[dict], name: str, maximum: int) -> list[dict]:
    for parameter in schema_parameters:
        if parameter.get("name") == name:
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": maximum}
    return schema_parameters


class StrictPageSize:
    page_size_query_param = "page_size"

    def get_page_size(self, request):
        size = _whole_number(request, self.page_size_query_param, maximum=self.max_page_size)
        return self.page_size if size is None else size


class PageNumberPagination(StrictPageSize, pagination.PageNumberPagination):
    page_size = 50
    max_page_size = 500
    last_page_strings = ()  # ``page=last`` is not a number: 400 like any other word

    def get_page_number(self, request, paginator):
        number = _whole_number(request, self.page_query_param, maximum=10**9)
        return 1 if number is None else number

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        _size_parameter(parameters, self.page_query_param, 10**9)
        return _size_parameter(parameters, self.page_size_query_param, self.max_page_size)


class _Cursor(StrictPageSize, pagination.CursorPagination):
    page_size = 100
    max_page_size = 1000

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        return _size_parameter(parameters, self.page_size_query_param, self.max_page_size)


class ResponseCursorPagination(_Cursor):
    """Newest first; the id breaks ties between responses submitted in the same instant."""

    ordering = ("-submitted_at", "-id")


class EventCursorPagination(_Cursor):
    """Oldest first, so a client can resume from its last cursor and see only new events."""

    ordering = ("created_at", "id")
