"""One page-number class for every list, and cursors for the two long, append-mostly streams
(responses and follow-up events) that integrators poll."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class ResponseCursorPagination(pagination.CursorPagination):
    """Newest first; the id breaks ties between responses submitted in the same instant."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = ("-submitted_at", "-id")


class EventCursorPagination(pagination.CursorPagination):
    """Oldest first, so a client can resume from its last cursor and see only new events."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = ("created_at", "id")
