"""Tables for dealerships, leads, their append-only event history, imports and quarantine."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadwatch.db.base import Base, BigIntPK, UTCDateTime, utcnow


class Dealership(Base):
    __tablename__ = "dealerships"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("source_system", "external_id"),
        Index("ix_leads_dealership_created", "dealership_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    source_system: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    dealership_id: Mapped[int] = mapped_column(ForeignKey("dealerships.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rep: Mapped[str | None] = mapped_column(String(200), index=True)
    lead_source: Mapped[str | None] = mapped_column(String(200), index=True)

    vehicle_year: Mapped[int | None] = mapped_column(Integer)
    vehicle_make: Mapped[str | None] = mapped_column(String(100))
    vehicle_model: Mapped[str | None] = mapped_column(String(100))
    vehicle_trim: Mapped[str | None] = mapped_column(String(100))
    vehicle_stock: Mapped[str | None] = mapped_column(String(50))
    vehicle_vin: Mapped[str | None] = mapped_column(String(32))
    vehicle_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    vehicle_condition: Mapped[str | None] = mapped_column(String(20))
    vehicle_key: Mapped[str | None] = mapped_column(String(201))
    # Every vehicle of the lead with its interest (buy, lease, trade-in), as the source gave them.
    vehicles: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    customer_first_name: Mapped[str | None] = mapped_column(String(100))
    customer_last_name: Mapped[str | None] = mapped_column(String(100))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    customer_email: Mapped[str | None] = mapped_column(String(320))
    customer_phone: Mapped[str | None] = mapped_column(String(50))
    email_norm: Mapped[str | None] = mapped_column(String(320), index=True)
    phone_norm: Mapped[str | None] = mapped_column(String(20), index=True)
    contacts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    status: Mapped[str] = mapped_column(String(20), index=True)
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sold_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    comments: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    # The latest score of the active model (open leads are scored on intake).
    sale_probability_14d: Mapped[float | None] = mapped_column(Float)
    sale_probability_30d: Mapped[float | None] = mapped_column(Float)
    risk_level: Mapped[str | None] = mapped_column(String(10), index=True)
    top_factors: Mapped[list[str] | None] = mapped_column(JSON)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    model_version: Mapped[str | None] = mapped_column(String(40))

    # The same shopper arriving again from another portal points at the lead first seen.
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dealership: Mapped[Dealership] = relationship(lazy="joined")
    events: Mapped[list[LeadEvent]] = relationship(
        back_populates="lead", order_by="LeadEvent.occurred_at", lazy="selectin"
    )


class LeadEvent(Base):
    """Append-only history. The unique key makes re-importing the same file a no-op."""

    __tablename__ = "lead_events"
    __table_args__ = (UniqueConstraint("lead_id", "type", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    lead: Mapped[Lead] = relationship(back_populates="events")


class ImportBatch(Base):
    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    imported: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    linked: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)


class QuarantinedRecord(Base):
    """A rejected input record, kept with its raw text and every reason it was refused."""

    __tablename__ = "rejected_records"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"), index=True)
    source: Mapped[str] = mapped_column(String(500))
    row: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
