"""The write gate on a real SQLite file: a second writer of the process waits its turn at
the gate (woken the moment the first commits) instead of in SQLite's sleep-and-retry busy
handler; readers never wait; every way a transaction ends gives the gate back."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
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


def _writing(engine: Engine, seconds: float) -> threading.Thread:
    """A thread that holds a write transaction open for ``seconds``, once it has begun."""
    started = threading.Event()
    thread = threading.Thread(target=_hold_write, args=(engine, seconds, started))
    thread.start()
    started.wait(5)
    return thread


def test_a_second_writer_waits_at_the_gate_not_in_sqlite(gated: Engine) -> None:
    first = _writing(gated, 0.3)
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
    first = _writing(gated, 0.5)
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


# ---- between processes ----------------------------------------------------------------------

_OTHER_PROCESS = """
import sys, time
from pathlib import Path
from sqlalchemy import text
from leadwatch.config import Settings
from leadwatch.db.engine import make_engine, write_gate

engine = make_engine(Settings(home=Path(sys.argv[1]), _env_file=None))
what, seconds = sys.argv[2], float(sys.argv[3])
if what == "write":
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('other process')"))
        print("holding", flush=True)
        time.sleep(seconds)
elif what == "stream":
    from tests.integration.test_write_gate_sqlite import intake_stream

    threads = intake_stream(engine, seconds)
    time.sleep(0.2)
    print("holding", flush=True)
    for thread in threads:
        thread.join()
else:
    with write_gate(engine).intake():
        print("holding", flush=True)
        time.sleep(seconds)
"""


def intake_stream(engine: Engine, seconds: float) -> list[threading.Thread]:
    """Intake after intake for ``seconds``, from two threads, so that one is always queued
    (started; the caller joins them)."""
    until = time.monotonic() + seconds

    def stream() -> None:
        while time.monotonic() < until:
            with write_gate(engine).intake(), engine.begin() as conn:
                conn.execute(text("INSERT INTO t (v) VALUES ('stream')"))
                time.sleep(0.005)

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for thread in threads:
        thread.start()
    return threads


def _other_process(home: Path, what: str, seconds: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _OTHER_PROCESS, str(home), what, str(seconds)],
        cwd=Path(__file__).resolve().parents[2],  # the checkout: the stream is imported from here
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "holding"
    return process


def test_a_writer_waits_for_another_process_at_the_gate_not_in_sqlite(
    gated: Engine, tmp_path: Path
) -> None:
    other = _other_process(tmp_path, "write", 0.5)
    began = time.monotonic()
    with gated.begin() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=0")  # SQLite alone would refuse at once
        conn.execute(text("INSERT INTO t (v) VALUES ('this process')"))
    waited = time.monotonic() - began
    other.communicate(timeout=10)
    assert other.returncode == 0
    assert 0.2 < waited < 3.0
    with gated.connect() as conn:
        assert conn.execute(text("SELECT v FROM t ORDER BY id")).scalars().all() == [
            "other process",
            "this process",
        ]


def test_api_processes_take_turns_at_the_write_lock(gated: Engine, tmp_path: Path) -> None:
    """Another process's intake stream keeps the write lock from one request to the next,
    but lets it go as soon as this process's intake waits for it: a turn, not the stream."""
    other = _other_process(tmp_path, "stream", 3.0)
    began = time.monotonic()
    with write_gate(gated).intake(), gated.begin() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        conn.execute(text("INSERT INTO t (v) VALUES ('this process')"))
    waited = time.monotonic() - began
    assert other.poll() is None  # the stream is still going
    other.communicate(timeout=10)
    assert other.returncode == 0
    assert waited < 0.5


