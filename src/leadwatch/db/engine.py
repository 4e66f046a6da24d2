"""Engine and session factory, built from settings at the entry points (never at import)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
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
    """``before_session`` runs before every session (unit of work) begins: see `IntakeFirst`."""
    if before_session is None:
        return sessionmaker(bind=engine, expire_on_commit=False)
    wait = before_session

    class WaitingSession(Session):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            wait()
            super().__init__(*args, **kwargs)

    factory = sessionmaker(bind=engine, expire_on_commit=False, class_=WaitingSession)
    return cast(sessionmaker[Session], factory)


class IntakeFirst:
    """SQLite lets one transaction write at a time. In the one-process set-up the background
    worker (due steps, deliveries) shares that lock with intake, where a shopper is waiting:
    so background units of work wait, up to ``max_wait`` seconds each, until no intake request
    is in flight. Intake itself never waits for this; the worker only runs a little later."""

    def __init__(self, max_wait: float = 0.05) -> None:
        self.max_wait = max_wait
        self._in_flight = 0
        self._quiet = threading.Condition()

    @contextmanager
    def intake(self) -> Iterator[None]:
        with self._quiet:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._quiet:
                self._in_flight -= 1
                if not self._in_flight:
                    self._quiet.notify_all()

    def wait(self) -> None:
        with self._quiet:
            self._quiet.wait_for(lambda: self._in_flight == 0, timeout=self.max_wait)


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
