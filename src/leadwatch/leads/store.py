"""`store_leads`: the one write path of every intake (CSV, JSON, ADF). Takes the session, never
commits. Per chunk: find which leads are known, link repeat shoppers, bulk-insert the new ones
and their events (leads.bulk), update the known ones, refresh derived fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from leadwatch.core.leads import (
    CONTACT_EVENTS,
    EventType,
    LeadEventIn,
    LeadIn,
    LeadStatus,
    Vehicle,
    normalize_email,
    normalize_phone,
    same_vehicle,
    status_from_events,
    vehicle_key,
)
from leadwatch.db.engine import insert_or_skip
from leadwatch.leads import bulk
from leadwatch.leads.directory import DealershipDirectory
from leadwatch.leads.models import Lead, LeadEvent

Outcome = Literal["imported", "updated", "linked"]
IN_BATCH = 2_000  # keeps IN (...) lists well under SQLite's bound-parameter limit
FEW = 16  # up to this many new leads, inserted one by one with their ids returned

leads_table = cast(Table, Lead.__table__)
events_table = cast(Table, LeadEvent.__table__)

LEAD_COLUMNS = (
    "source_system",
    "external_id",
    "dealership_id",
    "created_at",
    "rep",
    "lead_source",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "vehicle_trim",
    "vehicle_stock",
    "vehicle_vin",
    "vehicle_price",
    "vehicle_condition",
    "vehicle_key",
    "vehicles",
    "customer_first_name",
    "customer_last_name",
    "customer_name",
    "customer_email",
    "customer_phone",
    "email_norm",
    "phone_norm",
    "contacts",
    "status",
    "contacted_at",
    "sold_at",
    "lost_at",
    "comments",
    "extra",
    "updated_at",
)
INSERT_COLUMNS = (*LEAD_COLUMNS, "duplicate_of_id", "received_at")
STORED_SCORE_COLUMNS = (
    "sale_probability_14d",
    "sale_probability_30d",
    "risk_level",
    "top_factors",
    "scored_at",
    "model_version",
)
_NOT_SCORED = (None,) * len(STORED_SCORE_COLUMNS)
EVENT_COLUMNS = ("lead_id", "type", "occurred_at", "actor", "note", "recorded_at")
_DERIVED = ("status", "contacted_at", "sold_at", "lost_at")
_SOLD = EventType.SOLD
_LOST = EventType.LOST


# Scores new leads before they are inserted (`scoring.score_before_insert`): takes the leads
# as the model reads them (plus their status) and gives each one's STORED_SCORE_COLUMNS, or None.
ScoreNew = Callable[[Sequence[Mapping[str, Any]]], list[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class StoredLead:
    """``view``: the stored lead's columns, with its id, dealership name and time zone, for
    code that would otherwise read it back at once; only for a lead scored on the way in."""

    row: int
    lead_id: int
    outcome: Outcome
    source_system: str
    external_id: str
    created_at: datetime
    view: Mapping[str, Any] | None = None

    @property
    def scored(self) -> bool:
        """Scored on the way in (by ``score_new``; None scores for a closed lead or a failing
        model): nothing left to score."""
        return self.view is not None


def worth_watching(stored: Sequence[StoredLead], *, since: datetime) -> list[int]:
    """The ids escalation needs to look at after an intake: every update or linked repeat
    (it may stop or move up a live chain) and the new leads created since `since` (the watch
    window). A new lead older than that has no chain and would not get one, which spares a
    history import from reading every lead back."""
    return [s.lead_id for s in stored if s.outcome != "imported" or s.created_at >= since]


def store_leads(
    *,
    db_session: Session,
    leads: Sequence[tuple[int, LeadIn]],
    directory: DealershipDirectory,
    now: datetime,
    duplicate_window: timedelta = timedelta(hours=72),
    score_new: ScoreNew | None = None,
) -> list[StoredLead]:
    """Insert new leads, update known ones, add their events, link repeat shoppers.

    `leads` pairs each lead with its row (line, prospect or item number) for reporting. Text
    must be free of NUL characters (`service.scrub_nul`); the intakes see to it.
    ``score_new``: an API intake's few new original leads are scored with it before their
    insert, which carries the scores (`StoredLead.scored`, `StoredLead.view`).
    """
    first: list[tuple[int, LeadIn]] = []
    repeats: list[tuple[int, LeadIn]] = []
    seen: set[tuple[str, str]] = set()
    for row, lead in leads:
        key = (lead.source_system, lead.external_id)
        (repeats if key in seen else first).append((row, lead))
        seen.add(key)

    existing = _existing_ids(db_session, [lead for _, lead in first])
    new = [item for item in first if (item[1].source_system, item[1].external_id) not in existing]
    known = [item for item in first if (item[1].source_system, item[1].external_id) in existing]

    stored = _insert_new(db_session, new, directory, now, duplicate_window, score_new)
    known_ids = [existing[(lead.source_system, lead.external_id)] for _, lead in known]
    _update_known(db_session, known_ids, known, directory, now)
    stored += [
        StoredLead(row, lead_id, "updated", lead.source_system, lead.external_id, lead.created_at)
        for lead_id, (row, lead) in zip(known_ids, known, strict=True)
    ]
    if repeats:  # the same lead twice in one chunk: the later row updates the earlier one
        stored += store_leads(
            db_session=db_session,
            leads=repeats,
            directory=directory,
            now=now,
            duplicate_window=duplicate_window,
            score_new=score_new,
        )
    return stored


def one_of(conn: Connection, column: ColumnElement[Any], values: Sequence[Any]) -> Any:
    """`column IN values`. On PostgreSQL as `= ANY(array)`: one parameter instead of thousands,
    which the driver would otherwise parse into the statement chunk after chunk."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _existing_ids(db_session: Session, leads: Sequence[LeadIn]) -> dict[tuple[str, str], int]:
    by_source: dict[str, list[str]] = {}
    for lead in leads:
        by_source.setdefault(lead.source_system, []).append(lead.external_id)
    found: dict[tuple[str, str], int] = {}
    conn = db_session.connection()
    columns = (leads_table.c.id, leads_table.c.source_system, leads_table.c.external_id)
    for source, ids in by_source.items():
        for start in range(0, len(ids), IN_BATCH):
            query = select(*columns).where(
                leads_table.c.source_system == source,
                one_of(conn, leads_table.c.external_id, ids[start : start + IN_BATCH]),
            )
            for lead_id, src, ext in conn.execute(query):
                found[(src, ext)] = lead_id
    return found


