"""Tables for the escalation engine: versioned settings, escalations with their durable due
times, the decision log, and the single-use record of claim links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from leadwatch.db.base import Base, BigIntPK, UTCDateTime, utcnow


class SettingsVersion(Base):
    """One saved version of the Lead Escalation settings: who, what and when. The newest
    version is in force; older ones stay for the record (and for escalations that froze them)."""

    __tablename__ = "escalation_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SHA-256 of the canonical document: parsed settings are cached by it.
    digest: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Escalation(Base):
    """One lead's escalation. ``active_lead_id`` equals ``lead_id`` until the escalation ends
    and is unique, so a lead (and every duplicate of its shopper, which share the original
    lead) can never have two live escalations, whichever process starts them."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    active_lead_id: Mapped[int | None] = mapped_column(BigIntPK, unique=True)
    dealership_id: Mapped[int] = mapped_column(ForeignKey("dealerships.id"), index=True)
    level: Mapped[str] = mapped_column(String(10), index=True)
    probability: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    settings_version: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, default=0)
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A fresh token per executed step: a process that read an old token runs nothing.
    run_token: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    first_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class EscalationDecision(Base):
    """Every decision with its reason: why this level, why these recipients, why held."""

    __tablename__ = "escalation_decisions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    escalation_id: Mapped[int] = mapped_column(
        ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int] = mapped_column(BigIntPK, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(12))
    level: Mapped[str] = mapped_column(String(10))
    step: Mapped[int | None] = mapped_column(Integer)
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text)
    recipients: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when every message of this step died and the fallback recipients were told.
    fell_back: Mapped[bool] = mapped_column(Boolean, default=False)


class ClaimUse(Base):
    """A claim link's nonce, written when the link is used: the primary key makes it
    single-use even when two clicks race."""

    __tablename__ = "claim_uses"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    escalation_id: Mapped[int] = mapped_column(
        ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    person: Mapped[str] = mapped_column(String(200))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())
