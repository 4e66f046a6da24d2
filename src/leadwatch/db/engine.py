"""Engine and session factory, built from settings at the entry points (never at import)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.filelocks import close_all, fcntl, open_lock_file, try_flock

log = logging.getLogger(__name__)


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, Any] = {"timeout": 30}
        database = _database_file(make_url(url).database)
        if database is not None:
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
    if isinstance(getattr(dbapi_connection, "gate", None), WriteGate):
        # Checkpoints (copying the log into the database file, and syncing it) are the gate's
        # job, off every transaction's path; otherwise the commit that fills the log to 1,000
        # pages pays for it, holding up the writers behind it. (No journal_size_limit either:
        # cutting a long log back stalled every writer for 100 ms or more; see `_trim`.)
        cursor.execute("PRAGMA wal_autocheckpoint=0")
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
    again, and a shopper's intake waited seconds behind the background worker. So the
    writers of a database queue here instead: a transaction takes the gate at its first
    write and gives it back when it ends (commit, rollback, close).

    - Inside a process, waiters queue in turn and the next is handed the gate at once;
      intake requests are served before background work (which waits no longer than
      ``STARVE`` for them).
    - Between processes (`serve`, its worker, `leadwatch worker`, a CLI import), the owner
      also holds a lock on ``<database>-writer.lock``, asked for every half millisecond
      while another process has it. It is kept when the gate passes to another intake,
      unless another process's intake is waiting for it (a shared lock on
      ``<database>-writer.wait`` says so): then it is let go, and this process's next
      writer lets that one go first, so that API processes take turns at the write lock and
      none waits out another's whole burst.
    - `intake` marks the calling thread's writes as urgent, and while any intake request is
      in flight holds a shared lock on ``<database>-intake.lock``. `wait`, called before each
      background unit of work, holds it back up to ``max_wait`` seconds while intake is in
      flight in this process or any other (the worker only runs a little later, and its CPU
      stays out of intake's way too).

    - After a transaction ends, the gate looks (at most every 0.1 s) at the size of the
      write-ahead log, and past 4 MiB checkpoints it from a short-lived thread, in PASSIVE
      mode: that waits for no reader or writer, and nobody waits for it. Under steady load
      the log file can grow long (it is reused from its start, not cut back); once this
      process has written nothing for a second, it is emptied and cut to nothing, taking a
      turn at the gate like any writer.

    Without ``lock_path`` (an in-memory database, or PostgreSQL, which locks rows, not the
    database) the gate works inside the process only."""

    POLL = 0.0005
    YIELD = 0.005  # how long a process that let the writer lock go waits for the other
    STARVE = 0.1  # background work waits no longer than this for intake in this process
    CHECKPOINT_BYTES = 4 * 1024 * 1024  # SQLite's own default: 1,000 pages of 4 KiB
    CHECKPOINT_EVERY = 0.1  # seconds between looks at the log's size
    LONG_LOG_BYTES = 64 * 1024 * 1024  # a log longer than this is cut back when quiet
    QUIET = 1.0  # seconds without a transaction ending here

    def __init__(
        self, max_wait: float = 0.05, timeout: float = 30.0, *, lock_path: Path | None = None
    ) -> None:
        self.max_wait = max_wait
        self.timeout = timeout  # as long as SQLite's own busy timeout
        self._mutex = threading.Lock()
        self._owner: int | None = None  # the thread holding the gate
        self._depth = 0  # its transactions holding it (a nested unit of work in one thread)
        # Waiters: (their turn, their thread, when they began waiting).
        self._urgent: deque[tuple[threading.Lock, int, float]] = deque()
        self._normal: deque[tuple[threading.Lock, int, float]] = deque()
        self._local = threading.local()
        self._in_flight = 0
        self._quiet = threading.Condition()
        self._writer_fd = self._waiting_fd = self._intake_fd = self._probe_fd = -1
        self._os_held = False  # the writer lock file, held by this process's owner
        self._yielded = False  # it was let go for another process's waiting intake
        self._database = lock_path
        self._looked_at = self._released_at = 0.0
        self._checkpointing = threading.Lock()
        self._trim_armed = False
        if lock_path is not None and fcntl is not None:
            self._writer_fd = open_lock_file(lock_path.with_name(lock_path.name + "-writer.lock"))
            self._waiting_fd = open_lock_file(lock_path.with_name(lock_path.name + "-writer.wait"))
            intake = lock_path.with_name(lock_path.name + "-intake.lock")
            # Two open files: flock locks belong to the open file, so probing on the second
            # sees this process's own intake too, like any other process's.
            self._intake_fd, self._probe_fd = open_lock_file(intake), open_lock_file(intake)
            fds = (self._writer_fd, self._waiting_fd, self._intake_fd, self._probe_fd)
            weakref.finalize(self, close_all, fds)

    # ---- intake first --------------------------------------------------------------------

    @contextmanager
    def intake(self) -> Iterator[None]:
        with self._quiet:
            self._in_flight += 1
            if self._in_flight == 1 and self._intake_fd >= 0:
                fcntl.flock(self._intake_fd, fcntl.LOCK_SH)
        urgent, self._local.urgent = getattr(self._local, "urgent", False), True
        try:
            yield
        finally:
            self._local.urgent = urgent
            with self._quiet:
                self._in_flight -= 1
                if not self._in_flight:
                    if self._intake_fd >= 0:
                        fcntl.flock(self._intake_fd, fcntl.LOCK_UN)
                    self._quiet.notify_all()

    def wait(self) -> None:
        deadline = time.monotonic() + self.max_wait
        with self._quiet:
            self._quiet.wait_for(lambda: self._in_flight == 0, timeout=self.max_wait)
        if self._probe_fd < 0:
            return
        while not try_flock(self._probe_fd, fcntl.LOCK_EX):  # another process's intake
            if time.monotonic() >= deadline:
                return
            time.sleep(self.POLL * 2)
        fcntl.flock(self._probe_fd, fcntl.LOCK_UN)

    # ---- one writer at a time ------------------------------------------------------------

    def acquire(self) -> None:
        me = threading.get_ident()
        began = time.monotonic()
        with self._mutex:
            if self._owner == me:  # a second connection of the same thread: let SQLite judge
                self._depth += 1
                return
            if self._owner is None and not self._urgent and not self._normal:
                self._owner, self._depth = me, 1
                turn = None
            else:
                turn = threading.Lock()
                turn.acquire()
                queue = self._urgent if getattr(self._local, "urgent", False) else self._normal
                waiter = (turn, me, began)
                queue.append(waiter)
        if turn is not None and not turn.acquire(timeout=self.timeout):
            with self._mutex:
                handed = self._owner == me  # handed over just as the wait ran out
                if not handed:
                    queue.remove(waiter)
            if not handed:
                raise sqlite3.OperationalError(
                    "database is locked: another transaction of this process held the write "
                    f"lock for over {self.timeout:g} s"
                )
        # This thread owns the gate (`release` handed it over, or it was free).
        if self._writer_fd >= 0 and not self._os_held:
            self._take_writer_lock(began + self.timeout)

    def _take_writer_lock(self, deadline: float) -> None:
        if self._yielded:  # let go for another process's intake: that one goes first
            self._yielded = False
            give_until = time.monotonic() + self.YIELD
            while self._others_waiting() and time.monotonic() < give_until:
                time.sleep(self.POLL / 5)
        if try_flock(self._writer_fd, fcntl.LOCK_EX):
            self._os_held = True
            return
        # Only the gate's owner thread gets here, so one "waiting" lock per process will do.
        # Only intake says it waits (background work does not make intake elsewhere yield),
        # but that includes intake queued here behind a background owner: otherwise that
        # intake would wait out another process's whole stream (a priority inversion).
        urgent = getattr(self._local, "urgent", False)
        said = False
        try:
            while not try_flock(self._writer_fd, fcntl.LOCK_EX):
                if not said and (urgent or self._urgent):
                    fcntl.flock(self._waiting_fd, fcntl.LOCK_SH)
                    said = True
                    continue  # asked at once, not after a poll's sleep
                if time.monotonic() >= deadline:
                    self.release()  # the next in this process may have better luck
                    raise sqlite3.OperationalError(
                        "database is locked: another LeadWatch process (an import, a worker?) "
                        f"held the write lock for over {self.timeout:g} s"
                    )
                time.sleep(self.POLL)
        finally:
            if said:
                fcntl.flock(self._waiting_fd, fcntl.LOCK_UN)
        self._os_held = True

    def _others_waiting(self) -> bool:
        """Whether another process waits for the writer lock (holds the "waiting" file)."""
        if not try_flock(self._waiting_fd, fcntl.LOCK_EX):
            return True
        fcntl.flock(self._waiting_fd, fcntl.LOCK_UN)
        return False

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth > 0:
                return
            # The writer lock file stays with the process only for the next intake.
            if self._os_held and (not self._urgent or self._others_waiting()):
                fcntl.flock(self._writer_fd, fcntl.LOCK_UN)
                self._os_held = False
                self._yielded = bool(self._urgent)
            queue = self._next_queue()
            if not queue:
                self._owner, self._depth = None, 0
            else:
                turn, thread, _ = queue.popleft()
                self._owner, self._depth = thread, 1
                turn.release()
        if self._database is not None:
            self._maybe_checkpoint()

    def _next_queue(self) -> deque[tuple[threading.Lock, int, float]]:
        """Intake first; but background work that has waited STARVE seconds goes next, or on a
        saturated server (always an intake queued) it would wait for as long as the load
        lasts, and with it any request that writes outside intake (a token's last-use mark)."""
        normal = self._normal
        if normal and (not self._urgent or time.monotonic() - normal[0][2] >= self.STARVE):
            return normal
        return self._urgent

    def _maybe_checkpoint(self) -> None:
        now = self._released_at = time.monotonic()
        if now - self._looked_at < self.CHECKPOINT_EVERY:
            return
        self._looked_at = now
        assert self._database is not None
        wal = self._database.with_name(self._database.name + "-wal")
        try:
            size = wal.stat().st_size
        except OSError:
            return
        if size > self.CHECKPOINT_BYTES and self._checkpointing.acquire(blocking=False):
            threading.Thread(target=self._checkpoint, name="wal-checkpoint", daemon=True).start()
        if size > self.LONG_LOG_BYTES and not self._trim_armed:
            self._trim_armed = True
            self._trim_later()

    def _connect(self, timeout: float) -> sqlite3.Connection:
        """A plain connection for checkpoints. Read-write, never create: a database deleted
        meanwhile (a test's, a benchmark's) must not come back as an empty file."""
        assert self._database is not None
        uri = f"{self._database.as_uri()}?mode=rw"
        return sqlite3.connect(uri, uri=True, timeout=timeout)

    def _trim_later(self) -> None:
        timer = threading.Timer(self.QUIET, self._trim)
        timer.daemon = True
        timer.start()

    def _trim(self) -> None:
        """Empty the log and cut the file to nothing, at a quiet moment."""
        assert self._database is not None
        if time.monotonic() - self._released_at < self.QUIET:
            self._trim_later()  # still busy here: look again in a while
            return
        self._trim_armed = False
        try:
            self.acquire()  # intake waiting here goes first; other processes' writers wait
        except sqlite3.OperationalError:
            return
        try:
            # busy_timeout 0: if another process is reading, this is a plain checkpoint
            # that leaves the file as it is, and the next quiet moment tries again.
            self._run_checkpoint("TRUNCATE", timeout=0)
        finally:
            self.release()

    def _checkpoint(self) -> None:
        try:
            self._run_checkpoint("PASSIVE", timeout=30)
        finally:
            self._checkpointing.release()

    def _run_checkpoint(self, mode: str, *, timeout: float) -> None:
        try:
            connection = self._connect(timeout=timeout)
            try:
                connection.execute(f"PRAGMA wal_checkpoint({mode})")
            finally:
                connection.close()
        except sqlite3.Error as exc:  # the next look tries again
            log.warning("%s checkpoint of %s failed: %s", mode, self._database, exc)


