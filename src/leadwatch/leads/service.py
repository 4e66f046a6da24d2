"""Storing leads, their events and rejected records. Keyword-only, take the session, never commit.

`store_leads` is the one write path for every intake (CSV, JSON, ADF): bulk statements per chunk,
idempotent on (source_system, external_id), linking the same shopper seen through several portals.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadwatch.core.leads import (
    CONTACT_EVENTS,
    EventType,
    LeadEventIn,
    LeadIn,
    LeadStatus,
    RecordError,
    RejectedRecord,
    first_time,
    normalize_email,
    normalize_phone,
    same_vehicle,
    status_from_events,
    vehicle_key,
)
from leadwatch.leads.models import Dealership, ImportBatch, Lead, LeadEvent, QuarantinedRecord

Outcome = Literal["imported", "updated", "linked"]
_IN_BATCH = 2_000  # keeps IN (...) lists well under SQLite's bound-parameter limit

leads_table = cast(Table, Lead.__table__)
events_table = cast(Table, LeadEvent.__table__)
quarantine_table = cast(Table, QuarantinedRecord.__table__)


def scrub_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL; input from files and the API may. The intakes replace it
    (a stray byte costs one character, not the record); quarantine does too, since what it keeps
    is by nature the input that was wrong."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {scrub_nul(k): scrub_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_nul(v) for v in value]
    return value


def _scrub_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: scrub_nul(v) for k, v in row.items()} for row in rows]


class LeadNotFoundError(LookupError):
    def __init__(self, lead_id: int) -> None:
        super().__init__(f"lead {lead_id} not found")
        self.lead_id = lead_id


@dataclass(frozen=True, slots=True)
class StoredLead:
    row: int
    lead_id: int
    outcome: Outcome
    source_system: str
    external_id: str


@dataclass(slots=True)
class ImportCounts:
    imported: int = 0
    updated: int = 0
    linked: int = 0
    rejected: int = 0
    errors: list[RecordError] = field(default_factory=list)

    def add_stored(self, stored: Iterable[StoredLead]) -> None:
        for item in stored:
            if item.outcome == "imported":
                self.imported += 1
            elif item.outcome == "updated":
                self.updated += 1
            else:
                self.linked += 1

    def add_rejected(self, rejected: Sequence[RejectedRecord]) -> None:
        self.rejected += len(rejected)
        for record in rejected:
            self.errors.extend(record.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "linked": self.linked,
            "rejected": self.rejected,
            "errors": [{"row": e.row, "field": e.field, "message": e.message} for e in self.errors],
        }


class DealershipDirectory:
    """Dealership names to ids and time zones; unknown names are created with the default zone."""

    def __init__(self, *, default_name: str, default_timezone: str) -> None:
        self.default_name = default_name
        self.default_timezone = default_timezone
        self._ids: dict[str, int] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def load(self, *, db_session: Session) -> DealershipDirectory:
        for dealer in db_session.scalars(select(Dealership)):
            self._ids[dealer.name] = dealer.id
            self._zones[dealer.name] = ZoneInfo(dealer.timezone)
        return self

    def tz_for(self, name: str | None) -> tzinfo:
        key = name or self.default_name
        zone = self._zones.get(key)
        if zone is None:
            zone = self._zones[key] = ZoneInfo(self.default_timezone)
        return zone

    def id_for(self, *, db_session: Session, name: str | None) -> int:
        key = (name or self.default_name).strip()[:200] or self.default_name
        dealer_id = self._ids.get(key)
        if dealer_id is None:
            dealer_id = ensure_dealership(
                db_session=db_session, name=key, timezone=str(self.tz_for(key))
            ).id
            self._ids[key] = dealer_id
        return dealer_id


def ensure_dealership(*, db_session: Session, name: str, timezone: str) -> Dealership:
    dealer = db_session.scalars(select(Dealership).where(Dealership.name == name)).one_or_none()
    if dealer is None:
        ZoneInfo(timezone)  # raises for an unknown zone before anything is written
        dealer = Dealership(name=name, timezone=timezone)
        db_session.add(dealer)
        db_session.flush()
    return dealer


def set_dealership_timezone(*, db_session: Session, name: str, timezone: str) -> Dealership:
    ZoneInfo(timezone)
    dealer = ensure_dealership(db_session=db_session, name=name, timezone=timezone)
    dealer.timezone = timezone
    return dealer


def list_dealerships(*, db_session: Session) -> list[Dealership]:
    return list(db_session.scalars(select(Dealership).order_by(Dealership.name)))


# --- the bulk write path -------------------------------------------------------------------


def store_leads(
    *,
    db_session: Session,
    leads: Sequence[tuple[int, LeadIn]],
    directory: DealershipDirectory,
    now: datetime,
    duplicate_window: timedelta = timedelta(hours=72),
) -> list[StoredLead]:
    """Insert new leads, update known ones, add their events, link repeat shoppers.

    Text must be free of NUL characters (`scrub_nul`); the intakes see to it.

    `leads` pairs each lead with its row (line number, prospect or item number) for reporting.
    """
    first: list[tuple[int, LeadIn]] = []
    repeats: list[tuple[int, LeadIn]] = []
    seen: set[tuple[str, str]] = set()
    for row, lead in leads:
        key = (lead.source_system, lead.external_id)
        (repeats if key in seen else first).append((row, lead))
        seen.add(key)

    existing = _existing_ids(db_session, [lead for _, lead in first])
    new = [
        (row, lead) for row, lead in first if (lead.source_system, lead.external_id) not in existing
    ]
    known = [
        (row, lead) for row, lead in first if (lead.source_system, lead.external_id) in existing
    ]

    stored: list[StoredLead] = []
    new_ids = _insert_new(db_session, new, directory, now)
    linked = _link_repeat_shoppers(
        db_session, list(zip(new_ids, new, strict=True)), duplicate_window
    )
    for lead_id, (row, lead) in zip(new_ids, new, strict=True):
        outcome: Outcome = "linked" if lead_id in linked else "imported"
        stored.append(StoredLead(row, lead_id, outcome, lead.source_system, lead.external_id))

    known_ids = [existing[(lead.source_system, lead.external_id)] for _, lead in known]
    _update_known(db_session, list(zip(known_ids, known, strict=True)), directory, now)
    for lead_id, (row, lead) in zip(known_ids, known, strict=True):
        stored.append(StoredLead(row, lead_id, "updated", lead.source_system, lead.external_id))

    _insert_events(db_session, list(zip(new_ids, (lead for _, lead in new), strict=True)), now)
    _insert_events(db_session, list(zip(known_ids, (lead for _, lead in known), strict=True)), now)
    _refresh_derived(db_session, list(zip(known_ids, (lead for _, lead in known), strict=True)))

    if repeats:  # the same lead twice in one chunk: the later row updates the earlier one
        stored.extend(
            store_leads(
                db_session=db_session,
                leads=repeats,
                directory=directory,
                now=now,
                duplicate_window=duplicate_window,
            )
        )
    return stored


def _existing_ids(db_session: Session, leads: Sequence[LeadIn]) -> dict[tuple[str, str], int]:
    by_source: dict[str, list[str]] = {}
    for lead in leads:
        by_source.setdefault(lead.source_system, []).append(lead.external_id)
    found: dict[tuple[str, str], int] = {}
    conn = db_session.connection()
    for source, ids in by_source.items():
        for start in range(0, len(ids), _IN_BATCH):
            query = select(
                leads_table.c.id, leads_table.c.source_system, leads_table.c.external_id
            ).where(
                leads_table.c.source_system == source,
                leads_table.c.external_id.in_(ids[start : start + _IN_BATCH]),
            )
            for lead_id, src, ext in conn.execute(query):
                found[(src, ext)] = lead_id
    return found


def _lead_values(lead: LeadIn, dealership_id: int, now: datetime) -> dict[str, Any]:
    vehicle = lead.vehicle
    customer = lead.customer
    price = vehicle.price if vehicle else None
    return {
        "source_system": lead.source_system,
        "external_id": lead.external_id,
        "dealership_id": dealership_id,
        "created_at": lead.created_at,
        "rep": lead.rep,
        "lead_source": lead.lead_source,
        "vehicle_year": vehicle.year if vehicle else None,
        "vehicle_make": vehicle.make if vehicle else None,
        "vehicle_model": vehicle.model if vehicle else None,
        "vehicle_trim": vehicle.trim if vehicle else None,
        "vehicle_stock": vehicle.stock if vehicle else None,
        "vehicle_vin": vehicle.vin if vehicle else None,
        "vehicle_price": price,
        "vehicle_condition": vehicle.condition if vehicle else None,
        "vehicle_key": vehicle_key(vehicle),
        "vehicles": [_vehicle_json(v) for v in lead.vehicles],
        "customer_first_name": customer.first_name,
        "customer_last_name": customer.last_name,
        "customer_name": customer.name,
        "customer_email": customer.email,
        "customer_phone": customer.phone,
        "email_norm": normalize_email(customer.email),
        "phone_norm": normalize_phone(customer.phone),
        "contacts": {"emails": list(customer.emails), "phones": list(customer.phones)},
        "status": (lead.status or status_from_events(lead.events)).value,
        "contacted_at": first_time(lead.events, CONTACT_EVENTS),
        "sold_at": first_time(lead.events, frozenset({EventType.SOLD})),
        "lost_at": first_time(lead.events, frozenset({EventType.LOST})),
        "comments": lead.comments,
        "extra": dict(lead.extra),
        "updated_at": now,
    }


def _vehicle_json(vehicle: Any) -> dict[str, Any]:
    return {
        "interest": vehicle.interest.value,
        "year": vehicle.year,
        "make": vehicle.make,
        "model": vehicle.model,
        "trim": vehicle.trim,
        "stock": vehicle.stock,
        "vin": vehicle.vin,
        "price": str(vehicle.price) if vehicle.price is not None else None,
        "condition": vehicle.condition,
    }


def _insert_new(
    db_session: Session,
    new: Sequence[tuple[int, LeadIn]],
    directory: DealershipDirectory,
    now: datetime,
) -> list[int]:
    if not new:
        return []
    rows = []
    for _, lead in new:
        values = _lead_values(
            lead, directory.id_for(db_session=db_session, name=lead.dealership), now
        )
        values["received_at"] = now
        values["duplicate_of_id"] = None
        rows.append(values)
    statement = insert(leads_table).returning(leads_table.c.id, sort_by_parameter_order=True)
    return list(db_session.connection().execute(statement, rows).scalars())


def _update_known(
    db_session: Session,
    known: Sequence[tuple[int, tuple[int, LeadIn]]],
    directory: DealershipDirectory,
    now: datetime,
) -> None:
    if not known:
        return
    rows = []
    for lead_id, (_, lead) in known:
        values = _lead_values(
            lead, directory.id_for(db_session=db_session, name=lead.dealership), now
        )
        values["b_id"] = lead_id
        rows.append(values)
    columns: dict[str, Any] = {name: bindparam(name) for name in rows[0] if name != "b_id"}
    statement = update(leads_table).where(leads_table.c.id == bindparam("b_id")).values(columns)
    db_session.connection().execute(statement, rows)


def _event_insert(db_session: Session) -> Any:
    if db_session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(events_table).on_conflict_do_nothing()
    return sqlite.insert(events_table).on_conflict_do_nothing()


def _insert_events(db_session: Session, leads: Sequence[tuple[int, LeadIn]], now: datetime) -> None:
    rows = [
        {
            "lead_id": lead_id,
            "type": event.type.value,
            "occurred_at": event.occurred_at,
            "actor": event.actor,
            "note": event.note,
            "recorded_at": now,
        }
        for lead_id, lead in leads
        for event in lead.events
    ]
    if rows:
        db_session.connection().execute(_event_insert(db_session), rows)


def _refresh_derived(db_session: Session, leads: Sequence[tuple[int, LeadIn]]) -> None:
    """An updated lead's status and stage times come from all its events, not just this file's."""
    if not leads:
        return
    histories = _event_histories(db_session, [lead_id for lead_id, _ in leads])
    rows = []
    for lead_id, lead in leads:
        events = histories.get(lead_id, [])
        status = lead.status or status_from_events(events)
        rows.append({"b_id": lead_id, **_derived(events, status)})
    statement = (
        update(leads_table)
        .where(leads_table.c.id == bindparam("b_id"))
        .values(
            status=bindparam("status"),
            contacted_at=bindparam("contacted_at"),
            sold_at=bindparam("sold_at"),
            lost_at=bindparam("lost_at"),
        )
    )
    db_session.connection().execute(statement, rows)


def _derived(events: Sequence[LeadEventIn], status: LeadStatus) -> dict[str, Any]:
    return {
        "status": status.value,
        "contacted_at": first_time(events, CONTACT_EVENTS),
        "sold_at": first_time(events, frozenset({EventType.SOLD})),
        "lost_at": first_time(events, frozenset({EventType.LOST})),
    }


def _event_histories(db_session: Session, lead_ids: Sequence[int]) -> dict[int, list[LeadEventIn]]:
    histories: dict[int, list[LeadEventIn]] = {}
    conn = db_session.connection()
    for start in range(0, len(lead_ids), _IN_BATCH):
        query = select(
            events_table.c.lead_id, events_table.c.type, events_table.c.occurred_at
        ).where(events_table.c.lead_id.in_(lead_ids[start : start + _IN_BATCH]))
        for lead_id, kind, occurred_at in conn.execute(query):
            histories.setdefault(lead_id, []).append(
                LeadEventIn(EventType(kind), _as_utc(occurred_at))
            )
    return histories


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _link_repeat_shoppers(
    db_session: Session,
    new: Sequence[tuple[int, tuple[int, LeadIn]]],
    window: timedelta,
) -> set[int]:
    """Point each new lead at an earlier lead of the same shopper (same email or phone, same
    vehicle, created within `window`). Returns the ids that were linked."""
    contacts = {
        lead_id: (normalize_email(lead.customer.email), normalize_phone(lead.customer.phone), lead)
        for lead_id, (_, lead) in new
    }
    emails = sorted({e for e, _, _ in contacts.values() if e})
    phones = sorted({p for _, p, _ in contacts.values() if p})
    if not emails and not phones:
        return set()
    candidates = _link_candidates(db_session, emails, phones)
    by_email: dict[str, list[tuple[Any, ...]]] = {}
    by_phone: dict[str, list[tuple[Any, ...]]] = {}
    for candidate in candidates:
        if candidate[1]:
            by_email.setdefault(candidate[1], []).append(candidate)
        if candidate[2]:
            by_phone.setdefault(candidate[2], []).append(candidate)

    new_ids = set(contacts)
    links: dict[int, int] = {}
    ordered = sorted(contacts.items(), key=lambda item: (item[1][2].created_at, item[0]))
    for lead_id, (email, phone, lead) in ordered:
        vehicle = lead.vehicle
        vin, key = (vehicle.vin if vehicle else None), vehicle_key(vehicle)
        pool = (by_email.get(email, []) if email else []) + (
            by_phone.get(phone, []) if phone else []
        )
        best: tuple[Any, ...] | None = None
        for cand in pool:
            cand_id, _, _, cand_vin, cand_key, cand_created = cand
            if cand_id == lead_id or cand_id in links:
                continue
            cand_created = _as_utc(cand_created)
            if abs(cand_created - lead.created_at) > window:
                continue
            if cand_id in new_ids and (cand_created, cand_id) >= (lead.created_at, lead_id):
                continue  # within this chunk only an earlier lead can be the original
            if not same_vehicle(vin, key, cand_vin, cand_key):
                continue
            if best is None or (cand_created, cand_id) < (_as_utc(best[5]), best[0]):
                best = cand
        if best is not None:
            links[lead_id] = best[0]
    if links:
        statement = (
            update(leads_table)
            .where(leads_table.c.id == bindparam("b_id"))
            .values(duplicate_of_id=bindparam("target"))
        )
        db_session.connection().execute(
            statement, [{"b_id": k, "target": v} for k, v in links.items()]
        )
    return set(links)


def _link_candidates(
    db_session: Session, emails: Sequence[str], phones: Sequence[str]
) -> list[tuple[Any, ...]]:
    columns = (
        leads_table.c.id,
        leads_table.c.email_norm,
        leads_table.c.phone_norm,
        leads_table.c.vehicle_vin,
        leads_table.c.vehicle_key,
        leads_table.c.created_at,
    )
    found: dict[int, tuple[Any, ...]] = {}
    conn = db_session.connection()
    for values, column in ((emails, leads_table.c.email_norm), (phones, leads_table.c.phone_norm)):
        for start in range(0, len(values), _IN_BATCH):
            query = select(*columns).where(
                leads_table.c.duplicate_of_id.is_(None),
                column.in_(values[start : start + _IN_BATCH]),
            )
            for row in conn.execute(query):
                found[row[0]] = tuple(row)
    return list(found.values())


# --- rejected records and import batches ---------------------------------------------------


def start_batch(*, db_session: Session, source: str, fmt: str, now: datetime) -> ImportBatch:
    batch = ImportBatch(source=source[:500], format=fmt, started_at=now)
    db_session.add(batch)
    db_session.flush()
    return batch


def quarantine(
    *,
    db_session: Session,
    records: Sequence[RejectedRecord],
    source: str,
    batch_id: int | None,
    now: datetime,
) -> None:
    if not records:
        return
    rows = [
        {
            "batch_id": batch_id,
            "source": source[:500],
            "row": record.row,
            "field": (record.errors[0].field if record.errors else "record")[:200],
            "reason": record.reason,
            "errors": [{"field": e.field, "message": e.message} for e in record.errors],
            "raw": record.raw,
            "created_at": now,
        }
        for record in records
    ]
    db_session.connection().execute(insert(quarantine_table), _scrub_rows(rows))


def record_batch_counts(
    *, db_session: Session, batch_id: int, counts: ImportCounts, finished_at: datetime | None
) -> None:
    batch = db_session.get(ImportBatch, batch_id)
    if batch is None:
        return
    batch.imported, batch.updated = counts.imported, counts.updated
    batch.linked, batch.rejected = counts.linked, counts.rejected
    batch.finished_at = finished_at


def list_rejected(
    *, db_session: Session, limit: int = 100, offset: int = 0, batch_id: int | None = None
) -> tuple[list[QuarantinedRecord], int]:
    query = select(QuarantinedRecord)
    if batch_id is not None:
        query = query.where(QuarantinedRecord.batch_id == batch_id)
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db_session.scalars(
        query.order_by(QuarantinedRecord.id.desc()).limit(limit).offset(offset)
    )
    return list(items), total


# --- reading and single-lead changes -------------------------------------------------------


def get(*, db_session: Session, lead_id: int) -> Lead:
    lead = db_session.get(Lead, lead_id)
    if lead is None:
        raise LeadNotFoundError(lead_id)
    return lead


def list_leads(
    *,
    db_session: Session,
    limit: int = 50,
    offset: int = 0,
    status: str | None = None,
    dealership: str | None = None,
    lead_source: str | None = None,
    include_duplicates: bool = False,
) -> tuple[list[Lead], int]:
    query = select(Lead)
    if status:
        query = query.where(Lead.status == status)
    if dealership:
        query = query.join(Dealership).where(Dealership.name == dealership)
    if lead_source:
        query = query.where(Lead.lead_source == lead_source)
    if not include_duplicates:
        query = query.where(Lead.duplicate_of_id.is_(None))
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db_session.scalars(
        query.order_by(Lead.created_at.desc(), Lead.id.desc()).limit(limit).offset(offset)
    )
    return list(items), total


def add_event(
    *, db_session: Session, lead_id: int, event: LeadEventIn, rep: str | None = None
) -> tuple[LeadEvent, bool]:
    """Append an event and refresh the lead's derived fields. Returns (event, created);
    posting the same event (type and time) again returns the stored one."""
    lead = get(db_session=db_session, lead_id=lead_id)
    existing = db_session.scalars(
        select(LeadEvent).where(
            LeadEvent.lead_id == lead_id,
            LeadEvent.type == event.type.value,
            LeadEvent.occurred_at == event.occurred_at,
        )
    ).one_or_none()
    if existing is not None:
        return existing, False
    row = LeadEvent(
        lead_id=lead_id,
        type=event.type.value,
        occurred_at=event.occurred_at,
        actor=event.actor,
        note=event.note,
    )
    db_session.add(row)
    db_session.flush()
    if event.type is EventType.REASSIGNED and rep:
        lead.rep = rep
    history = _event_histories(db_session, [lead_id]).get(lead_id, [])
    for name, value in _derived(history, status_from_events(history)).items():
        setattr(lead, name, value)
    db_session.expire(lead, ["events"])
    return row, True