# --- values ----------------------------------------------------------------------------------


def stage_times(events: Sequence[LeadEventIn]) -> tuple[datetime | None, ...]:
    """First contact, sale and loss times, in one pass over the history."""
    contacted = sold = lost = None
    for event in events:
        kind, at = event.type, event.occurred_at
        if kind in CONTACT_EVENTS and (contacted is None or at < contacted):
            contacted = at
        if kind is _SOLD and (sold is None or at < sold):
            sold = at
        elif kind is _LOST and (lost is None or at < lost):
            lost = at
    return contacted, sold, lost


def lead_row(lead: LeadIn, dealership_id: int, now: datetime) -> tuple[Any, ...]:
    """The values of LEAD_COLUMNS for one lead."""
    vehicle = lead.vehicle
    customer = lead.customer
    email, phone = customer.email, customer.phone
    contacted, sold, lost = stage_times(lead.events)
    status = lead.status or status_from_events(lead.events)
    if vehicle is None:
        vehicle = _NO_VEHICLE
    return (
        lead.source_system,
        lead.external_id,
        dealership_id,
        lead.created_at,
        lead.rep,
        lead.lead_source,
        vehicle.year,
        vehicle.make,
        vehicle.model,
        vehicle.trim,
        vehicle.stock,
        vehicle.vin,
        vehicle.price,
        vehicle.condition,
        vehicle_key(vehicle),
        [_vehicle_json(v) for v in lead.vehicles],
        customer.first_name,
        customer.last_name,
        customer.name,
        email,
        phone,
        normalize_email(email),
        normalize_phone(phone),
        _contacts(customer.emails, customer.phones),
        status.value,
        contacted,
        sold,
        lost,
        lead.comments,
        dict(lead.extra) if lead.extra else _EMPTY,
        now,
    )


