"""`leadwatch serve`'s worker in a child process: it really works the outbox, runs below the
server's CPU priority, is started again when it dies, stops when asked, and leaves when its
server is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.db.engine import make_engine, make_session_factory
from leadwatch.db.migrate import upgrade
from leadwatch.escalations.worker_process import NICE, WorkerProcess
from tests.integration.test_dispatcher import add_messages, statuses
from tests.integration.test_serve import running


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    settings = Settings(home=tmp_path, worker_poll_seconds=0.1, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings)
    upgrade(engine)
    yield settings, make_session_factory(engine)
    engine.dispose()


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.1)


def test_the_child_delivers_below_the_servers_priority_and_comes_back_after_a_kill(
    home: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, factory = home
    add_messages(factory, 3, channel="in_app", address="dana", at=datetime.now(UTC))
    worker = WorkerProcess(settings)
    worker.start()
    try:
        first = worker.pid
        assert first is not None and first != os.getpid()
        _until(lambda: statuses(factory)["sent"] == 3, 30, "the child sent the outbox")
        assert (
            os.getpriority(os.PRIO_PROCESS, first) == os.getpriority(os.PRIO_PROCESS, 0) + NICE
            or os.getpriority(os.PRIO_PROCESS, first) == 19
        )
        # Every thread of the child (its dispatcher's senders too) on CPU time nothing else
        # wants; this process, the server, is left as it was.
        threads = [int(t.name) for t in Path(f"/proc/{first}/task").iterdir()]
        assert len(threads) > 1
        assert {os.sched_getscheduler(t) for t in threads} == {os.SCHED_IDLE}
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        os.kill(first, signal.SIGKILL)
        _until(lambda: worker.pid not in (None, first), 15, "a new child after kill -9")
        assert worker.restarts == 1
        add_messages(factory, 2, channel="in_app", address="dana", at=datetime.now(UTC))
        _until(lambda: statuses(factory)["sent"] == 5, 30, "the new child sent the rest")
    finally:
        worker.stop()
    last = worker.pid
    assert last is not None and not running(last)


_PARENT = """
import sys, time
from pathlib import Path
from leadwatch.config import Settings
from leadwatch.escalations.worker_process import WorkerProcess

worker = WorkerProcess(Settings(home=Path(sys.argv[1]), _env_file=None))
worker.start()
print(worker.pid, flush=True)
time.sleep(120)
"""


def test_the_child_leaves_when_its_server_is_killed(
    home: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, _ = home
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(settings.home)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert running(child)
        parent.kill()
        parent.communicate(timeout=10)
        _until(lambda: not running(child), 15, "the orphaned child left")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.communicate(timeout=10)


def test_a_started_server_keeps_its_heap_out_of_the_collectors_way() -> None:
    code = (
        "import gc; from leadwatch.escalations.worker_process import settle_heap; "
        "before = gc.get_freeze_count(); settle_heap(); "
        "assert before == 0 and gc.get_freeze_count() > 10_000, gc.get_freeze_count()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
