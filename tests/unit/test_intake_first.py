"""Intake goes first on the embedded SQLite: background units of work wait while an intake
request is in flight, but never longer than the gate's limit."""

from __future__ import annotations

import threading
import time

from sqlalchemy import create_engine, text

from leadwatch.db.engine import IntakeFirst, make_session_factory, unit_of_work


def test_background_work_waits_for_intake_to_finish() -> None:
    gate = IntakeFirst(max_wait=5.0)
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
    gate = IntakeFirst(max_wait=0.1)
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