_NO_VEHICLE = Vehicle()
# Shared so that the bulk path serialises it once per chunk, not once per row (bulk.py).
_EMPTY: dict[str, Any] = {}


def _contacts(emails: Sequence[str], phones: Sequence[str]) -> dict[str, Any]:
    """Every address and number, where there is more than the one in the lead's own columns."""
    if len(emails) <= 1 and len(phones) <= 1:
        return _EMPTY
    return {"emails": list(emails), "phones": list(phones)}


def _vehicle_json(vehicle: Vehicle) -> dict[str, Any]:
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


# --- new leads -------------------------------------------------------------------------------

_EMAIL = LEAD_COLUMNS.index("email_norm")
_PHONE = LEAD_COLUMNS.index("phone_norm")
_VIN = LEAD_COLUMNS.index("vehicle_vin")
_KEY = LEAD_COLUMNS.index("vehicle_key")
_CREATED = LEAD_COLUMNS.index("created_at")


def _insert_new(
    db_session: Session,
    new: Sequence[tuple[int, LeadIn]],
    directory: DealershipDirectory,
    now: datetime,
    window: timedelta,
    score_new: ScoreNew | None = None,
) -> list[StoredLead]:
    if not new:
        return []
    rows = [
        lead_row(lead, directory.id_for(db_session=db_session, name=lead.dealership), now)
        for _, lead in new
    ]
    to_stored, to_sibling = _find_originals(db_session, rows, window)
    conn = db_session.connection()
    values = [(*row, to_stored.get(i), now) for i, row in enumerate(rows)]
    views: list[dict[str, Any] | None] = [None] * len(rows)
    if len(values) <= FEW:  # an API intake: the ids come back with the inserts
        columns: tuple[str, ...] = INSERT_COLUMNS
        if score_new is not None:
            values, views = _scored(
                values, new, directory, score_new, linked={*to_stored, *to_sibling}
            )
            columns = (*INSERT_COLUMNS, *STORED_SCORE_COLUMNS)
        ids = bulk.insert_returning_ids(conn, leads_table, columns, values)
    else:  # a batch or an import: the bulk path, then the ids read back in a few queries
        bulk.insert_rows(conn, leads_table, INSERT_COLUMNS, values)
        ids_by_key = _existing_ids(db_session, [lead for _, lead in new])
        ids = [ids_by_key[(lead.source_system, lead.external_id)] for _, lead in new]
    if to_sibling:
        conn.execute(
            update(leads_table)
            .where(leads_table.c.id == bindparam("b_id"))
            .values(duplicate_of_id=bindparam("b_target")),
            [{"b_id": ids[i], "b_target": ids[j]} for i, j in to_sibling.items()],
        )
    bulk.insert_rows(conn, events_table, EVENT_COLUMNS, _event_rows(ids, new, now))
    stored = []
    for i, (lead_id, (row, lead)) in enumerate(zip(ids, new, strict=True)):
        view = views[i]
        if view is not None:
            view["id"] = lead_id
        outcome: Outcome = "linked" if (i in to_stored or i in to_sibling) else "imported"
        stored.append(
            StoredLead(
                row,
                lead_id,
                outcome,
                lead.source_system,
                lead.external_id,
                lead.created_at,
                view=view,
            )
        )
    return stored


_INDEX = {name: i for i, name in enumerate(INSERT_COLUMNS)}
_RECORD = ("rep", "vehicle_make", "vehicle_model", "lead_source")  # as the model reads them


