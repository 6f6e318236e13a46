"""drf-spectacular post-processing: document the error answers of every operation.

Every operation may answer 401, 403 and 429; operations on one object, and lists (a page out of
range or a bad cursor), also 404; operations
that take input or filters also 400 (lists with ``ordering``: with an example of an unknown
ordering field). All in the one error shape of ``api.exceptions``.
"""

from __future__ import annotations

from .filters import unknown_ordering_message

ERROR_COMPONENT = {
    "type": "object",
    "description": "Every API error.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "A stable word: invalid, not_authenticated, "
                    "authentication_failed, permission_denied, not_found, method_not_allowed, "
                    "conflict, throttled, parse_error, unsupported_media_type, server_error.",
                },
                "message": {"type": "string", "description": "A sentence for people."},
                "fields": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Messages per input field (lists of text; per-row objects "
                    "for bulk input); empty when the error is not about a field.",
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

# The 400 of a list with ?ordering=: besides its filters and page, the ordering is checked.
ORDERING_400 = (
    "An invalid filter, page or `ordering`: the fields say which and why. An `ordering` field "
    "that is not in the parameter's list is refused, and the message names the allowed ones."
)

DESCRIPTIONS = {
    "400": "Invalid input or filter: the fields say which and why.",
    "401": "No credentials, or an unknown token.",
    "403": "Authenticated, but the role does not allow this.",
    "404": "No such object (or, on a list, no such page or cursor).",
    "405": "Method not allowed.",
    "409": "The object changed since it was read (stale version).",
    "415": "Send JSON.",
    "429": "Too many requests: wait for Retry-After seconds.",
}


def _answer(code: str) -> dict:
    return {
        "description": DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    for path, item in result.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = op.setdefault("responses", {})
            codes = ["401", "403", "429"]
            if "{" in path or method == "get":  # lists: an out-of-range page or bad cursor
                codes.append("404")
            if method in ("post", "put", "patch") or op.get("parameters"):
                codes.append("400")
            if method in ("post", "put", "patch"):
                codes.append("415")
            for code in codes:
                existing = responses.get(code)
                if existing is None or "content" not in existing:
                    description = (existing or {}).get("description") or DESCRIPTIONS[code]
                    responses[code] = {**_answer(code), "description": description}
            ordering = _ordering_parameter(op)
            if ordering:
                responses["400"]["description"] = ORDERING_400
                responses["400"]["content"]["application/json"]["examples"] = {
                    "UnknownOrdering": {
                        "summary": "An unknown ordering field",
                        "value": _unknown_ordering_example(ordering),
                    }
                }
    return result


def _ordering_parameter(op: dict) -> dict | None:
    for parameter in op.get("parameters", []):
        if parameter.get("name") == "ordering" and parameter.get("in") == "query":
            return parameter
    return None


def _unknown_ordering_example(parameter: dict) -> dict:
    """The answer to ``?ordering=nope``, as ``api.filters.OrderingFilter`` gives it."""
    fields = [term for term in parameter["schema"]["items"]["enum"] if term[0] != "-"]
    message = unknown_ordering_message(["nope"], fields)
    return {
        "error": {
            "code": "invalid",
            "message": f"ordering: {message}",
            "fields": {"ordering": [message]},
        }
    }
