"""Delivery end to end against real servers on loopback: an escalation's messages reach an
SMTP server, a Twilio-like API and the in-app inbox; an SMTP outage loses nothing; a worker
killed with SIGKILL in the middle of a run loses nothing either."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.notifications import service
from leadwatch.notifications.jobs import build_dispatcher
from leadwatch.notifications.models import OutboxMessage
from tests.integration.escalation_support import OPEN_TUESDAY, make_world
from tests.integration.sinks import HttpSink, SmtpSink, twilio_answer


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def twilio() -> Iterator[HttpSink]:
    sink = HttpSink(answer=twilio_answer)
    yield sink
    sink.close()


def delivering(settings: Settings, smtp: SmtpSink, twilio: HttpSink) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "twilio_account_sid": "AC" + "0" * 32,
            "twilio_auth_token": SecretStr("test-token"),
            "twilio_from_number": "+15550009999",
            "twilio_base_url": twilio.url,
            "allow_private_urls": True,
            "allow_http_urls": True,
            "delivery_retry_seconds": 0.05,
        }
    )


def test_an_escalation_reaches_people_over_real_servers(
    session_factory: sessionmaker[Session],
    settings: Settings,
    smtp: SmtpSink,
    twilio: HttpSink,
) -> None:
    world = make_world(session_factory, delivering(settings, smtp, twilio), OPEN_TUESDAY)
    lead = world.add_lead("E2E-1", probability=0.05)  # critical: rep and manager at once
    world.watch(lead)
    dispatcher = build_dispatcher(world.settings, session_factory, clock=world.clock)
    counts = dispatcher.run_once()
    dispatcher.close()
    assert counts.sent == 6 and counts.dead == 0
    assert sorted(m["To"] for m in smtp.messages) == [
        "Dana Reyes <dana@riverside.example>",
        "Sam Patel <sam@riverside.example>",
    ]
    mail = smtp.messages[0]
    assert mail["Subject"].startswith("[CRITICAL] Customer E2E-1")
    assert (
        mail.is_multipart() and "/claim/" in mail.get_payload()[0].get_payload(decode=True).decode()
    )
    assert sorted(r.body.decode().split("To=")[1].split("&")[0] for r in twilio.received) == [
        "%2B15550100001",
        "%2B15550100002",
    ]
    with unit_of_work(session_factory) as db_session:
        items, unread = service.inbox(db_session=db_session, person="dana")
        assert unread == 1 and items[0].title.startswith("[CRITICAL]")
        sms = service.list_messages(db_session=db_session, channel="sms")
        assert all(m.status == "sent" and (m.provider_id or "").startswith("SM") for m in sms)


def test_an_smtp_outage_delays_mail_but_loses_none(
    session_factory: sessionmaker[Session], settings: Settings, twilio: HttpSink
) -> None:
    down = SmtpSink()  # its port is reserved, nothing listens yet
    settings = delivering(settings, down, twilio)
    keys = []
    now = datetime.now(UTC)
    with unit_of_work(session_factory) as db_session:
        for i in range(20):
            key = uuid.uuid4().hex
            keys.append(key)
            db_session.add(
                OutboxMessage(
                    idempotency_key=key,
                    channel="email",
                    recipient="dana",
                    recipient_name="Dana Reyes",
                    address="dana@riverside.example",
                    subject=f"lead {i}",
                    body="needs you",
                    data={},
                    status="pending",
                    next_attempt_at=now,
                    expires_at=now + timedelta(hours=1),
                    created_at=now,
                )
            )
    dispatcher = build_dispatcher(settings, session_factory)
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # the server is down: everything is retried
            dispatcher.run_once()
        with unit_of_work(session_factory) as db_session:
            assert service.counts_by_status(db_session=db_session).get("sent", 0) == 0
            assert service.counts_by_status(db_session=db_session).get("dead", 0) == 0
        down.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(down.messages) < 20:
            dispatcher.run_once()
            time.sleep(0.05)
    finally:
        dispatcher.close()
        down.stop()
    received = [m["X-LeadWatch-Idempotency-Key"] for m in down.messages]
    assert sorted(received) == sorted(keys)
    with unit_of_work(session_factory) as db_session:
        assert service.counts_by_status(db_session=db_session) == {"sent": 20}


def test_a_worker_killed_mid_run_loses_nothing(
    session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    sink = HttpSink()
    total = 2_000
    keys = set()
    now = datetime.now(UTC)
    rows = []
    for i in range(total):
        key = uuid.uuid4().hex
        keys.add(key)
        rows.append(
            {
                "idempotency_key": key,
                "channel": "webhook",
                "recipient": "crm",
                "recipient_name": "CRM",
                "address": f"{sink.url}/hook",
                "subject": f"lead {i}",
                "body": "needs you",
                "data": {"lead_id": i},
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "expires_at": now + timedelta(hours=1),
                "created_at": now,
            }
        )
    with unit_of_work(session_factory) as db_session:
        db_session.execute(OutboxMessage.__table__.insert(), rows)  # type: ignore[attr-defined]
    env = {
        **os.environ,
        "LEADWATCH_HOME": str(settings.home),
        "LEADWATCH_DATABASE_URL": settings.resolved_database_url,
        "LEADWATCH_ALLOW_PRIVATE_URLS": "true",
        "LEADWATCH_ALLOW_HTTP_URLS": "true",
        "LEADWATCH_DELIVERY_LEASE_SECONDS": "2",
        "LEADWATCH_WORKER_POLL_SECONDS": "0.05",
    }
    command = [sys.executable, "-m", "leadwatch.cli", "worker"]
    try:
        worker = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(sink.received) < total // 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)  # in the middle of a batch
        worker.wait()
        halfway = len(sink.received)
        assert 0 < halfway < total
        worker = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with unit_of_work(session_factory) as db_session:
                sent = db_session.scalar(select(func.count()).where(OutboxMessage.status == "sent"))
            if sent == total:
                break
            time.sleep(0.2)
        worker.terminate()
        worker.wait(timeout=30)
    finally:
        sink.close()
    received = sink.keys()
    assert set(received) == keys  # nothing lost
    assert len(received) >= total  # repeats allowed, each with its message's own key
    with unit_of_work(session_factory) as db_session:
        assert service.counts_by_status(db_session=db_session) == {"sent": total}


def test_a_step_whose_deliveries_all_fail_for_good_falls_back_through_the_worker(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    from leadwatch.escalations.document import EscalationSettings
    from leadwatch.escalations.jobs import make_runner
    from tests.integration.escalation_support import staffed_document

    world = make_world(session_factory, settings, OPEN_TUESDAY)  # no SMTP configured
    policies = EscalationSettings().model_dump(mode="json")["policies"]
    policies["medium"] = {
        "steps": [{"delay_minutes": 0, "recipients": ["rep"], "channels": ["email"]}]
    }
    world.save_settings(
        staffed_document(
            policies=policies, fallback_recipients=["general_manager"], fallback_channels=["in_app"]
        )
    )
    lead = world.add_lead("FB-1", probability=0.25)
    world.watch(lead)
    runner = make_runner(settings, session_factory, world.runtime, clock=world.clock)
    try:
        runner.tick()  # the email is dead at once (no SMTP); the fallback goes in-app
    finally:
        runner.close()
    esc = world.escalation(lead)
    log = world.decisions(esc.id)
    assert [d.action for d in log] == ["start", "notify", "notify"]
    assert log[-1].fallback and "every delivery of step 1 failed permanently" in log[-1].reason
    with unit_of_work(session_factory) as db_session:
        [mail] = service.list_messages(db_session=db_session, channel="email")
        assert mail.status == "dead" and "LEADWATCH_SMTP_HOST" in (mail.last_error or "")
        items, unread = service.inbox(db_session=db_session, person="gina")
        assert unread == 1 and "FB-1" in items[0].title
