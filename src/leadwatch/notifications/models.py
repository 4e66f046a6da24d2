"""The outbox and what delivery records about it.

Every message an escalation decided to send is written to `outbox` in the decision's own
transaction, so a crash can neither lose a message nor send one for an undone decision.
Dispatchers claim due rows with a lease and a run token, send them, and record every attempt
in `delivery_attempts`. In-app messages land in `inbox`, per person.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from leadwatch.db.base import Base, BigIntPK, UTCDateTime, utcnow


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_recipient_channel_sent", "recipient", "channel", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    escalation_id: Mapped[int | None] = mapped_column(
        ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("escalation_decisions.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int | None] = mapped_column(BigIntPK, index=True)
    # The same on every attempt and sent along (a webhook header, the email's Message-ID):
    # a receiver that sees it twice knows it is a repeat.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(12), index=True)
    recipient: Mapped[str] = mapped_column(String(200))
    recipient_name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    level: Mapped[str | None] = mapped_column(String(10))
    # pending -> sending -> sent | retry (-> sending ...) | dead; folded: sent inside another
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_token: Mapped[str | None] = mapped_column(String(32))
    # Indexed: the statistics read the messages of a window of days.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    folded_into_id: Mapped[int | None] = mapped_column(BigIntPK)


class DeliveryAttempt(Base):
    """One try at sending one message: when, where, what the other side said, how long."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    channel: Mapped[str] = mapped_column(String(12))
    recipient: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(10))
    code: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column()
    worker: Mapped[str] = mapped_column(String(100))


class InboxItem(Base):
    """An in-app notification for one person; unread until they mark it read."""

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_person_read", "person", "read_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    person: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox.id", ondelete="SET NULL"), unique=True
    )
    lead_id: Mapped[int | None] = mapped_column(BigIntPK)
    level: Mapped[str | None] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ChannelCredentials(Base):
    """A channel's connection settings saved on the settings page, over the environment's.
    Secrets (passwords, tokens) are stored encrypted; see `notifications.credentials`."""

    __tablename__ = "channel_credentials"

    channel: Mapped[str] = mapped_column(String(12), primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[str | None] = mapped_column(Text)  # Fernet token of a JSON object
    updated_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
