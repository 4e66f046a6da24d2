"""Creating, checking and revoking API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadwatch.auth.models import ApiToken

TOKEN_PREFIX = "lw_"


def token_digest(token: str) -> str:
    """What is stored of a secret token (API token, web session): its SHA-256, never itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(*, db_session: Session, name: str, now: datetime) -> tuple[ApiToken, str]:
    """Returns the stored row and the token itself, which is shown once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=token_digest(token), prefix=token[:10], created_at=now)
    db_session.add(row)
    db_session.flush()
    return row, token


def authenticate(*, db_session: Session, token: str, now: datetime) -> ApiToken | None:
    digest = token_digest(token)
    row = db_session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).one_or_none()
    # Comparing digests in constant time keeps timing from telling how close a guess was.
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        return None
    # Recorded to the minute: a write per request would put every read behind the writer.
    if row.last_used_at is None or now - row.last_used_at >= timedelta(minutes=1):
        row.last_used_at = now
    return row


def list_tokens(*, db_session: Session) -> list[ApiToken]:
    return list(db_session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(*, db_session: Session, token_id: int, now: datetime) -> bool:
    row = db_session.get(ApiToken, token_id)
    if row is None:
        return False
    row.revoked_at = row.revoked_at or now
    return True
