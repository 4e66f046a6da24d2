"""Benchmark: what the database alone takes to store an import's rows (the import's floor).

The same rows `leadwatch import` writes for the generated file (each lead's row and its
history events, ~3.9 per lead) are built first, untimed, in their final stored form. Then
only the driver's bulk path is timed: `executemany` on SQLite, `COPY ... FROM STDIN` of ready
text on PostgreSQL, in 5,000-lead transactions like the import. No parsing, no lookups, no
linking, no Python conversion inside the timed part.

Three layouts per backend:
- "schema": the tables as they are (secondary indexes and foreign keys maintained per row);
- "bulk load": secondary indexes and foreign keys dropped first, rebuilt after (timed), the
  classic bulk-load trick, which a live system could not use while serving;
- "bulk load, no events": the same with the lead rows alone, as if the stage history were
  not stored as events at all: the least any import of these leads could write.

If the database alone cannot store N rows in N / 100,000 seconds, no importer can reach the
100,000 rows/s target on this machine.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from leadwatch.core.leads import RejectedRecord
from leadwatch.intake.csv_reader import read_csv_leads
from leadwatch.leads import bulk
from leadwatch.leads.store import EVENT_COLUMNS, INSERT_COLUMNS, lead_row

sys.path.insert(0, str(Path(__file__).parent))
from bench_import import LEADWATCH, PG_ADMIN_URL, WORK, history_file  # noqa: E402

CHUNK = 5_000
SCHEMA, BULK_LOAD, LEADS_ONLY = "schema", "bulk load", "bulk load, no events"
ZONE = "America/Chicago"


@dataclass(frozen=True)
class FloorResult:
    backend: str
    layout: str
    leads: int
    events: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.leads / self.seconds


@dataclass
class Prepared:
    dealerships: list[str]
    leads: list[tuple[Any, ...]]  # INSERT_COLUMNS, dealership as an index into `dealerships`
    events: list[list[tuple[Any, ...]]]  # per lead: EVENT_COLUMNS without lead_id


def prepare(path: Path, rows: int) -> Prepared:
    """The stored rows of the file, built with the importer's own functions."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(ZONE)
    now = datetime.now(UTC)
    dealerships: dict[str, int] = {}
    leads: list[tuple[Any, ...]] = []
    events: list[list[tuple[Any, ...]]] = []
    with path.open(newline="", encoding="utf-8") as stream:
        for item in read_csv_leads(stream, source_system="floor", local_tz_for=lambda _: zone):
            if isinstance(item, RejectedRecord):
                continue
            lead = item.lead
            dealer = dealerships.setdefault(lead.dealership or "", len(dealerships))
            leads.append((*lead_row(lead, dealer, now), None, now))
            events.append(
                [(e.type.value, e.occurred_at, e.actor, e.note, now) for e in lead.events]
            )
            if len(leads) >= rows:
                break
    return Prepared(list(dealerships), leads, events)


def _chunks(prepared: Prepared) -> Iterator[tuple[int, int]]:
    for start in range(0, len(prepared.leads), CHUNK):
        yield start, min(start + CHUNK, len(prepared.leads))


# --- SQLite ----------------------------------------------------------------------------------


def _sqlite_values(columns: Sequence[str], table: Any, rows: list[tuple[Any, ...]]) -> list[Any]:
    converters = [bulk._sqlite_converter(table.c[c].type) for c in columns]
    return [
        tuple(v if f is None or v is None else f(v) for f, v in zip(converters, row, strict=True))
        for row in rows
    ]


def floor_sqlite(prepared: Prepared, layout: str) -> FloorResult:
    bulk_load, with_events = layout != SCHEMA, layout != LEADS_ONLY
    from leadwatch.leads.store import events_table, leads_table

    home = WORK / f"floor-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    env = {**os.environ, "LEADWATCH_HOME": str(home), "LEADWATCH_DATABASE_URL": ""}
    upgrade = [str(LEADWATCH), "db", "upgrade"]
    subprocess.run(upgrade, env=env, check=True, stdout=subprocess.DEVNULL)
    db = sqlite3.connect(home / "leadwatch.db", isolation_level=None)
    try:
        # The engine's own pragmas (db/engine.py).
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536"):
            db.execute(f"PRAGMA {pragma}")
        # Foreign keys checked as the engine does, except where bulk loading drops them.
        db.execute(f"PRAGMA foreign_keys={'OFF' if bulk_load else 'ON'}")
        for name in prepared.dealerships:
            db.execute(
                "INSERT INTO dealerships (name, timezone, created_at) VALUES (?, ?, ?)",
                (name, ZONE, bulk.sqlite_datetime(datetime.now(UTC))),
            )
        ids = [row[0] for row in db.execute("SELECT id FROM dealerships ORDER BY id")]
        leads = _sqlite_values(
            INSERT_COLUMNS,
            leads_table,
            [(*r[:2], ids[r[2]], *r[3:]) for r in prepared.leads],
        )
        event_columns = EVENT_COLUMNS[1:]
        events = [_sqlite_values(event_columns, events_table, e) for e in prepared.events]
        lead_sql = (
            f"INSERT INTO leads ({', '.join(INSERT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in INSERT_COLUMNS)})"
        )
        event_sql = (
            f"INSERT INTO lead_events ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
        )
        indexes = _sqlite_secondary_indexes(db) if bulk_load else []
        started = time.perf_counter()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        next_id = 1
        for start, end in _chunks(prepared):
            db.execute("BEGIN")
            db.executemany(lead_sql, leads[start:end])
            rows = [
                (lead_id, *event)
                for lead_id, lead_events in zip(
                    range(next_id, next_id + end - start), events[start:end], strict=True
                )
                for event in lead_events
            ]
            if with_events:
                db.executemany(event_sql, rows)
            db.execute("COMMIT")
            next_id += end - start
        if indexes:
            db.execute("BEGIN")
            for _, sql in indexes:
                db.execute(sql)
            db.execute("COMMIT")
        seconds = time.perf_counter() - started
        (count,) = db.execute("SELECT count(*) FROM lead_events").fetchone()
    finally:
        db.close()
        for child in home.iterdir():
            child.unlink()
        home.rmdir()
    return FloorResult("SQLite", layout, len(prepared.leads), count, seconds)


