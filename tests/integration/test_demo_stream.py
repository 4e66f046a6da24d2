"""The demo's stream of simulated leads goes through the real API of a real server: each lead
is stored, scored and escalated; the ones "called back" stop escalating."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.auth import service as auth_service
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.demo.stream import SOURCE_SYSTEM, DemoLeadStream
from leadwatch.escalations.models import Escalation
from leadwatch.leads.models import Lead
from tests.integration.escalation_support import make_world, staffed_document

ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def server(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, model_home: Path
) -> Iterator[tuple[str, str]]:
    settings = settings.model_copy(update={"home": model_home})
    world = make_world(session_factory, settings, datetime.now(UTC))
    lines = {"critical": 0.97, "high": 0.98, "medium": 0.99}  # every new lead is at risk
    world.save_settings(
        staffed_document(working_hours={"default": {"weekly": ALWAYS}}, thresholds=lines)
    )
    with unit_of_work(session_factory) as db_session:
        _, token = auth_service.create_token(db_session=db_session, name="demo", now=world.clock())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(settings, engine=engine, run_worker=True)
    running = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        running.should_exit = True
        thread.join(timeout=20)


def test_simulated_leads_arrive_scored_and_escalated_and_some_are_called_back(
    server: tuple[str, str], session_factory: sessionmaker[Session]
) -> None:
    base, token = server
    stream = DemoLeadStream(
        base, token, every=0.05, contact_share=0.5, contact_minutes=(0.0, 0.005), limit=8, seed=3
    )
    stop = threading.Event()
    worker = threading.Thread(target=stream.run, args=(stop,), daemon=True)
    worker.start()
    worker.join(timeout=90)
    stop.set()
    assert not worker.is_alive()
    assert len(stream.posted) == 8 and 0 < len(stream.contacted) < 8
    with unit_of_work(session_factory) as db_session:
        leads = db_session.scalars(select(Lead).where(Lead.source_system == SOURCE_SYSTEM)).all()
        assert sorted(lead.id for lead in leads) == sorted(stream.posted)
        assert all(lead.sale_probability_30d is not None for lead in leads)  # scored on intake
        assert all(lead.dealership.name != "Riverside Motors" or lead.rep for lead in leads)
        escalations = {
            e.lead_id: e
            for e in db_session.scalars(
                select(Escalation).where(Escalation.lead_id.in_(stream.posted))
            )
        }
    assert set(escalations) == set(stream.posted)  # every one was at risk
    for lead_id in stream.contacted:
        deadline = time.monotonic() + 10
        assert escalations[lead_id].status in ("stopped", "active", "claimed")
        while time.monotonic() < deadline:
            with unit_of_work(session_factory) as db_session:
                status = db_session.get(Escalation, escalations[lead_id].id).status  # type: ignore[union-attr]
            if status == "stopped":
                break
            time.sleep(0.1)
        assert status == "stopped", lead_id
    for lead_id in set(stream.posted) - set(stream.contacted):
        assert escalations[lead_id].status == "active"


def test_each_simulated_lead_is_new_and_shaped_like_the_demo_history() -> None:
    stream = DemoLeadStream("http://127.0.0.1:1", "token", seed=1)
    leads = [stream.lead() for _ in range(50)]
    assert len({lead["external_id"] for lead in leads}) == 50
    assert {lead["dealership"] for lead in leads} >= {"Riverside Motors"}
    assert all(lead["vehicle"]["make"] and lead["customer"]["email"] for lead in leads)
    assert all("events" not in lead for lead in leads)  # nobody has called them yet
