"""JSON shapes of the lead API: separate input and output models."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from leadwatch.core.leads import (
    Customer,
    EventType,
    LeadEventIn,
    LeadIn,
    LeadStatus,
    Vehicle,
    VehicleInterest,
)

Text100 = Annotated[str, Field(min_length=1, max_length=100)]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]


class VehicleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interest: VehicleInterest = VehicleInterest.BUY
    year: int | None = Field(default=None, ge=1900, le=2100)
    make: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)
    trim: str | None = Field(default=None, max_length=100)
    stock: str | None = Field(default=None, max_length=50)
    vin: str | None = Field(default=None, max_length=32)
    price: Decimal | None = Field(default=None, ge=0, le=Decimal("9999999999"))
    condition: str | None = Field(default=None, max_length=20)


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=50)
    emails: list[EmailStr] = Field(default_factory=list, max_length=20)
    phones: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=20)


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: EventType
    occurred_at: datetime | None = Field(
        default=None, description="When it happened; default now. Naive = dealership local time."
    )
    actor: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=5000)
    rep: str | None = Field(
        default=None, max_length=200, description="For `reassigned`: the new rep."
    )

    @field_validator("actor", "note", "rep")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return value.replace("\x00", "\ufffd") if value else value

    def to_event_in(self, local_tz: tzinfo, *, default: datetime) -> LeadEventIn:
        occurred = _aware(self.occurred_at, local_tz) if self.occurred_at else default
        return LeadEventIn(self.type, occurred, actor=self.actor, note=self.note)


class LeadCreate(BaseModel):
    """One lead. `source_system` + `external_id` identify it: posting it again updates it."""

    model_config = ConfigDict(extra="forbid")

    source_system: Text100 = "api"
    external_id: Text200
    dealership: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(description="ISO 8601; naive = dealership local time.")
    rep: str | None = Field(default=None, max_length=200)
    lead_source: str | None = Field(default=None, max_length=200)
    vehicle: VehicleIn | None = None
    vehicles: list[VehicleIn] = Field(default_factory=list, max_length=20)
    customer: CustomerIn = Field(default_factory=CustomerIn)
    status: LeadStatus | None = None
    comments: str | None = Field(default=None, max_length=20_000)
    events: list[EventCreate] = Field(default_factory=list, max_length=200)

    @field_validator("external_id", "source_system")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    def to_lead_in(self, local_tz: tzinfo) -> LeadIn:
        created = _aware(self.created_at, local_tz)
        vehicles = ([self.vehicle] if self.vehicle else []) + list(self.vehicles)
        events = [LeadEventIn(EventType.CREATED, created, actor=self.source_system)]
        events += [event.to_event_in(local_tz, default=created) for event in self.events]
        customer = self.customer
        emails = tuple(dict.fromkeys([e for e in [customer.email, *customer.emails] if e]))
        phones = tuple(dict.fromkeys([p for p in [customer.phone, *customer.phones] if p]))
        return LeadIn(
            source_system=self.source_system,
            external_id=self.external_id,
            created_at=created,
            dealership=self.dealership,
            rep=self.rep,
            lead_source=self.lead_source,
            vehicles=tuple(_vehicle(v) for v in vehicles),
            customer=Customer(
                first_name=customer.first_name,
                last_name=customer.last_name,
                full_name=customer.name,
                emails=emails,
                phones=phones,
            ),
            status=self.status,
            comments=self.comments,
            events=tuple(events),
        )


def _aware(value: datetime, local_tz: tzinfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=local_tz)
    return value.astimezone(UTC)


def _vehicle(v: VehicleIn) -> Vehicle:
    return Vehicle(
        interest=v.interest,
        year=v.year,
        make=v.make,
        model=v.model,
        trim=v.trim,
        stock=v.stock,
        vin=v.vin,
        price=v.price,
        condition=v.condition,
    )


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    occurred_at: datetime
    actor: str | None
    note: str | None
    recorded_at: datetime


class LeadRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source_system: str
    external_id: str
    dealership: str
    created_at: datetime
    rep: str | None
    lead_source: str | None
    vehicle_year: int | None
    vehicle_make: str | None
    vehicle_model: str | None
    vehicle_trim: str | None
    vehicle_stock: str | None
    vehicle_vin: str | None
    vehicle_price: Decimal | None
    vehicles: list[dict[str, Any]]
    customer_name: str | None
    customer_email: str | None
    customer_phone: str | None
    status: str
    contacted_at: datetime | None
    sold_at: datetime | None
    lost_at: datetime | None
    comments: str | None
    duplicate_of_id: int | None
    sale_probability_14d: float | None = None
    sale_probability_30d: float | None = None
    risk_level: str | None = None
    top_factors: list[str] | None = None
    scored_at: datetime | None = None
    model_version: str | None = None
    events: list[EventRead] = Field(default_factory=list)

    @field_validator("dealership", mode="before")
    @classmethod
    def _dealer_name(cls, value: Any) -> Any:
        return getattr(value, "name", value)


class LeadSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source_system: str
    external_id: str
    created_at: datetime
    rep: str | None
    lead_source: str | None
    vehicle_make: str | None
    vehicle_model: str | None
    status: str
    contacted_at: datetime | None
    sold_at: datetime | None
    duplicate_of_id: int | None
    sale_probability_30d: float | None = None
    risk_level: str | None = None


class LeadPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[LeadSummary]


class RecordErrorRead(BaseModel):
    row: int
    field: str
    message: str


class StoredLeadRead(BaseModel):
    row: int
    id: int
    outcome: str
    source_system: str
    external_id: str


class ImportResult(BaseModel):
    imported: int
    updated: int
    linked: int
    rejected: int
    errors: list[RecordErrorRead]
    leads: list[StoredLeadRead] = Field(default_factory=list)


class RejectedRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    batch_id: int | None
    source: str
    row: int
    field: str
    reason: str
    raw: str
    created_at: datetime


class RejectedPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[RejectedRead]
