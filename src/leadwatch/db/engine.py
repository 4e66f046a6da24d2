"""Engine and session factory, built from settings at the entry points (never at import)."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {"timeout": 30}
        database = make_url(url).database
        if database and database != ":memory:":
            connect_args["factory"] = _gated_connection(_gate_of_file(database))
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No server-side prepared statements: a generic plan made while a table was still small
    # (a seq scan) would be reused for the rest of a big import.
    connect_args = {"prepare_threshold": None} if "+psycopg" in url else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while an import writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # 64 MiB of page cache (the default is 2 MiB): an import touches every index of a growing
    # table, and evicting those pages is most of what a big import would otherwise wait on.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def make_session_factory(
    engine: Engine, *, before_session: Callable[[], None] | None = None
) -> sessionmaker[Session]:
    """``before_session`` runs before every session (unit of work) begins: see `WriteGate`."""
    if before_session is None:
        return sessionmaker(bind=engine, expire_on_commit=False)
    wait = before_session

    class WaitingSession(Session):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            wait()
            super().__init__(*args, **kwargs)

    factory = sessionmaker(bind=engine, expire_on_commit=False, class_=WaitingSession)
    return cast(sessionmaker[Session], factory)


class WriteGate:
    """SQLite lets one transaction write at a time; the others wait by sleeping and retrying
    (1, 2, 5, 10 ... 100 ms between tries). Under load a writer loses that race again and
    again, and a shopper's intake waited seconds behind the background worker. So inside one
    process the writers of a database queue here instead: a transaction takes the gate at
    its first write and gives it back when it ends (commit, rollback, close), the next in line
    is handed it at once, and intake requests are served before background work. SQLite's
    own lock still keeps other processes (a CLI import, a `leadwatch worker`) in order.

    Two more things for the one-process set-up: `intake` marks the calling thread's writes as
    urgent and counts the requests in flight; `wait` holds background units of work back,
    up to ``max_wait`` seconds, while any is in flight (the worker only runs a little later,
    and its CPU stays out of intake's way too)."""

    def __init__(self, max_wait: float = 0.05, timeout: float = 30.0) -> None:
        self.max_wait = max_wait
        self.timeout = timeout  # as long as SQLite's own busy timeout
        self._mutex = threading.Lock()
        self._owner: int | None = None  # the thread holding the gate
        self._depth = 0  # its transactions holding it (a nested unit of work in one thread)
        self._urgent: deque[tuple[threading.Lock, int]] = deque()
        self._normal: deque[tuple[threading.Lock, int]] = deque()
        self._local = threading.local()
        self._in_flight = 0
        self._quiet = threading.Condition()

    # ---- intake first --------------------------------------------------------------------

    @contextmanager
    def intake(self) -> Iterator[None]:
        with self._quiet:
            self._in_flight += 1
        urgent, self._local.urgent = getattr(self._local, "urgent", False), True
        try:
            yield
        finally:
            self._local.urgent = urgent
            with self._quiet:
                self._in_flight -= 1
                if not self._in_flight:
                    self._quiet.notify_all()

    def wait(self) -> None:
        with self._quiet:
            self._quiet.wait_for(lambda: self._in_flight == 0, timeout=self.max_wait)

    # ---- one writer at a time ------------------------------------------------------------

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:  # a second connection of the same thread: let SQLite judge
                self._depth += 1
                return
            if self._owner is None and not self._urgent and not self._normal:
                self._owner, self._depth = me, 1
                return
            turn = threading.Lock()
            turn.acquire()
            queue = self._urgent if getattr(self._local, "urgent", False) else self._normal
            queue.append((turn, me))
        if turn.acquire(timeout=self.timeout):
            return  # handed over by `release`, which made this thread the owner
        with self._mutex:
            if self._owner == me:  # handed over just as the wait ran out
                return
            queue.remove((turn, me))
        raise sqlite3.OperationalError(
            f"database is locked: another transaction of this process held the write lock "
            f"for over {self.timeout:g} s"
        )

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth > 0:
                return
            queue = self._urgent or self._normal
            if not queue:
                self._owner, self._depth = None, 0
                return
            turn, thread = queue.popleft()
            self._owner, self._depth = thread, 1
            turn.release()


# Statements that never start a write transaction: they pass the gate.
_READS = ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "EXPLAIN")


def _gated_connection(gate: WriteGate) -> type[sqlite3.Connection]:
    """A sqlite3 connection whose transactions take ``gate`` at their first write (the moment
    SQLite itself would take its write lock) and give it back when they end."""

    class GatedCursor(sqlite3.Cursor):
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            connection = cast(GatedConnection, self.connection)
            connection.enter(sql)
            try:
                return super().execute(sql, parameters)
            finally:
                connection.leave()

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            connection = cast(GatedConnection, self.connection)
            connection.enter(sql)
            try:
                return super().executemany(sql, parameters)
            finally:
                connection.leave()

    class GatedConnection(sqlite3.Connection):
        holding = False

        def cursor(self, factory: Any = GatedCursor) -> Any:
            return super().cursor(factory)

        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            return cast(sqlite3.Cursor, self.cursor().execute(sql, parameters))

        def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
            return cast(sqlite3.Cursor, self.cursor().executemany(sql, parameters))

        def enter(self, sql: str) -> None:
            if not self.holding and not sql.lstrip()[:9].upper().startswith(_READS):
                gate.acquire()
                self.holding = True

        def leave(self) -> None:
            if self.holding and not self.in_transaction:  # autocommit, or the write failed
                self._give_back()

        def _give_back(self) -> None:
            self.holding = False
            gate.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                if self.holding:
                    self._give_back()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                if self.holding:
                    self._give_back()

        def close(self) -> None:
            try:
                super().close()
            finally:
                if self.holding:
                    self._give_back()

    return GatedConnection


_GATES: dict[str, WriteGate] = {}
_GATES_LOCK = threading.Lock()


def _gate_of_file(database: str) -> WriteGate:
    with _GATES_LOCK:
        return _GATES.setdefault(str(Path(database).resolve()), WriteGate())


def write_gate(engine: Engine) -> WriteGate:
    """The gate of ``engine``'s SQLite file, one per process (a fresh one for anything else:
    PostgreSQL locks rows, not the database, so there intake only gets `intake` and `wait`)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return WriteGate()
    return _gate_of_file(database)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commits when the block ends normally, rolls back otherwise."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_or_skip(dialect_name: str, table: Any, index_elements: list[str] | None = None) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, on SQLite or PostgreSQL (both speak it; SQLAlchemy
    keeps it per dialect). ``index_elements`` names the unique key the conflict is on."""
    from sqlalchemy.dialects import postgresql, sqlite

    module = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=index_elements)
