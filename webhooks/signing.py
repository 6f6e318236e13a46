"""Signatures of webhook deliveries.

Header ``X-NPS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``. The
timestamp is inside the signed text, so a receiver that rejects old timestamps also rejects
replays. ``verify`` is what a receiver in Python would run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-NPS-Signature"
EVENT_ID_HEADER = "X-NPS-Event-Id"
EVENT_HEADER = "X-NPS-Event"
DEFAULT_TOLERANCE = 300  # seconds


def new_secret() -> str:
    """256 random bits, URL-safe, with a prefix that makes a leaked secret easy to grep for."""
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` and its timestamp is recent."""
    parts = dict(item.split("=", 1) for item in (header or "").split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp)
    return hmac.compare_digest(expected, parts.get("v1", ""))
