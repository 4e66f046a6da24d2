"""Claim links: signed, expiring and single-use.

A link carries ``escalation id . person . expiry . nonce`` and an HMAC-SHA256 of them under
the installation's secret key, so it cannot be forged or edited; the expiry is checked on
use; the nonce is recorded when the link is used (`ClaimUse`), so it works once. Tokens are
URL-safe and hold no personal data beyond the directory key of the person it was sent to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime


class ClaimLinkError(ValueError):
    """The link is malformed, forged or expired; the message says which."""


@dataclass(frozen=True, slots=True)
class ClaimTicket:
    escalation_id: int
    person: str
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, b"claim:" + payload.encode(), hashlib.sha256).digest()
    return _b64(digest)


def make_token(
    secret: bytes, *, escalation_id: int, person: str, expires_at: datetime, nonce: str = ""
) -> str:
    nonce = nonce or secrets.token_hex(16)
    fields = [str(escalation_id), _b64(person.encode()), str(int(expires_at.timestamp())), nonce]
    payload = ".".join(fields)
    return f"{payload}.{_sign(secret, payload)}"


def read_token(secret: bytes, token: str, *, now: datetime) -> ClaimTicket:
    parts = token.strip().split(".")
    if len(parts) != 5:
        raise ClaimLinkError("this claim link is incomplete; open the link from the message")
    payload, signature = ".".join(parts[:4]), parts[4]
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise ClaimLinkError("this claim link is not valid (altered or from another install)")
    try:
        escalation_id = int(parts[0])
        person = _unb64(parts[1]).decode()
        expires_at = datetime.fromtimestamp(int(parts[2]), UTC)
    except (ValueError, UnicodeDecodeError):
        raise ClaimLinkError("this claim link is malformed") from None
    if now >= expires_at:
        raise ClaimLinkError(
            f"this claim link expired at {expires_at.isoformat(timespec='minutes')}; "
            "claim the lead in LeadWatch instead"
        )
    return ClaimTicket(escalation_id, person, expires_at, parts[3])