def _scored(
    values: list[tuple[Any, ...]],
    new: Sequence[tuple[int, LeadIn]],
    directory: DealershipDirectory,
    score_new: ScoreNew,
    *,
    linked: set[int],
) -> tuple[list[tuple[Any, ...]], list[dict[str, Any] | None]]:
    """The insert's values with the score columns added (linked leads are not scored), and the
    original leads' views."""
    originals = [i for i in range(len(values)) if i not in linked]
    places = []
    for i in originals:
        name = directory.name_for(new[i][1].dealership)
        places.append((name, directory.tz_for(name)))
    records = [
        _model_record(values[i], name, zone)
        for i, (name, zone) in zip(originals, places, strict=True)
    ]
    scores = dict(zip(originals, score_new(records), strict=True))
    scored = [(*value, *_score_tuple(scores.get(i))) for i, value in enumerate(values)]
    views: list[dict[str, Any] | None] = [None] * len(values)
    for i, (name, zone) in zip(originals, places, strict=True):
        view = dict(zip((*INSERT_COLUMNS, *STORED_SCORE_COLUMNS), scored[i], strict=True))
        for column in ("created_at", "contacted_at", "sold_at", "lost_at"):
            if view[column] is not None:
                view[column] = view[column].astimezone(UTC)  # as a read would give them
        view.update(dealership=name, timezone=str(zone))
        views[i] = view
    return scored, views


def _score_tuple(score: Mapping[str, Any] | None) -> tuple[Any, ...]:
    return _NOT_SCORED if score is None else tuple(score[name] for name in STORED_SCORE_COLUMNS)


def _model_record(value: Sequence[Any], dealership: str, zone: Any) -> dict[str, Any]:
    """A lead as `scoring` hands it to the model: times on the dealership's local clock."""
    record: dict[str, Any] = {name: value[_INDEX[name]] for name in _RECORD}
    for column in ("created_at", "contacted_at", "sold_at"):
        at = value[_INDEX[column]]
        record[column] = None if at is None else at.astimezone(zone).replace(tzinfo=None)
    price = value[_INDEX["vehicle_price"]]
    record["vehicle_price"] = None if price is None else float(price)
    record.update(dealership=dealership, timezone=str(zone), status=value[_INDEX["status"]])
    return record


def _event_rows(
    ids: Sequence[int], leads: Sequence[tuple[int, LeadIn]], now: datetime
) -> list[tuple[Any, ...]]:
    return [
        (lead_id, event.type.value, event.occurred_at, event.actor, event.note, now)
        for lead_id, (_, lead) in zip(ids, leads, strict=True)
        for event in lead.events
    ]


def _find_originals(
    db_session: Session, rows: Sequence[tuple[Any, ...]], window: timedelta
) -> tuple[dict[int, int], dict[int, int]]:
    """The same shopper (same email or phone, same vehicle, within `window`) already seen.

    Returns two maps from a row's index: to the id of a stored lead, and to the index of an
    earlier row of this chunk. Only an original (not itself linked) can be linked to.
    """
    emails = sorted({row[_EMAIL] for row in rows if row[_EMAIL]})
    phones = sorted({row[_PHONE] for row in rows if row[_PHONE]})
    index: dict[tuple[str, str], list[tuple[datetime, int, str | None, str | None]]] = {}
    for lead_id, email, phone, vin, key, created, linked_to in _stored_leads(
        db_session, emails, phones
    ):
        if linked_to is not None:
            continue  # only an original can be linked to
        # Stored ids are made negative so they sort apart from this chunk's row indexes.
        for contact in (("e", email), ("p", phone)):
            if contact[1]:
                index.setdefault(contact, []).append((created, -lead_id, vin, key))

    to_stored: dict[int, int] = {}
    to_sibling: dict[int, int] = {}
    for i in sorted(range(len(rows)), key=lambda k: rows[k][_CREATED]):
        row = rows[i]
        created, vin, key = row[_CREATED], row[_VIN], row[_KEY]
        contacts = [c for c in (("e", row[_EMAIL]), ("p", row[_PHONE])) if c[1]]
        best: tuple[datetime, int, str | None, str | None] | None = None
        for contact in contacts:
            for candidate in index.get(contact, ()):
                if abs(candidate[0] - created) <= window and same_vehicle(
                    vin, key, candidate[2], candidate[3]
                ):
                    if best is None or candidate[:2] < best[:2]:
                        best = candidate
        if best is None:  # an original: later rows of this chunk may link to it
            for contact in contacts:
                index.setdefault(contact, []).append((created, i, vin, key))
        elif best[1] < 0:
            to_stored[i] = -best[1]
        else:
            to_sibling[i] = best[1]
    return to_stored, to_sibling