def test_intake_first_but_background_work_is_not_starved(gated: Engine) -> None:
    """Intake goes before background work, but not forever: on a saturated server there is
    always an intake queued, and a request's own background write (its API token's last-use
    mark, once a minute) waited 14 s in a benchmark run, holding up its request."""
    threads = intake_stream(gated, 3.0)
    time.sleep(0.2)
    began = time.monotonic()
    _insert(gated, "background")
    waited = time.monotonic() - began
    for thread in threads:
        thread.join()
    assert waited < 1.0
    assert waited >= write_gate(gated).STARVE / 2  # intake still went first for a while


def test_intake_queued_behind_background_work_still_gets_its_turn(
    gated: Engine, tmp_path: Path
) -> None:
    """Background work here (a token's last-use mark, a settings save) waits for the write
    lock while another process's intake stream has it, and this process's intake queues
    behind that work. The stream must still let go: it did only for a waiting intake, so
    this process's intake waited out the whole stream (a priority inversion)."""
    other = _other_process(tmp_path, "stream", 3.0)
    began = time.monotonic()
    background = threading.Thread(target=_insert, args=(gated, "background"))
    background.start()
    time.sleep(0.05)  # the background writer owns this process's gate, and waits
    with write_gate(gated).intake(), gated.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('this process')"))
    waited = time.monotonic() - began
    background.join(timeout=10)
    assert other.poll() is None  # the stream is still going
    other.communicate(timeout=10)
    assert other.returncode == 0
    assert waited < 0.5


def _insert(engine: Engine, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})


def test_background_work_waits_for_intake_in_another_process(gated: Engine, tmp_path: Path) -> None:
    gate = write_gate(gated)
    gate.max_wait = 5.0
    other = _other_process(tmp_path, "intake", 0.5)
    began = time.monotonic()
    gate.wait()
    waited = time.monotonic() - began
    other.communicate(timeout=10)
    assert other.returncode == 0
    assert 0.2 < waited < 3.0
    began = time.monotonic()
    gate.wait()  # nobody's intake in flight now
    assert time.monotonic() - began < 0.1


def test_checkpoints_happen_off_the_commits_path(
    gated: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with gated.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    gate = write_gate(gated)
    monkeypatch.setattr(gate, "CHECKPOINT_BYTES", 256 * 1024)
    monkeypatch.setattr(gate, "CHECKPOINT_EVERY", 0.0)
    database = tmp_path / "leadwatch.db"
    before = database.stat().st_size
    with gated.begin() as conn:  # about 1 MiB into the log; this commit's look starts one
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 1000}] * 1000)
    deadline = time.monotonic() + 10
    while database.stat().st_size < before + 900_000:  # copied into the database file
        assert time.monotonic() < deadline, "the log was never checkpointed"
        time.sleep(0.05)


def test_a_long_log_is_cut_back_once_the_process_is_quiet(
    gated: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = write_gate(gated)
    monkeypatch.setattr(gate, "LONG_LOG_BYTES", 256 * 1024)
    monkeypatch.setattr(gate, "CHECKPOINT_EVERY", 0.0)
    monkeypatch.setattr(gate, "QUIET", 0.3)
    wal = tmp_path / "leadwatch.db-wal"
    with gated.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 1000}] * 1000)
    assert wal.stat().st_size > 900_000  # not cut while the commit's writer might go on
    deadline = time.monotonic() + 10
    while wal.stat().st_size > 0:
        assert time.monotonic() < deadline, "the long log was never cut back"
        time.sleep(0.05)
    with gated.connect() as conn:  # and nothing was lost on the way
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1000


def test_a_gate_no_engine_uses_is_dropped_with_its_lock_files(tmp_path: Path) -> None:
    import gc

    def lock_files_open() -> int:
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        return sum(t.startswith(str(tmp_path)) and t.endswith(".lock") for t in targets)

    engine = make_engine(Settings(home=tmp_path, _env_file=None))  # type: ignore[call-arg]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    assert lock_files_open() == 3  # the writer lock, and the intake flag opened twice
    engine.dispose()
    del engine, conn
    gc.collect()
    assert lock_files_open() == 0
