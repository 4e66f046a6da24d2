"""The write gate on its own: intake goes first, background work waits a little but is never
starved, writers are served in turn, and a gate held too long gives a clear error."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from leadwatch.db.engine import WriteGate, make_session_factory, unit_of_work


def test_background_work_waits_for_intake_to_finish() -> None:
    gate = WriteGate(max_wait=5.0)
    waited: list[float] = []

    def background() -> None:
        began = time.monotonic()
        gate.wait()
        waited.append(time.monotonic() - began)

    with gate.intake():
        worker = threading.Thread(target=background)
        worker.start()
        time.sleep(0.2)
        assert not waited  # still waiting: a shopper's lead is being stored
    worker.join(timeout=5)
    assert waited and 0.15 < waited[0] < 2.0  # went as soon as intake was done


def test_background_work_is_not_starved() -> None:
    gate = WriteGate(max_wait=0.1)
    with gate.intake():
        began = time.monotonic()
        gate.wait()  # intake never ends here: the wait gives up at its limit
        assert 0.09 < time.monotonic() - began < 1.0
    began = time.monotonic()
    gate.wait()  # nothing in flight: no wait at all
    assert time.monotonic() - began < 0.05


def test_a_waiting_session_factory_asks_the_gate_before_each_unit_of_work() -> None:
    asked: list[int] = []
    engine = create_engine("sqlite://")
    factory = make_session_factory(engine, before_session=lambda: asked.append(1))
    for _ in range(3):
        with unit_of_work(factory) as db_session:
            assert db_session.execute(text("SELECT 1")).scalar() == 1
    assert len(asked) == 3


def _queue(gate: WriteGate, name: str, order: list[str], *, urgent: bool) -> threading.Thread:
    def run() -> None:
        if urgent:
            with gate.intake():
                gate.acquire()
        else:
            gate.acquire()
        order.append(name)
        time.sleep(0.02)
        gate.release()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def test_writers_are_served_in_turn_and_intake_first() -> None:
    gate = WriteGate()
    gate.STARVE = 60.0  # no background waiter here waits long enough to go first
    order: list[str] = []
    gate.acquire()  # held: everyone below queues
    threads = []
    for name, urgent in [("bg1", False), ("bg2", False), ("in1", True), ("in2", True)]:
        threads.append(_queue(gate, name, order, urgent=urgent))
        time.sleep(0.05)  # a known arrival order
    assert order == []
    gate.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == ["in1", "in2", "bg1", "bg2"]


@pytest.mark.parametrize(("waited", "expected"), [(0.0, ["in", "bg"]), (0.3, ["bg", "in"])])
def test_background_work_that_waited_starve_goes_before_intake(
    waited: float, expected: list[str]
) -> None:
    """Intake first, but background work that has waited STARVE seconds goes next: on a
    saturated server an intake is always queued, and it would otherwise wait for ever."""
    gate = WriteGate()
    gate.STARVE = 0.2
    order: list[str] = []
    gate.acquire()
    threads = [_queue(gate, "bg", order, urgent=False)]
    time.sleep(0.02 + waited)
    threads.append(_queue(gate, "in", order, urgent=True))
    time.sleep(0.02)
    gate.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == expected


def test_the_holding_thread_passes_again_and_gives_back_only_at_the_last_release() -> None:
    gate = WriteGate()
    gate.acquire()
    gate.acquire()  # a second connection of the same thread: no deadlock with itself
    order: list[str] = []
    other = _queue(gate, "other", order, urgent=False)
    gate.release()
    time.sleep(0.1)
    assert order == []  # still held once
    gate.release()
    other.join(timeout=5)
    assert order == ["other"]


def test_a_gate_held_too_long_is_a_clear_error_and_the_queue_moves_on() -> None:
    gate = WriteGate(timeout=0.2)
    gate.acquire()
    failures: list[Exception] = []

    def impatient() -> None:
        try:
            gate.acquire()
        except sqlite3.OperationalError as exc:
            failures.append(exc)

    thread = threading.Thread(target=impatient)
    thread.start()
    thread.join(timeout=5)
    assert failures and "database is locked" in str(failures[0])
    assert "over 0.2 s" in str(failures[0])  # says how long it waited
    gate.release()
    order: list[str] = []
    _queue(gate, "next", order, urgent=False).join(timeout=5)  # the gave-up waiter left no gap
    assert order == ["next"]


@pytest.mark.parametrize("urgent", [False, True])
def test_a_free_gate_is_taken_at_once(urgent: bool) -> None:
    gate = WriteGate()
    began = time.monotonic()
    if urgent:
        with gate.intake():
            gate.acquire()
    else:
        gate.acquire()
    gate.release()
    assert time.monotonic() - began < 0.05
