"""``?ordering=`` is strict: the fields each list names, comma-separated, ``-`` for descending;
anything else is a 400 that names the allowed fields (DRF alone quietly ignores an unknown
field). The schema lists the same values."""

import datetime as dt

import pytest
from django.utils import timezone

from tests.api.conftest import error
from tests.factories import PartnerFactory

pytestmark = pytest.mark.django_db

# Every list with ?ordering=, and the fields it orders by, as the 400 names them.
ORDERED_LISTS = {
    "/api/v1/partners/": "name, created_at or updated_at",
    "/api/v1/contacts/": "name, email, created_at or updated_at",
    "/api/v1/programs/": "name or created_at",
    "/api/v1/waves/": "opens_at or period_start",
    "/api/v1/invitations/": "created_at or sent_at",
    "/api/v1/followups/": "due_at, created_at, updated_at or priority",
    "/api/v1/changes/": "created_at, shipped_at or title",
    "/api/v1/webhooks/subscriptions/": None,  # one field: created_at
    "/api/v1/webhooks/deliveries/": None,
    "/api/v1/tokens/": None,  # one field: created
}
SEVERAL = "separated by commas; put - before a field for descending order."


def allowed(path: str) -> str:
    if ORDERED_LISTS[path] is None:
        field = "created" if path == "/api/v1/tokens/" else "created_at"
        return f"Order by {field}, or -{field} for descending order."
    return f"Order by {ORDERED_LISTS[path]}, {SEVERAL}"


@pytest.mark.parametrize("path", ORDERED_LISTS)
def test_an_unknown_ordering_field_is_400_naming_the_allowed_ones(api, admin_user, path):
    answer = api(admin_user).get(path, {"ordering": "nope"})
    assert answer.status_code == 400
    message = f'Cannot order by "nope". {allowed(path)}'
    assert error(answer) == {
        "code": "invalid",
        "message": f"ordering: {message}",
        "fields": {"ordering": [message]},
    }


def test_partners_say_exactly_which_terms_are_unknown(api, admin_user):
    answer = api(admin_user).get("/api/v1/partners/", {"ordering": "name,-tier,secret,"})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "ordering": [
            'Cannot order by "-tier", "secret", "". Order by name, created_at or updated_at, '
            "separated by commas; put - before a field for descending order."
        ]
    }


@pytest.mark.parametrize(
    "value", ["Name", "name desc", "+name", "--name", "-", "name__icontains", "account_owner"]
)
def test_near_misses_are_refused_too(api, admin_user, value):
    answer = api(admin_user).get("/api/v1/partners/", {"ordering": value})
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "ordering": [f'Cannot order by "{value.strip()}". {allowed("/api/v1/partners/")}']
    }


def test_an_empty_ordering_is_400(api, admin_user):
    answer = api(admin_user).get("/api/v1/changes/?ordering=")
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "ordering": [f"Give a value, or leave the parameter out. {allowed('/api/v1/changes/')}"]
    }


def test_ordering_given_twice_is_400(api, admin_user):
    answer = api(admin_user).get("/api/v1/partners/?ordering=name&ordering=-created_at")
    assert answer.status_code == 400
    assert error(answer)["fields"] == {
        "ordering": [
            "Give ordering once, with its fields separated by commas. "
            + allowed("/api/v1/partners/")
        ]
    }


def test_known_fields_order_the_list_and_combine(api, admin_user):
    now = timezone.now()
    for name, days_ago in (("Bolt", 3), ("Acme", 1), ("Cobalt", 2), ("Acme Two", 2)):
        partner = PartnerFactory(name=name)
        partner.created_at = now - dt.timedelta(days=days_ago)
        partner.save(update_fields=["created_at"])
    client = api(admin_user)

    def names(ordering: str) -> list[str]:
        answer = client.get("/api/v1/partners/", {"ordering": ordering})
        assert answer.status_code == 200, answer.json()
        return [p["name"] for p in answer.json()["results"]]

    assert names("-name") == ["Cobalt", "Bolt", "Acme Two", "Acme"]
    assert names("created_at,name") == ["Bolt", "Acme Two", "Cobalt", "Acme"]
    assert names(" -created_at , name ") == ["Acme", "Acme Two", "Cobalt", "Bolt"]


def test_lists_without_ordering_keep_their_own_order(api, admin_user):
    """Responses and timeline events are cursor lists in a fixed order: no ordering there."""
    schema = api(admin_user).get("/api/schema/?format=json").json()
    for path in ("/api/v1/responses/", "/api/v1/followup-events/"):
        names = [p["name"] for p in schema["paths"][path]["get"]["parameters"]]
        assert "ordering" not in names


def test_the_schema_lists_the_allowed_values_and_documents_the_400(api, admin_user):
    schema = api(admin_user).get("/api/schema/?format=json").json()
    ordered = {}
    for path, item in schema["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            if parameter["name"] == "ordering":
                ordered[path] = parameter
    assert set(ordered) == set(ORDERED_LISTS)
    assert ordered["/api/v1/programs/"] == {
        "name": "ordering",
        "required": False,
        "in": "query",
        "description": f"{allowed('/api/v1/programs/')} Any other value is 400.",
        "schema": {
            "type": "array",
            "items": {"type": "string", "enum": ["name", "-name", "created_at", "-created_at"]},
            "minItems": 1,
        },
        "style": "form",
        "explode": False,
    }
    bad = schema["paths"]["/api/v1/programs/"]["get"]["responses"]["400"]
    example = bad["content"]["application/json"]["examples"]["UnknownOrdering"]["value"]
    answer = api(admin_user).get("/api/v1/programs/", {"ordering": "nope"})
    assert answer.json() == example
    assert "ordering" in bad["description"]
