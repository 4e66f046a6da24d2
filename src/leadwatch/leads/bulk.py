"""The fast path of an import: the driver's own bulk insert, still fully parameterised.

SQLite: `executemany` on the sqlite3 cursor. PostgreSQL: `COPY ... FROM STDIN` through psycopg.
Both run on the SQLAlchemy connection's own DBAPI connection, inside its transaction, so the
caller's unit of work still commits or rolls back everything. Values are converted here the way
SQLAlchemy's types would convert them, so the ORM reads these rows back exactly as its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Connection, Numeric, Table

from leadwatch.db.base import UTCDateTime


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert `rows` (tuples in `columns` order) into `table`."""
    if not rows:
        return
    target = _Target(conn, table, columns)
    if target.postgres:
        copy_sql = f"COPY {target.table} ({target.names}) FROM STDIN"
        with target.dbapi.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(target.convert(row))
        return
    cursor = target.dbapi.cursor()
    try:
        cursor.executemany(target.insert_sql(), [target.convert(row) for row in rows])
    finally:
        cursor.close()


def insert_returning_ids(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """Insert a few `rows` one statement each and return their ids, in order: an API intake
    learns its lead's id without reading it back."""
    target = _Target(conn, table, columns)
    sql = target.insert_sql() + " RETURNING id"
    ids: list[int] = []
    cursor = target.dbapi.cursor()
    try:
        for row in rows:
            cursor.execute(sql, target.convert(row))
            ids.append(int(cursor.fetchone()[0]))
    finally:
        cursor.close()
    return ids


class _Target:
    """A table and columns as the driver of `conn`'s own DBAPI connection takes them."""

    def __init__(self, conn: Connection, table: Table, columns: Sequence[str]) -> None:
        quote = conn.dialect.identifier_preparer.quote
        self.names = ", ".join(quote(c) for c in columns)
        self.table = quote(table.name)
        dbapi = conn.connection.driver_connection
        if dbapi is None:
            raise RuntimeError("connection is closed")
        self.dbapi: Any = dbapi
        self.postgres = conn.dialect.name == "postgresql"
        pick = _pg_converter if self.postgres else _sqlite_converter
        self.convert = _row_converter([pick(table.c[c].type) for c in columns])
        self.width = len(columns)

    def insert_sql(self) -> str:
        marks = ", ".join(["%s" if self.postgres else "?"] * self.width)
        return f"INSERT INTO {self.table} ({self.names}) VALUES ({marks})"


Converter = Callable[[Any], Any] | None


def _row_converter(converters: Sequence[Converter]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """Converts only the columns that need it; values repeated row after row (the import's
    `now`, say) are converted once."""
    plan = [(i, _remember_last(f)) for i, f in enumerate(converters) if f is not None]
    if not plan:
        return lambda row: row

    def convert(row: Sequence[Any]) -> Sequence[Any]:
        out = list(row)
        for i, f in plan:
            value = out[i]
            if value is not None:
                out[i] = f(value)
        return out

    return convert


def _remember_last(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    last: list[Any] = [object(), None]

    def convert(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        last[0], last[1] = value, f(value)
        return last[1]

    return convert


def _sqlite_converter(column_type: Any) -> Converter:
    if isinstance(column_type, UTCDateTime):
        return sqlite_datetime
    if isinstance(column_type, Numeric):
        return float  # what SQLAlchemy binds for Numeric on SQLite
    if isinstance(column_type, JSON):
        return json.dumps
    return None


def _pg_converter(column_type: Any) -> Converter:
    if isinstance(column_type, UTCDateTime):
        return _utc
    if isinstance(column_type, JSON):
        return json.dumps
    if isinstance(column_type, Numeric):
        return Decimal
    return None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column; attach a time zone first")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def sqlite_datetime(value: datetime) -> str:
    """SQLAlchemy's SQLite storage form for a UTC datetime: 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    return _utc(value).isoformat(" ", "microseconds")[:26]
