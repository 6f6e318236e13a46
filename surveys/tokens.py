"""Survey-link tokens: 192 random bits, URL-safe, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 24  # 192 bits; 32 URL-safe characters
TOKEN_LENGTH = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: str) -> bool:
    """Cheap shape check before a database look-up: length and alphabet of ``new_token()``."""
    return len(token) == TOKEN_LENGTH and all(c.isalnum() or c in "-_" for c in token)
