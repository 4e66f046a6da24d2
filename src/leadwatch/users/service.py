"""Users, passwords (argon2), sessions and the sign-in rate limit. Keyword-only functions that
take the session and never commit."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from leadwatch.auth.service import token_digest
from leadwatch.users.models import ROLES, FailedLogin, User, WebSession

SESSION_DAYS = 7
MAX_FAILURES = 5  # per address or per client in FAILURE_WINDOW
FAILURE_WINDOW = timedelta(minutes=15)
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verifying against this when the address is unknown takes as long as a real check, so
# timing does not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


class TooManyAttemptsError(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after // 60 + 1} min")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # for the cookie; never stored
    csrf_token: str


def create_user(
    *,
    db_session: Session,
    email: str,
    password: str,
    role: str,
    name: str | None = None,
    dealership_id: int | None = None,
    person_key: str | None = None,
    now: datetime,
) -> User:
    address = email.strip().lower()
    if "@" not in address or " " in address or len(address) > 320:
        raise UserError(f"{email!r} is not an email address")
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use {', '.join(ROLES)}")
    password_hash = hash_password(password)  # refuses a short one before anything else
    if db_session.scalars(select(User.id).where(User.email == address)).first() is not None:
        raise UserError(f"a user {address} already exists")
    user = User(
        email=address,
        name=(name or address.split("@")[0]).strip()[:200],
        role=role,
        dealership_id=dealership_id,
        person_key=person_key,
        password_hash=password_hash,
        created_at=now,
    )
    db_session.add(user)
    db_session.flush()
    return user


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def sign_in(
    *, db_session: Session, email: str, password: str, client: str, now: datetime
) -> SignedIn | None:
    """A new session for the right password; None for a wrong one (recorded). Raises
    TooManyAttemptsError once an address or a client has failed too often lately."""
    address = email.strip().lower()[:320]
    since = now - FAILURE_WINDOW
    failures = db_session.scalars(
        select(FailedLogin.at)
        .where(
            FailedLogin.at >= since, or_(FailedLogin.email == address, FailedLogin.client == client)
        )
        .order_by(FailedLogin.at)
    ).all()
    if len(failures) >= MAX_FAILURES:
        wait = failures[-MAX_FAILURES] + FAILURE_WINDOW - now
        raise TooManyAttemptsError(max(1, int(wait.total_seconds())))
    user = db_session.scalars(select(User).where(User.email == address)).one_or_none()
    if user is None or user.disabled_at is not None:
        _check(_DUMMY_HASH, password)
        db_session.add(FailedLogin(email=address, client=client[:64], at=now))
        return None
    if not _check(user.password_hash, password):
        db_session.add(FailedLogin(email=address, client=client[:64], at=now))
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db_session.add(
        WebSession(
            token_hash=token_digest(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(days=SESSION_DAYS),
        )
    )
    db_session.execute(delete(WebSession).where(WebSession.expires_at < now))
    return SignedIn(user, token, csrf)


def _check(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def session_user(*, db_session: Session, token: str, now: datetime) -> tuple[User, str] | None:
    """The signed-in user and the session's CSRF token, or None."""
    row = db_session.execute(
        select(User, WebSession.csrf_token)
        .join(WebSession, WebSession.user_id == User.id)
        .where(WebSession.token_hash == token_digest(token), WebSession.expires_at > now)
    ).first()
    if row is None or row[0].disabled_at is not None:
        return None
    return row[0], str(row[1])


def sign_out(*, db_session: Session, token: str) -> None:
    db_session.execute(delete(WebSession).where(WebSession.token_hash == token_digest(token)))


def list_users(*, db_session: Session) -> list[User]:
    return list(db_session.scalars(select(User).order_by(User.email)))


def count_users(*, db_session: Session) -> int:
    return int(db_session.scalar(select(func.count()).select_from(User)) or 0)