def _sqlite_secondary_indexes(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return list(
        db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('leads', 'lead_events') AND sql NOT LIKE 'CREATE UNIQUE%'"
        )
    )


# --- PostgreSQL ------------------------------------------------------------------------------


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value)
    elif isinstance(value, Decimal | int | float):
        return str(value)
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _copy_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(_copy_text(v) for v in row))
        buffer.write("\n")
    return buffer.getvalue().encode()


def floor_postgresql(prepared: Prepared, layout: str) -> FloorResult:
    bulk_load, with_events = layout != SCHEMA, layout != LEADS_ONLY
    import psycopg

    name = f"lw_floor_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name)
    env = {
        **os.environ,
        "LEADWATCH_DATABASE_URL": url.render_as_string(hide_password=False),
        "LEADWATCH_HOME": str(WORK / "pg-home"),
    }
    try:
        subprocess.run(
            [str(LEADWATCH), "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as db:
            for dealer in prepared.dealerships:
                db.execute(
                    "INSERT INTO dealerships (name, timezone, created_at) VALUES (%s, %s, now())",
                    (dealer, ZONE),
                )
            ids = [row[0] for row in db.execute("SELECT id FROM dealerships ORDER BY id")]
            db.commit()
            lead_text = [
                _copy_lines([(*r[:2], ids[r[2]], *r[3:]) for r in prepared.leads[start:end]])
                for start, end in _chunks(prepared)
            ]
            event_text = [
                _copy_lines(
                    [
                        (lead_id, *event)
                        for lead_id, lead_events in zip(
                            range(start + 1, end + 1), prepared.events[start:end], strict=True
                        )
                        for event in lead_events
                    ]
                )
                for start, end in _chunks(prepared)
            ]
            indexes, keys = _pg_secondary(db) if bulk_load else ([], [])
            started = time.perf_counter()
            for index, _ in indexes:
                db.execute(f'DROP INDEX "{index}"')
            for table, key, _ in keys:
                db.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{key}"')
            db.commit()
            lead_copy = f"COPY leads ({', '.join(INSERT_COLUMNS)}) FROM STDIN"
            event_copy = f"COPY lead_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
            for leads, events in zip(lead_text, event_text, strict=True):
                with db.cursor() as cursor:
                    with cursor.copy(lead_copy) as copy:
                        copy.write(leads)
                    if with_events:
                        with cursor.copy(event_copy) as copy:
                            copy.write(events)
                db.commit()
            for _, sql in indexes:
                db.execute(sql)
            for table, key, definition in keys:
                db.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{key}" {definition}')
            db.commit()
            seconds = time.perf_counter() - started
            row = db.execute("SELECT count(*) FROM lead_events").fetchone()
            count = row[0] if row else 0
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return FloorResult("PostgreSQL", layout, len(prepared.leads), count, seconds)


def _pg_secondary(db: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    indexes = db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('leads', 'lead_events') "
        "AND indexdef NOT LIKE 'CREATE UNIQUE%'"
    ).fetchall()
    keys = db.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid::regclass::text IN ('leads', 'lead_events')"
    ).fetchall()
    return list(indexes), list(keys)


# --- run -------------------------------------------------------------------------------------


def run(rows: int, backends: list[str]) -> list[FloorResult]:
    started = time.perf_counter()
    prepared = prepare(history_file(rows), rows)
    print(
        f"import floor: {len(prepared.leads):,} leads with "
        f"{sum(len(e) for e in prepared.events):,} events built in "
        f"{time.perf_counter() - started:.0f} s (untimed)",
        flush=True,
    )
    results = []
    for backend in backends:
        floor = floor_sqlite if backend == "sqlite" else floor_postgresql
        for layout in (SCHEMA, BULK_LOAD, LEADS_ONLY):
            result = floor(prepared, layout)
            results.append(result)
            print(
                f"import floor, {result.backend}, {result.layout}: {result.leads:,} leads and "
                f"{result.events:,} events in {result.seconds:.1f} s, "
                f"{result.rows_per_second:,.0f} leads/s",
                flush=True,
            )
    return results


def as_records(results: list[FloorResult]) -> list[dict[str, object]]:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return [
        {
            "benchmark": f"import floor ({r.layout})",
            "backend": r.backend,
            "rows": r.leads,
            "events": r.events,
            "seconds": round(r.seconds, 2),
            "rows_per_second": round(r.rows_per_second),
            "at": stamp,
        }
        for r in results
    ]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    for record in as_records(run(count, ["sqlite", "postgresql"])):
        print(json.dumps(record))
