"""Channel credentials saved on the settings page: SMTP and Twilio settings that override the
environment's (LEADWATCH_SMTP_*, LEADWATCH_TWILIO_*), so an admin can connect a channel
without a restart.

Secrets (the SMTP password, the Twilio auth token) are encrypted at rest with Fernet, under a
key derived from the installation key (LEADWATCH_SECRET_KEY or the key file in
LEADWATCH_HOME), and are never shown again or written to the history: pages show ********.
Workers see a change within seconds (`CredentialSource`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.notifications.models import ChannelCredentials
from leadwatch.prediction.artifacts import installation_key

# Per channel: the Settings fields it may set, and which of them are secret.
FIELDS: dict[str, dict[str, bool]] = {
    "email": {
        "smtp_host": False,
        "smtp_port": False,
        "smtp_security": False,
        "smtp_username": False,
        "smtp_password": True,
        "smtp_from": False,
    },
    "sms": {"twilio_account_sid": False, "twilio_auth_token": True, "twilio_from_number": False},
}


class CredentialsError(ValueError):
    """Refused input, said with the field and how to fix it."""


def _fernet(settings: Settings) -> Fernet:
    key = installation_key(settings.home, settings.secret_key_value)
    derived = hmac.new(key, b"channel-credentials", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def save(
    *,
    db_session: Session,
    settings: Settings,
    channel: str,
    values: Mapping[str, str],
    author: str,
    now: datetime,
) -> list[str]:
    """Store ``channel``'s fields (an empty secret keeps the stored one; an empty plain value
    falls back to the environment). Returns what changed, in words without any secret."""
    fields = FIELDS.get(channel)
    if fields is None:
        raise CredentialsError(f"{channel!r} has no credentials to set (email or sms)")
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise CredentialsError(f"{channel}: unknown fields {', '.join(unknown)}")
    row = db_session.get(ChannelCredentials, channel)
    plain = dict(row.values) if row else {}
    secret = _open(settings, row.secrets) if row and row.secrets else {}
    changes: list[str] = []
    for name, is_secret in fields.items():
        value = values.get(name, "").strip()
        if is_secret:
            if value and value != secret.get(name):
                secret[name] = value
                changes.append(f"channels.{channel}.{name}: changed")
            continue
        old = plain.get(name)
        if (value or None) != old:
            changes.append(
                f"channels.{channel}.{name}: {old or '(environment)'} -> {value or '(environment)'}"
            )
            if value:
                plain[name] = value
            else:
                plain.pop(name, None)
    effective(settings, plain | secret)  # refuses a bad port or security mode, saves nothing
    if row is None:
        row = ChannelCredentials(channel=channel)
        db_session.add(row)
    row.values = plain
    row.secrets = (
        _fernet(settings).encrypt(json.dumps(secret).encode()).decode() if secret else None
    )
    row.updated_by, row.updated_at = author, now
    db_session.flush()
    return changes


def clear(*, db_session: Session, channel: str) -> bool:
    """Forget what was saved for ``channel``: the environment's settings apply again."""
    row = db_session.get(ChannelCredentials, channel)
    if row is None:
        return False
    db_session.delete(row)
    db_session.flush()
    return True


def stored(*, db_session: Session, settings: Settings) -> dict[str, Any]:
    """Every saved field, secrets decrypted, for building channels (never for showing)."""
    out: dict[str, Any] = {}
    for row in db_session.scalars(select(ChannelCredentials)):
        out.update(row.values)
        if row.secrets:
            out.update(_open(settings, row.secrets))
    return out


def saved_fields(*, db_session: Session) -> dict[str, list[str]]:
    """Channel -> the fields saved on the page (secrets included, by name only)."""
    out: dict[str, list[str]] = {}
    for row in db_session.scalars(select(ChannelCredentials)):
        out[row.channel] = sorted(row.values) + (["(a secret)"] if row.secrets else [])
    return out


def effective(settings: Settings, saved: Mapping[str, Any]) -> Settings:
    """The settings with the saved fields over the environment's, validated."""
    update: dict[str, Any] = {}
    for name, value in saved.items():
        if name in ("smtp_password", "twilio_auth_token"):
            update[name] = SecretStr(str(value))
        else:
            update[name] = value
    try:
        return Settings.model_validate(settings.model_dump() | update)
    except ValueError as exc:
        raise CredentialsError(_first_problem(exc)) from None


def _first_problem(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


def _open(settings: Settings, token: str) -> dict[str, str]:
    try:
        data: dict[str, str] = json.loads(_fernet(settings).decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsError(
            "the saved channel secrets cannot be read with this installation's key "
            '(LEADWATCH_SECRET_KEY changed?): on the settings page, press "Use the '
            "environment's\" for that channel, then save them again"
        ) from None
    return data


class CredentialSource:
    """The effective settings for building channels, re-read when a save changes them
    (checked at most every ``every`` seconds: one small query)."""

    def __init__(
        self, settings: Settings, session_factory: sessionmaker[Session], *, every: float = 5.0
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.every = every
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._stamp: object = None

    def changed(self) -> Settings | None:
        """New effective settings when the saved credentials changed since the last call
        (and on the first call), else None."""
        with self._lock:
            if time.monotonic() - self._checked < self.every:
                return None
            self._checked = time.monotonic()
            with self.session_factory() as db_session:
                stamp = db_session.execute(
                    select(func.count(), func.max(ChannelCredentials.updated_at))
                ).one()
                if tuple(stamp) == self._stamp:
                    return None
                self._stamp = tuple(stamp)
                return effective(
                    self.settings, stored(db_session=db_session, settings=self.settings)
                )


def in_force(*, db_session: Session, settings: Settings) -> Settings:
    """The settings channels are built from now: the saved credentials over the environment."""
    return effective(settings, stored(db_session=db_session, settings=settings))
