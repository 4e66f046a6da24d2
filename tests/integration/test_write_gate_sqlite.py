"""The write gate on a real SQLite file: a second writer of the process waits its turn at
the gate (woken the moment the first commits) instead of in SQLite's sleep-and-retry busy
handler; readers never wait; every way a transaction ends gives the gate back."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from leadwatch.config import Settings
from leadwatch.db.engine import make_engine, write_gate


@pytest.fixture
def gated(tmp_path: Path) -> Engine:
    engine = make_engine(Settings(home=tmp_path, _env_file=None))  # type: ignore[call-arg]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return engine


def _hold_write(engine: Engine, seconds: float, started: threading.Event) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('first')"))
        started.set()
        time.sleep(seconds)


def test_a_second_writer_waits_at_the_gate_not_in_sqlite(gated: Engine) -> None:
    started = threading.Event()
    first = threading.Thread(target=_hold_write, args=(gated, 0.3, started))
    first.start()
    started.wait(5)
    began = time.monotonic()
    with gated.begin() as conn:
        # Without the gate this would fail at once: SQLite's own wait is switched off here.
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        conn.execute(text("INSERT INTO t (v) VALUES ('second')"))
    waited = time.monotonic() - began
    first.join(5)
    assert 0.2 < waited < 2.0
    with gated.connect() as conn:
        assert conn.execute(text("SELECT v FROM t ORDER BY id")).scalars().all() == [
            "first",
            "second",
        ]


def test_readers_do_not_wait_for_a_writer(gated: Engine) -> None:
    started = threading.Event()
    first = threading.Thread(target=_hold_write, args=(gated, 0.5, started))
    first.start()
    started.wait(5)
    began = time.monotonic()
    with gated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0  # not committed yet
    assert time.monotonic() - began < 0.2
    first.join(5)


@pytest.mark.parametrize("ending", ["commit", "rollback", "close", "failed statement"])
def test_every_ending_gives_the_gate_back(gated: Engine, ending: str) -> None:
    raw = gated.raw_connection()
    dbapi = raw.driver_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    if ending == "failed statement":
        with pytest.raises(sqlite3.OperationalError):
            cursor.execute("INSERT INTO no_such_table VALUES (1)")
    else:
        cursor.execute("INSERT INTO t (v) VALUES ('x')")
        assert dbapi.in_transaction
        if ending == "close":
            raw.invalidate()  # closes the DBAPI connection under it
        else:
            getattr(dbapi, ending)()
    if ending != "close":
        raw.close()
    done = threading.Event()

    def other_writer() -> None:
        with gated.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES ('y')"))
        done.set()

    threading.Thread(target=other_writer).start()
    assert done.wait(2), f"the gate was not given back after {ending}"


def test_one_gate_per_database_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    one, two = make_engine(settings), make_engine(settings)
    assert write_gate(one) is write_gate(two)
    other = make_engine(Settings(home=tmp_path / "other", _env_file=None))  # type: ignore[call-arg]
    assert write_gate(other) is not write_gate(one)
