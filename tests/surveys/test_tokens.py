"""Survey-link tokens: random, stored only as a hash, looked up without side effects."""

import base64
import hashlib
import re

import pytest

from surveys.models import Invitation, InvitationToken
from surveys.services import invitation_for_token, token_issue
from surveys.tokens import TOKEN_LENGTH, hash_token, looks_like_token, new_token
from tests.factories import InvitationFactory

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


# --- Pure token handling ---------------------------------------------------------------------


def test_a_token_carries_192_random_bits_in_32_url_safe_characters():
    token = new_token()
    assert len(token) == TOKEN_LENGTH == 32
    assert URL_SAFE.match(token)
    assert len(base64.urlsafe_b64decode(token)) * 8 == 192


def test_tokens_do_not_repeat():
    assert len({new_token() for _ in range(2000)}) == 2000


def test_the_hash_is_the_hex_sha256_of_the_token():
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(hash_token(new_token())) == 64


@pytest.mark.parametrize(
    "token",
    ["", "short", "a" * 31, "a" * 33, "a" * 31 + "/", "a" * 31 + "=", "a" * 31 + " ", "../" * 11],
)
def test_a_malformed_token_does_not_look_like_one(token):
    assert not looks_like_token(token)


def test_a_fresh_token_looks_like_one():
    assert looks_like_token(new_token())


# --- Storage and look-up ---------------------------------------------------------------------


@pytest.mark.django_db
def test_only_the_hash_of_an_issued_token_is_stored():
    invitation = InvitationFactory()
    token = token_issue(invitation=invitation)

    stored = InvitationToken.objects.get()
    assert stored.invitation == invitation
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert not InvitationToken.objects.filter(token_hash=token).exists()


@pytest.mark.django_db
def test_the_invitation_is_found_by_its_token(django_assert_num_queries):
    invitation = InvitationFactory()
    token = token_issue(invitation=invitation)
    with django_assert_num_queries(1):  # one join: token, invitation, wave, program, contact
        found = invitation_for_token(token)
    assert found == invitation
    # Related rows came with it: reading them costs no more queries.
    with django_assert_num_queries(0):
        assert found.wave.program.name
        assert found.contact.partner.name


@pytest.mark.django_db
def test_looking_up_a_token_changes_nothing():
    invitation = InvitationFactory()
    token = token_issue(invitation=invitation)
    before = Invitation.objects.values().get()
    invitation_for_token(token)
    invitation_for_token(token)
    assert Invitation.objects.values().get() == before
    assert InvitationToken.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["", "nope", "a" * 31 + "!", "é" * 32, None, 12345])
def test_a_malformed_token_finds_nothing_without_a_query(token, django_assert_num_queries):
    InvitationFactory()
    with django_assert_num_queries(0):
        assert invitation_for_token(token) is None


@pytest.mark.django_db
def test_an_unknown_well_formed_token_finds_nothing():
    token_issue(invitation=InvitationFactory())
    assert invitation_for_token(new_token()) is None


@pytest.mark.django_db
def test_the_hash_itself_is_not_a_working_token():
    invitation = InvitationFactory()
    token_issue(invitation=invitation)
    stored_hash = InvitationToken.objects.get().token_hash
    assert invitation_for_token(stored_hash) is None
    assert invitation_for_token(stored_hash[:32]) is None


@pytest.mark.django_db
def test_every_token_of_an_invitation_opens_it():
    invitation = InvitationFactory()
    first = token_issue(invitation=invitation)  # the invitation email
    second = token_issue(invitation=invitation)  # a reminder carries a new one

    assert first != second
    assert invitation_for_token(first) == invitation
    assert invitation_for_token(second) == invitation
    assert invitation.tokens.count() == 2


@pytest.mark.django_db
def test_a_token_opens_only_its_own_invitation():
    mine, theirs = InvitationFactory(), InvitationFactory()
    token = token_issue(invitation=mine)
    token_issue(invitation=theirs)
    assert invitation_for_token(token) == mine
