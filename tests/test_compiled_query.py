"""``nps_project.compiled.CompiledQuery``: the survey link's lookup, compiled once, gives what
the plain queryset gives, field by field, with the same related objects cached."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nps_project.compiled import CompiledQuery
from surveys.models import Invitation, InvitationToken
from surveys.services import invitation_for_token, token_issue
from surveys.tokens import hash_token
from tests.factories import InvitationFactory, ProgramFactory, ResponseFactory, WaveFactory

pytestmark = pytest.mark.django_db

RELATED = ["wave", "wave.program", "contact", "contact.partner"]


def _plain(token: str) -> Invitation:
    return (
        Invitation.objects.select_related("wave__program", "contact__partner", "response")
        .filter(tokens__token_hash=hash_token(token))
        .get()
    )


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _walk(instance, path: str):
    for name in path.split("."):
        instance = getattr(instance, name)
    return instance


def _assert_same(compiled: Invitation, plain: Invitation) -> None:
    assert type(compiled) is Invitation
    assert _fields(compiled) == _fields(plain)
    for path in RELATED:
        assert _fields(_walk(compiled, path)) == _fields(_walk(plain, path)), path


def test_the_compiled_lookup_loads_what_the_queryset_loads_and_queries_once():
    program = ProgramFactory(
        extra_questions=[{"key": "support", "label": "Support?", "type": "text"}],
        time_zone="Europe/Berlin",
    )
    invitation = InvitationFactory(wave=WaveFactory(program=program))
    token = token_issue(invitation=invitation)

    with CaptureQueriesContext(connection) as queries:
        found = invitation_for_token(token)
        # Everything the form reads is loaded: no query for a related object or the
        # (missing) response.
        assert found.wave.program.extra_questions[0]["key"] == "support"
        assert found.contact.partner.name
        assert not hasattr(found, "response")
    assert len(queries) == 1
    _assert_same(found, _plain(token))
    assert isinstance(found.wave.opens_at, dt.datetime) and found.wave.opens_at.tzinfo


def test_the_compiled_lookup_caches_the_answer_when_there_is_one():
    response = ResponseFactory(score=3, comment="Slow support", answers={"support": "slow"})
    token = token_issue(invitation=response.invitation)

    with CaptureQueriesContext(connection) as queries:
        found = invitation_for_token(token)
        assert found.response.pk == response.pk
        assert found.response.answers == {"support": "slow"}
    assert len(queries) == 1
    plain = _plain(token)
    assert _fields(found.response) == _fields(plain.response)
    _assert_same(found, plain)


def test_an_unknown_hash_finds_nothing():
    InvitationFactory()
    assert invitation_for_token("A" * 32) is None


def test_the_parameter_may_appear_only_once():
    query = CompiledQuery(
        lambda value: InvitationToken.objects.filter(token_hash=value, invitation__status=value)
    )
    with pytest.raises(ValueError, match="exactly once"):
        query.first("x")


def test_annotated_querysets_are_refused():
    from django.db.models import Value

    query = CompiledQuery(
        lambda value: InvitationToken.objects.filter(token_hash=value).annotate(one=Value(1))
    )
    with pytest.raises(ValueError, match="plain select_related"):
        query.first("x")
