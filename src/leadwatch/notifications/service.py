"""Reading and managing delivery: the outbox, dead letters, attempts, the in-app inbox, SMS
delivery receipts. Keyword-only functions that take the session and never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from leadwatch.config import Settings
from leadwatch.notifications.models import DeliveryAttempt, InboxItem, OutboxMessage
from leadwatch.notifications.templates import TemplateSet

STATUSES = ("pending", "sending", "retry", "sent", "dead", "folded")


class MessageNotFoundError(LookupError):
    pass


def list_messages(
    *,
    db_session: Session,
    status: str | None = None,
    channel: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc())
    if status:
        query = query.where(OutboxMessage.status == status)
    if channel:
        query = query.where(OutboxMessage.channel == channel)
    return list(db_session.scalars(query.limit(limit).offset(offset)))


def counts_by_status(*, db_session: Session) -> dict[str, int]:
    rows = db_session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ).all()
    return {str(status): int(n) for status, n in rows}


def get_message(*, db_session: Session, message_id: int) -> OutboxMessage:
    message = db_session.get(OutboxMessage, message_id)
    if message is None:
        raise MessageNotFoundError(f"no outbox message {message_id}")
    return message


def attempts(*, db_session: Session, message_id: int) -> list[DeliveryAttempt]:
    query = (
        select(DeliveryAttempt)
        .where(DeliveryAttempt.message_id == message_id)
        .order_by(DeliveryAttempt.at, DeliveryAttempt.id)
    )
    return list(db_session.scalars(query))


def resend(
    *, db_session: Session, message_ids: list[int] | None, now: datetime, max_age_hours: float
) -> int:
    """Put dead letters back in the queue (all of them when ``message_ids`` is None), with a
    fresh expiry; they keep their idempotency key."""
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.status == "dead")
        .values(
            status="pending",
            next_attempt_at=now,
            expires_at=now + timedelta(hours=max_age_hours),
            dead_at=None,
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    if message_ids is not None:
        statement = statement.where(OutboxMessage.id.in_(message_ids))
    result = db_session.execute(statement)
    return int(getattr(result, "rowcount", 0))


# ---- in-app inbox -----------------------------------------------------------------------------


def inbox(
    *, db_session: Session, person: str, unread_only: bool = False, limit: int = 50
) -> tuple[list[InboxItem], int]:
    """A person's notifications, newest first, and how many are unread."""
    query = select(InboxItem).where(InboxItem.person == person)
    if unread_only:
        query = query.where(InboxItem.read_at.is_(None))
    items = list(db_session.scalars(query.order_by(InboxItem.id.desc()).limit(limit)))
    unread = db_session.scalar(
        select(func.count()).where(InboxItem.person == person, InboxItem.read_at.is_(None))
    )
    return items, int(unread or 0)


def mark_read(
    *, db_session: Session, person: str, item_ids: list[int] | None, now: datetime
) -> int:
    statement = (
        update(InboxItem)
        .where(InboxItem.person == person, InboxItem.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    if item_ids is not None:
        statement = statement.where(InboxItem.id.in_(item_ids))
    return int(getattr(db_session.execute(statement), "rowcount", 0))


# ---- SMS receipts ----------------------------------------------------------------------------

FAILED_SMS = ("failed", "undelivered")


def record_sms_receipt(
    *, db_session: Session, receipt: dict[str, Any], now: datetime
) -> tuple[OutboxMessage | None, bool]:
    """Twilio's status callback: the carrier's word on a message we handed over. A failed or
    undelivered one becomes a dead letter; the second value says it just did (the caller then
    runs the fallback)."""
    message = db_session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.channel == "sms", OutboxMessage.provider_id == receipt["sid"]
        )
    ).first()
    if message is None:
        return None, False
    message.delivery_status = str(receipt["status"])[:20]
    db_session.add(
        DeliveryAttempt(
            message_id=message.id,
            at=now,
            channel=message.channel,
            recipient=message.recipient,
            outcome="receipt",
            code=str(receipt.get("error_code") or "") or None,
            detail=f"delivery receipt: {receipt['status']}",
            latency_ms=0.0,
            worker="twilio-callback",
        )
    )
    if receipt["status"] in FAILED_SMS and message.status == "sent":
        message.status = "dead"
        message.dead_at = now
        message.last_error = f"carrier reported {receipt['status']} ({receipt.get('error_code')})"
        return message, True
    return message, False


SECRET_ADDRESSES = ("slack", "webhook")  # their URLs carry the credential


def mask_address(channel: str, address: str) -> str:
    if channel not in SECRET_ADDRESSES:
        return address
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


def channel_status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Which channels can send, with their settings; secrets are masked."""

    def secret(value: Any) -> str | None:
        return "********" if value else None

    return {
        "email": {
            "configured": bool(settings.smtp_host),
            "host": settings.smtp_host,
            "port": settings.smtp_port,
            "security": settings.smtp_security,
            "username": settings.smtp_username,
            "password": secret(settings.smtp_password),
            "from": settings.smtp_from,
        },
        "sms": {
            "configured": bool(
                settings.twilio_account_sid
                and settings.twilio_auth_token
                and settings.twilio_from_number
            ),
            "account_sid": settings.twilio_account_sid,
            "auth_token": secret(settings.twilio_auth_token),
            "from_number": settings.twilio_from_number,
            "base_url": settings.twilio_base_url,
        },
        "slack": {"configured": True, "addresses": "per person (incoming-webhook URL)"},
        "webhook": {
            "configured": True,
            "signing_secret": "********",
            "secret_source": "LEADWATCH_WEBHOOK_SIGNING_SECRET"
            if settings.webhook_signing_secret is not None
            else "derived from the installation key",
            "allow_private_urls": settings.allow_private_urls,
            "allow_http_urls": settings.allow_http_urls,
        },
        "in_app": {"configured": True},
    }


def templates_in_force(*, db_session: Session, settings: Settings) -> TemplateSet:
    """The templates messages are worded with now: those saved in the settings in force, over
    the files in LEADWATCH_HOME/templates, over the shipped defaults."""
    from leadwatch.escalations import settings as settings_service

    overrides = settings_service.load(db_session=db_session).document.templates
    return TemplateSet(settings.home / "templates", overrides)