def _stored_leads(
    db_session: Session, emails: Sequence[str], phones: Sequence[str]
) -> list[tuple[Any, ...]]:
    columns = (
        leads_table.c.id,
        leads_table.c.email_norm,
        leads_table.c.phone_norm,
        leads_table.c.vehicle_vin,
        leads_table.c.vehicle_key,
        leads_table.c.created_at,
        leads_table.c.duplicate_of_id,
    )
    found: dict[int, tuple[Any, ...]] = {}
    conn = db_session.connection()
    for values, column in ((emails, leads_table.c.email_norm), (phones, leads_table.c.phone_norm)):
        for start in range(0, len(values), IN_BATCH):
            # No condition on duplicate_of_id here: SQLite would pick that (unselective) index
            # over the contact's and scan the table.
            query = select(*columns).where(one_of(conn, column, values[start : start + IN_BATCH]))
            for row in conn.execute(query):
                found[row[0]] = tuple(row)
    return list(found.values())


# --- known leads -----------------------------------------------------------------------------


def _update_known(
    db_session: Session,
    ids: Sequence[int],
    known: Sequence[tuple[int, LeadIn]],
    directory: DealershipDirectory,
    now: datetime,
) -> None:
    if not known:
        return
    conn = db_session.connection()
    values = [
        dict(
            zip(
                LEAD_COLUMNS,
                lead_row(lead, directory.id_for(db_session=db_session, name=lead.dealership), now),
                strict=True,
            ),
            b_id=lead_id,
        )
        for lead_id, (_, lead) in zip(ids, known, strict=True)
    ]
    statement = (
        update(leads_table)
        .where(leads_table.c.id == bindparam("b_id"))
        .values({name: bindparam(name) for name in LEAD_COLUMNS})
    )
    conn.execute(statement, values)
    events = [dict(zip(EVENT_COLUMNS, row, strict=True)) for row in _event_rows(ids, known, now)]
    if events:
        conn.execute(_insert_ignoring_duplicates(db_session), events)
    refresh_derived(db_session, ids, [lead.status for _, lead in known])


def _insert_ignoring_duplicates(db_session: Session) -> Any:
    return insert_or_skip(db_session.get_bind().dialect.name, events_table)


def refresh_derived(
    db_session: Session, ids: Sequence[int], statuses: Sequence[LeadStatus | None]
) -> None:
    """A lead's status and stage times come from all its events, not just the latest input.
    An explicit status (from the source) wins over the derived one."""
    histories = event_histories(db_session, ids)
    rows = []
    for lead_id, explicit in zip(ids, statuses, strict=True):
        events = histories.get(lead_id, [])
        contacted, sold, lost = stage_times(events)
        rows.append(
            {
                "b_id": lead_id,
                "status": (explicit or status_from_events(events)).value,
                "contacted_at": contacted,
                "sold_at": sold,
                "lost_at": lost,
            }
        )
    statement = (
        update(leads_table)
        .where(leads_table.c.id == bindparam("b_id"))
        .values(
            {name: bindparam(name) for name in ("status", "contacted_at", "sold_at", "lost_at")}
        )
    )
    db_session.connection().execute(statement, rows)


def event_histories(db_session: Session, lead_ids: Sequence[int]) -> dict[int, list[LeadEventIn]]:
    histories: dict[int, list[LeadEventIn]] = {}
    conn = db_session.connection()
    columns = (events_table.c.lead_id, events_table.c.type, events_table.c.occurred_at)
    for start in range(0, len(lead_ids), IN_BATCH):
        query = select(*columns).where(
            one_of(conn, events_table.c.lead_id, lead_ids[start : start + IN_BATCH])
        )
        for lead_id, kind, occurred_at in conn.execute(query):
            histories.setdefault(lead_id, []).append(LeadEventIn(EventType(kind), occurred_at))
    return histories
