"""Lead services: dealerships, quarantine, import batches, reading leads, appending events.
Keyword-only functions that take the session and never commit. The bulk write path of the
intakes is `leads.store.store_leads`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from leadwatch.core.leads import (
    EventType,
    LeadEventIn,
    RecordError,
    RejectedRecord,
    status_from_events,
)
from leadwatch.leads.directory import DealershipDirectory, ensure_dealership
from leadwatch.leads.models import Dealership, ImportBatch, Lead, LeadEvent, QuarantinedRecord
from leadwatch.leads.store import StoredLead, event_histories, refresh_derived

__all__ = ["DealershipDirectory", "StoredLead"]

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

    @classmethod
    def of(cls, stored: Iterable[StoredLead], rejected: Sequence[RejectedRecord]) -> ImportCounts:
        counts = cls()
        counts.add_stored(stored)
        counts.add_rejected(rejected)
        return counts

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


def set_dealership_timezone(*, db_session: Session, name: str, timezone: str) -> Dealership:
    ZoneInfo(timezone)
    dealer = ensure_dealership(db_session=db_session, name=name, timezone=timezone)
    dealer.timezone = timezone
    return dealer


def list_dealerships(*, db_session: Session) -> list[Dealership]:
    return list(db_session.scalars(select(Dealership).order_by(Dealership.name)))


# --- rejected records and import batches ---------------------------------------------------


_INSERT_BATCH = insert(cast(Table, ImportBatch.__table__)).returning(ImportBatch.__table__.c.id)


def start_batch(*, db_session: Session, source: str, fmt: str, now: datetime) -> ImportBatch:
    batch = ImportBatch(source=source[:500], format=fmt, started_at=now)
    db_session.add(batch)
    db_session.flush()
    return batch


def record_finished_batch(
    *,
    db_session: Session,
    source: str,
    fmt: str,
    started_at: datetime,
    counts: ImportCounts,
    finished_at: datetime,
) -> int:
    """A request's batch, written once it is over: one statement, after its leads (which do
    not refer to it), so that its transaction's first write comes as late as it can."""
    values = {
        "source": source[:500],
        "format": fmt,
        "started_at": started_at,
        "finished_at": finished_at,
        "imported": counts.imported,
        "updated": counts.updated,
        "linked": counts.linked,
        "rejected": counts.rejected,
    }
    return int(db_session.execute(_INSERT_BATCH, values).scalar_one())


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
    rep: str | None = None,
    dealership_id: int | None = None,
    risk_level: str | None = None,
) -> tuple[list[Lead], int]:
    query = select(Lead)
    if rep is not None:
        query = query.where(func.lower(Lead.rep) == rep.lower())
    if dealership_id is not None:
        query = query.where(Lead.dealership_id == dealership_id)
    if risk_level:
        query = query.where(Lead.risk_level == risk_level)
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
    db_session.flush()
    history = event_histories(db_session, [lead_id]).get(lead_id, [])
    refresh_derived(db_session, [lead_id], [status_from_events(history)])
    db_session.refresh(lead)
    return row, True