# Statements that never start a write transaction: they pass the gate.
_READS = ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "EXPLAIN")


def _gated_connection(gate: WriteGate) -> type[sqlite3.Connection]:
    """A sqlite3 connection whose transactions take ``gate`` at their first write (the moment
    SQLite itself would take its write lock) and give it back when they end."""

    class GatedCursor(sqlite3.Cursor):
        def execute(self, sql: str, parameters: Any = (), /) -> Any:
            return self._gated(sql, super().execute, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> Any:
            return self._gated(sql, super().executemany, parameters)

        def _gated(self, sql: str, run: Callable[[str, Any], Any], parameters: Any) -> Any:
            connection = cast(GatedConnection, self.connection)
            connection.enter(sql)
            try:
                return run(sql, parameters)
            finally:
                connection.leave()

    class GatedConnection(sqlite3.Connection):
        holding = False
        gate: WriteGate

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

        # Every way a transaction ends gives the gate back, whatever happens on the way.
        def commit(self) -> None:
            self._end(super().commit)

        def rollback(self) -> None:
            self._end(super().rollback)

        def close(self) -> None:
            self._end(super().close)

        def _end(self, finish: Callable[[], None]) -> None:
            try:
                finish()
            finally:
                if self.holding:
                    self._give_back()

    GatedConnection.gate = gate
    return GatedConnection


# One gate per database file in this process, for as long as an engine (or the app) holds it:
# a gate no longer used is dropped, and its lock files closed.
_GATES: weakref.WeakValueDictionary[str, WriteGate] = weakref.WeakValueDictionary()
_GATES_LOCK = threading.Lock()


def _gate_of_file(database: str) -> WriteGate:
    path = Path(database).resolve()
    with _GATES_LOCK:
        gate = _GATES.get(str(path))
        if gate is None:
            gate = _GATES[str(path)] = WriteGate(lock_path=path)
        return gate


def write_gate(engine: Engine) -> WriteGate:
    """The gate of ``engine``'s SQLite file, one per process (a fresh one for anything else:
    PostgreSQL locks rows, not the database, so there intake only gets `intake` and `wait`)."""
    database = _database_file(engine.url.database)
    if engine.dialect.name != "sqlite" or database is None:
        return WriteGate()
    return _gate_of_file(database)


def _database_file(database: str | None) -> str | None:
    """A SQLite URL's file, or None for an in-memory database (nothing to share a lock with)."""
    return database if database and database != ":memory:" else None


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
