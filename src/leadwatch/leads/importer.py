"""The import job: parsed records in, one committed unit of work per chunk.

Used by `leadwatch import` and `demo`. Memory stays bounded by the chunk size whatever the
file size; a crash mid-file keeps the chunks already committed, and re-running is idempotent.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.core.leads import LeadIn, RejectedRecord
from leadwatch.db.engine import unit_of_work
from leadwatch.leads import service as lead_service
from leadwatch.leads.directory import DealershipDirectory
from leadwatch.leads.service import ImportCounts
from leadwatch.leads.store import StoredLead, store_leads

Parsed = tuple[int, LeadIn] | RejectedRecord


def ingest(
    *,
    db_session: Session,
    accepted: list[tuple[int, LeadIn]],
    rejected: list[RejectedRecord],
    directory: DealershipDirectory,
    source: str,
    batch_id: int | None,
    now: datetime,
    duplicate_window: timedelta,
) -> tuple[ImportCounts, list[StoredLead]]:
    """Store one chunk of accepted leads and quarantine its rejected records (no commit)."""
    stored = store_leads(
        db_session=db_session,
        leads=accepted,
        directory=directory,
        now=now,
        duplicate_window=duplicate_window,
    )
    lead_service.quarantine(
        db_session=db_session, records=rejected, source=source, batch_id=batch_id, now=now
    )
    return ImportCounts.of(stored, rejected), stored


def run_import(
    *,
    session_factory: sessionmaker[Session],
    records: Iterable[Parsed],
    directory: DealershipDirectory,
    source: str,
    fmt: str,
    clock: Callable[[], datetime],
    chunk_size: int = 5_000,
    duplicate_window: timedelta = timedelta(hours=72),
    on_chunk: Callable[[ImportCounts], None] | None = None,
    after_store: Callable[[Session, list[StoredLead]], None] | None = None,
) -> ImportCounts:
    """Store `records` in committed chunks. `after_store` runs inside each chunk's unit of
    work (intake scores the new leads there)."""
    with unit_of_work(session_factory) as db_session:
        batch_id = lead_service.start_batch(
            db_session=db_session, source=source, fmt=fmt, now=clock()
        ).id
        directory.load(db_session=db_session)

    total = ImportCounts()
    chunks = 0

    def write(accepted: list[tuple[int, LeadIn]], rejected: list[RejectedRecord]) -> None:
        nonlocal chunks
        chunks += 1
        with unit_of_work(session_factory) as db_session:
            if chunks & (chunks - 1) == 0:  # chunks 1, 2, 4, 8...
                refresh_statistics(db_session)
            counts, stored = ingest(
                db_session=db_session,
                accepted=accepted,
                rejected=rejected,
                directory=directory,
                source=source,
                batch_id=batch_id,
                now=clock(),
                duplicate_window=duplicate_window,
            )
            _merge(total, counts)
            if after_store is not None:
                after_store(db_session, stored)
            lead_service.record_batch_counts(
                db_session=db_session, batch_id=batch_id, counts=total, finished_at=None
            )
        if on_chunk is not None:
            on_chunk(total)

    # An import allocates millions of short-lived, acyclic objects, which the cyclic collector
    # would rescan over and over: it runs once per chunk instead. (A writer thread overlapping
    # parsing with storing was measured slower: both halves need the GIL most of the time.)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for accepted, rejected in _chunks(records, chunk_size):
            write(accepted, rejected)
            gc.collect(1)
    finally:
        if gc_was_enabled:
            gc.enable()
    with unit_of_work(session_factory) as db_session:
        lead_service.record_batch_counts(
            db_session=db_session, batch_id=batch_id, counts=total, finished_at=clock()
        )
    return total


def _chunks(
    records: Iterable[Parsed], size: int
) -> Iterator[tuple[list[tuple[int, LeadIn]], list[RejectedRecord]]]:
    accepted: list[tuple[int, LeadIn]] = []
    rejected: list[RejectedRecord] = []
    for record in records:
        if isinstance(record, RejectedRecord):
            rejected.append(record)
        else:
            accepted.append(record)
        if len(accepted) + len(rejected) >= size:
            yield accepted, rejected
            accepted, rejected = [], []
    yield accepted, rejected  # the last, possibly empty: the batch row is still brought up to date


def refresh_statistics(db_session: Session) -> None:
    """PostgreSQL plans the import's lookups from table statistics; left as they were when the
    table was small, it picks sequential scans that grow with the table. Refreshing them now and
    then (at doubling intervals) keeps the lookups on their indexes."""
    if db_session.get_bind().dialect.name == "postgresql":
        db_session.execute(text("ANALYZE leads, lead_events"))


def _merge(total: ImportCounts, part: ImportCounts) -> None:
    total.imported += part.imported
    total.updated += part.updated
    total.linked += part.linked
    total.rejected += part.rejected
    total.errors.extend(part.errors)
