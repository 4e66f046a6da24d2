"""Lead values shared by intake, storage and prediction.

Plain dataclasses: parsers produce them, the service layer stores them. All datetimes here are
timezone-aware UTC. The per-lead values are not frozen because an import builds millions of
them and a frozen dataclass's __init__ costs several times more; treat them as immutable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class EventType(StrEnum):
    CREATED = "created"
    CONTACTED = "contacted"
    APPOINTMENT = "appointment"
    TEST_DRIVE = "test_drive"
    OFFER = "offer"
    SOLD = "sold"
    DELIVERED = "delivered"
    LOST = "lost"
    REASSIGNED = "reassigned"
    CLAIMED = "claimed"


class LeadStatus(StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    APPOINTMENT = "appointment"
    TEST_DRIVE = "test_drive"
    OFFER = "offer"
    SOLD = "sold"
    DELIVERED = "delivered"
    LOST = "lost"


class VehicleInterest(StrEnum):
    BUY = "buy"
    LEASE = "lease"
    TRADE_IN = "trade-in"


# Stage events move a lead forward; the status is the furthest stage reached.
STAGE_ORDER: tuple[EventType, ...] = (
    EventType.CREATED,
    EventType.CONTACTED,
    EventType.APPOINTMENT,
    EventType.TEST_DRIVE,
    EventType.OFFER,
    EventType.SOLD,
    EventType.DELIVERED,
)
_STAGE_RANK = {event: rank for rank, event in enumerate(STAGE_ORDER)}
_STATUS_FOR_EVENT = {
    EventType.CREATED: LeadStatus.NEW,
    EventType.CONTACTED: LeadStatus.CONTACTED,
    EventType.APPOINTMENT: LeadStatus.APPOINTMENT,
    EventType.TEST_DRIVE: LeadStatus.TEST_DRIVE,
    EventType.OFFER: LeadStatus.OFFER,
    EventType.SOLD: LeadStatus.SOLD,
    EventType.DELIVERED: LeadStatus.DELIVERED,
}
# The stage times a lead table carries, one per stage event after "created" (and "lost").
STAGE_TIME_FIELDS: tuple[str, ...] = (
    "contacted_at",
    "appointment_at",
    "test_drive_at",
    "offer_at",
    "sold_at",
    "delivered_at",
    "lost_at",
)
# Any stage past "created" means somebody reached the customer.
CONTACT_EVENTS = frozenset(STAGE_ORDER[1:])


@dataclass(slots=True)
class Vehicle:
    interest: VehicleInterest = VehicleInterest.BUY
    year: int | None = None
    make: str | None = None
    model: str | None = None
    trim: str | None = None
    stock: str | None = None
    vin: str | None = None
    price: Decimal | None = None
    condition: str | None = None  # "new" / "used" where the source says so


@dataclass(slots=True)
class Customer:
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()

    @property
    def name(self) -> str | None:
        if self.full_name:
            return self.full_name
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None

    @property
    def email(self) -> str | None:
        return self.emails[0] if self.emails else None

    @property
    def phone(self) -> str | None:
        return self.phones[0] if self.phones else None


@dataclass(slots=True)
class LeadEventIn:
    type: EventType
    occurred_at: datetime
    actor: str | None = None
    note: str | None = None


@dataclass(slots=True)
class LeadIn:
    """One lead as a parser understood it, before storage."""

    source_system: str
    external_id: str
    created_at: datetime
    dealership: str | None = None
    rep: str | None = None
    lead_source: str | None = None
    vehicles: tuple[Vehicle, ...] = ()
    customer: Customer = field(default_factory=Customer)
    status: LeadStatus | None = None
    comments: str | None = None
    events: tuple[LeadEventIn, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def vehicle(self) -> Vehicle | None:
        """The vehicle the shopper wants: the first one that is not a trade-in."""
        for vehicle in self.vehicles:
            if vehicle.interest is not VehicleInterest.TRADE_IN:
                return vehicle
        return None


@dataclass(frozen=True, slots=True)
class RecordError:
    """What is wrong with one input record, and where."""

    row: int
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record that could not be imported, kept with its raw text and reasons."""

    row: int
    raw: str
    errors: tuple[RecordError, ...]

    @property
    def reason(self) -> str:
        return "; ".join(f"{e.field}: {e.message}" for e in self.errors)


def status_from_events(events: Sequence[LeadEventIn]) -> LeadStatus:
    """Furthest stage reached; a lost lead stays lost unless it later sold."""
    best = -1
    lost = False
    for event in events:
        if event.type is EventType.LOST:
            lost = True
        rank = _STAGE_RANK.get(event.type)
        if rank is not None and rank > best:
            best = rank
    if best >= _STAGE_RANK[EventType.SOLD]:
        return _STATUS_FOR_EVENT[STAGE_ORDER[best]]
    if lost:
        return LeadStatus.LOST
    if best < 0:
        return LeadStatus.NEW
    return _STATUS_FOR_EVENT[STAGE_ORDER[best]]


def first_time(events: Sequence[LeadEventIn], kinds: frozenset[EventType]) -> datetime | None:
    times = [e.occurred_at for e in events if e.type in kinds]
    return min(times) if times else None


_NON_DIGITS = re.compile(r"\D+")


def normalize_email(email: str | None) -> str | None:
    if not email:
        return None
    value = email.strip().lower()
    return value or None


def normalize_phone(phone: str | None) -> str | None:
    """Digits only, North American numbers without the leading 1; None if too short to match on."""
    if not phone:
        return None
    digits = _NON_DIGITS.sub("", phone)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) >= 7 else None


def vehicle_key(vehicle: Vehicle | None) -> str | None:
    """Make and model, lower-cased: what two portals describing one car agree on."""
    if vehicle is None or not (vehicle.make or vehicle.model):
        return None
    return f"{(vehicle.make or '').strip().lower()}|{(vehicle.model or '').strip().lower()}"


def same_vehicle(
    vin_a: str | None, key_a: str | None, vin_b: str | None, key_b: str | None
) -> bool:
    """Same VIN where both give one; otherwise same make and model."""
    if vin_a and vin_b:
        return vin_a.strip().upper() == vin_b.strip().upper()
    return key_a is not None and key_a == key_b
