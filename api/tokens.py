"""API tokens: the one write that belongs to the API itself (an integration's credential).
Partner, contact and program writes are in ``surveys.services``; follow-up and change writes
in ``followups.services``; webhook subscriptions in ``webhooks.services``."""

from __future__ import annotations

from django.db import transaction
from rest_framework.authtoken.models import Token


@transaction.atomic
def token_issue(*, user) -> Token:
    """A new API token for ``user``, replacing (so revoking) any previous one."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def token_revoke(*, user_id: int) -> bool:
    """Revoke ``user_id``'s token; False if the user had none."""
    deleted, _rows = Token.objects.filter(user_id=user_id).delete()
    return bool(deleted)
