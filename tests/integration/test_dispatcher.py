"""The dispatcher on a real database (SQLite and PostgreSQL): claiming, retrying with backoff,
dead letters and re-sending, leases taken over after a crash, throttles that fold instead of
dropping, the in-app inbox, and several workers never sending one message twice.

The channel here is a scripted stand-in (the subject is the dispatcher); the real channels
are tested against real servers in their own modules and end to end in test_delivery_e2e."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.db.engine import unit_of_work
from leadwatch.notifications import service
from leadwatch.notifications.channels.base import DeliveryResult, Outcome, OutgoingMessage
from leadwatch.notifications.channels.in_app import InAppChannel
from leadwatch.notifications.dispatcher import DispatchCounts, Dispatcher, Throttle
from leadwatch.notifications.models import DeliveryAttempt, OutboxMessage
from tests.integration.escalation_support import Clock

NOW = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)


class Scripted:
    """Answers from a script per address (the last answer repeats); records every call."""

    def __init__(self, name: str, script: dict[str, list[DeliveryResult]] | None = None) -> None:
        self.name = name
        self.script = script or {}
        self.sent: list[OutgoingMessage] = []
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> DeliveryResult:
        with self.lock:
            self.sent.append(message)
            answers = self.script.get(message.address) or [DeliveryResult(Outcome.SENT, "250 ok")]
            return answers.pop(0) if len(answers) > 1 else answers[0]


class Raising:
    name = "email"

    def send(self, message: OutgoingMessage) -> DeliveryResult:  # noqa: ARG002
        raise RuntimeError("bug in a channel")


def add_messages(
    factory: sessionmaker[Session],
    count: int,
    *,
    channel: str = "email",
    address: str = "dana@example.com",
    recipient: str = "dana",
    at: datetime = NOW,
    expires_hours: float = 24,
) -> list[int]:
    rows = [
        OutboxMessage(
            idempotency_key=uuid.uuid4().hex,
            channel=channel,
            recipient=recipient,
            recipient_name="Dana Reyes",
            address=address,
            subject=f"[HIGH] lead {i}",
            body=f"lead {i} needs you",
            data={"lead_id": i, "level": "high"},
            status="pending",
            next_attempt_at=at,
            expires_at=at + timedelta(hours=expires_hours),
            created_at=at,
        )
        for i in range(count)
    ]
    with unit_of_work(factory) as db_session:
        db_session.add_all(rows)
        db_session.flush()
        return [r.id for r in rows]


def statuses(factory: sessionmaker[Session]) -> Counter[str]:
    with unit_of_work(factory) as db_session:
        return Counter(db_session.scalars(select(OutboxMessage.status)))


def dispatcher(
    factory: sessionmaker[Session], clock: Clock, channel: Any, **kwargs: Any
) -> Dispatcher:
    return Dispatcher(
        session_factory=factory,
        channels={channel.name: channel},
        clock=clock,
        retry_seconds=30,
        lease_seconds=60,
        **kwargs,
    )


def test_a_due_message_is_sent_once_and_its_attempt_recorded(
    session_factory: sessionmaker[Session],
) -> None:
    clock, channel = Clock(NOW), Scripted("email")
    [message_id] = add_messages(session_factory, 1)
    worker = dispatcher(session_factory, clock, channel)
    counts = worker.run_once()
    assert (counts.claimed, counts.sent) == (1, 1)
    assert worker.run_once().claimed == 0
    worker.close()
    with unit_of_work(session_factory) as db_session:
        row = db_session.get(OutboxMessage, message_id)
        assert row is not None and (row.status, row.attempts, row.sent_at) == ("sent", 1, NOW)
        [attempt] = service.attempts(db_session=db_session, message_id=message_id)
    assert (attempt.outcome, attempt.detail) == ("sent", "250 ok") and attempt.latency_ms >= 0
    assert channel.sent[0].idempotency_key and channel.sent[0].text == "lead 0 needs you"


def test_transient_failures_back_off_with_jitter_then_expire_into_dead_letters(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    busy = DeliveryResult(Outcome.RETRY, "451 try later", code="451")
    channel = Scripted("email", {"dana@example.com": [busy]})
    dead: list[int] = []
    [message_id] = add_messages(session_factory, 1, expires_hours=1)
    worker = dispatcher(
        session_factory, clock, channel, on_dead=lambda _s, mid, _now: dead.append(mid)
    )
    waits = []
    while not dead:
        assert worker.run_once().claimed == 1
        with unit_of_work(session_factory) as db_session:
            row = db_session.get(OutboxMessage, message_id)
            assert row is not None
            if row.status == "retry":
                waits.append((row.next_attempt_at - clock.now).total_seconds())
                clock.now = row.next_attempt_at
    worker.close()
    assert 15 <= waits[0] <= 30 and 30 <= waits[1] <= 60 and 60 <= waits[2] <= 120
    assert dead == [message_id]
    with unit_of_work(session_factory) as db_session:
        row = db_session.get(OutboxMessage, message_id)
        assert (
            row is not None and row.status == "dead" and "expired after" in (row.last_error or "")
        )
        assert len(service.attempts(db_session=db_session, message_id=message_id)) == row.attempts


def test_retry_after_is_honoured(session_factory: sessionmaker[Session]) -> None:
    clock = Clock(NOW)
    limited = DeliveryResult(Outcome.RETRY, "429", code="429", retry_after=7)
    channel = Scripted("webhook", {"https://hooks.example.com/x": [limited]})
    [message_id] = add_messages(
        session_factory, 1, channel="webhook", address="https://hooks.example.com/x"
    )
    worker = dispatcher(session_factory, clock, channel)
    worker.run_once()
    worker.close()
    with unit_of_work(session_factory) as db_session:
        row = db_session.get(OutboxMessage, message_id)
        assert row is not None and row.next_attempt_at == NOW + timedelta(seconds=7)


def test_permanent_failures_are_dead_at_once_and_can_be_sent_again(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    refused = DeliveryResult(Outcome.PERMANENT, "550 no such user", code="550")
    channel = Scripted("email", {"dana@example.com": [refused, DeliveryResult(Outcome.SENT, "ok")]})
    dead: list[int] = []
    [message_id] = add_messages(session_factory, 1)
    worker = dispatcher(
        session_factory, clock, channel, on_dead=lambda _s, mid, _now: dead.append(mid)
    )
    assert worker.run_once().dead == 1 and dead == [message_id]
    with unit_of_work(session_factory) as db_session:
        listed = service.list_messages(db_session=db_session, status="dead")
        assert [m.id for m in listed] == [message_id]
        assert (
            service.resend(db_session=db_session, message_ids=None, now=NOW, max_age_hours=24) == 1
        )
    assert worker.run_once().sent == 1
    worker.close()
    assert channel.sent[0].idempotency_key == channel.sent[1].idempotency_key


def test_an_unconfigured_channel_says_so_and_a_raising_channel_is_retried(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    add_messages(session_factory, 1, channel="sms", address="+15550100001")
    add_messages(session_factory, 1, channel="email")
    worker = Dispatcher(
        session_factory=session_factory,
        channels={"email": Raising()},
        clock=clock,
        unconfigured={"sms": "SMS is not configured: set LEADWATCH_TWILIO_ACCOUNT_SID"},
    )
    counts = worker.run_once()
    worker.close()
    assert (counts.dead, counts.retried) == (1, 1)
    with unit_of_work(session_factory) as db_session:
        [sms] = service.list_messages(db_session=db_session, channel="sms")
        [mail] = service.list_messages(db_session=db_session, channel="email")
    assert sms.status == "dead" and "LEADWATCH_TWILIO_ACCOUNT_SID" in (sms.last_error or "")
    assert mail.status == "retry" and "bug in a channel" in (mail.last_error or "")


def test_a_crashed_workers_lease_is_taken_over_and_its_late_answer_ignored(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    [message_id] = add_messages(session_factory, 1)
    crashed = dispatcher(session_factory, clock, Scripted("email"))
    claimed = crashed._claim("token-of-the-crashed-one")  # claimed, then it died
    assert [c.row["id"] for c in claimed] == [message_id]
    other_channel = Scripted("email")
    other = dispatcher(session_factory, clock, other_channel)
    assert other.run_once().claimed == 0  # the lease still holds
    clock.advance(seconds=61)
    assert other.run_once().sent == 1
    # The crashed worker wakes up and reports a failure: it no longer owns the message.
    crashed_counts = DispatchCounts()
    late = [(DeliveryResult(Outcome.PERMANENT, "late"), 1.0)]
    crashed._record("token-of-the-crashed-one", claimed, late, [], [], crashed_counts)
    crashed.close()
    other.close()
    assert crashed_counts.dead == 1  # it thought so...
    assert statuses(session_factory) == Counter({"sent": 1})  # ...but nothing changed
    assert other_channel.sent[0].idempotency_key == claimed[0].message.idempotency_key


def test_a_throttled_recipient_gets_one_message_carrying_the_rest(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    channel = Scripted("sms")
    rule = Throttle("sms", count=2, minutes=15)
    worker = dispatcher(session_factory, clock, channel, throttles=[rule])
    for _ in range(2):  # two SMS sent in the window
        add_messages(session_factory, 1, channel="sms", address="+15550100001", at=clock.now)
        assert worker.run_once().sent == 1
        clock.advance(minutes=1)
    add_messages(session_factory, 3, channel="sms", address="+15550100001", at=clock.now)
    counts = worker.run_once()
    assert (counts.sent, counts.deferred) == (0, 3)
    with unit_of_work(session_factory) as db_session:
        waiting = service.list_messages(db_session=db_session, status="pending")
        assert {m.next_attempt_at for m in waiting} == {NOW + timedelta(minutes=15)}
        assert all(m.attempts == 0 for m in waiting)
    clock.now = NOW + timedelta(minutes=15)
    counts = worker.run_once()
    worker.close()
    assert (counts.sent, counts.folded) == (1, 2)
    assert "Also waiting (2)" in channel.sent[-1].text
    assert statuses(session_factory) == Counter({"sent": 3, "folded": 2})


def test_in_app_messages_land_in_the_inbox_once(session_factory: sessionmaker[Session]) -> None:
    clock = Clock(NOW)
    ids = add_messages(session_factory, 2, channel="in_app", address="dana")
    in_app = InAppChannel(session_factory)
    worker = dispatcher(session_factory, clock, in_app)
    assert worker.run_once().sent == 2
    with unit_of_work(session_factory) as db_session:
        message = db_session.get(OutboxMessage, ids[0])
        assert message is not None
        again = in_app.send(
            OutgoingMessage(
                id=message.id,
                idempotency_key=message.idempotency_key,
                channel="in_app",
                recipient="dana",
                recipient_name="Dana Reyes",
                address="dana",
                subject=message.subject,
                text=message.body,
            )
        )
        assert "repeat" in again.detail
        items, unread = service.inbox(db_session=db_session, person="dana")
        # Sent on parallel threads: the inbox order is the order they landed in.
        assert unread == 2 and sorted(i.title for i in items) == ["[HIGH] lead 0", "[HIGH] lead 1"]
        assert (
            service.mark_read(db_session=db_session, person="dana", item_ids=[items[0].id], now=NOW)
            == 1
        )
    with unit_of_work(session_factory) as db_session:
        assert service.inbox(db_session=db_session, person="dana")[1] == 1
    worker.close()


def test_several_workers_never_send_one_message_twice(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    add_messages(session_factory, 300)
    channel = Scripted("email")
    workers = [dispatcher(session_factory, clock, channel, batch=25) for _ in range(3)]
    errors: list[BaseException] = []

    def drain(worker: Dispatcher) -> None:
        try:
            while worker.run_once().claimed:
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in workers:
        worker.close()
    assert not errors
    keys = Counter(m.idempotency_key for m in channel.sent)
    assert len(keys) == 300 and max(keys.values()) == 1
    assert statuses(session_factory) == Counter({"sent": 300})
    with unit_of_work(session_factory) as db_session:
        assert len(db_session.scalars(select(DeliveryAttempt.id)).all()) == 300


@pytest.mark.parametrize("status", ["pending", "dead"])
def test_outbox_listing_filters_by_status(
    session_factory: sessionmaker[Session], status: str
) -> None:
    add_messages(session_factory, 2)
    with unit_of_work(session_factory) as db_session:
        rows = service.list_messages(db_session=db_session, status=status)
        assert len(rows) == (2 if status == "pending" else 0)
        assert service.counts_by_status(db_session=db_session) == {"pending": 2}


def test_messages_waiting_behind_a_carrier_that_failed_wait_for_their_own_turn(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    busy = DeliveryResult(Outcome.RETRY, "503", code="503")
    channel = Scripted("sms", {"+15550100001": [busy, DeliveryResult(Outcome.SENT, "ok")]})
    worker = dispatcher(session_factory, clock, channel, throttles=[Throttle("sms", 5, 15)])
    add_messages(session_factory, 3, channel="sms", address="+15550100001")
    counts = worker.run_once()
    assert (counts.retried, counts.folded) == (1, 2)
    assert statuses(session_factory) == Counter({"retry": 1, "pending": 2})  # none lost
    clock.advance(hours=1)
    counts = worker.run_once()
    worker.close()
    assert (counts.sent, counts.folded) == (1, 2)
    assert statuses(session_factory) == Counter({"sent": 1, "folded": 2})
    with unit_of_work(session_factory) as db_session:
        [carrier] = service.list_messages(db_session=db_session, status="sent")
        assert "Also waiting (2)" in carrier.body  # what was sent is what is stored


def test_an_expired_message_is_a_dead_letter_without_being_sent(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW + timedelta(hours=2))
    channel = Scripted("email")
    dead: list[int] = []
    [message_id] = add_messages(session_factory, 1, expires_hours=1)
    worker = dispatcher(
        session_factory, clock, channel, on_dead=lambda _s, mid, _now: dead.append(mid)
    )
    assert worker.run_once().dead == 1
    worker.close()
    assert channel.sent == [] and dead == [message_id]
    with unit_of_work(session_factory) as db_session:
        row = db_session.get(OutboxMessage, message_id)
        assert row is not None and row.last_error == "expired before it could be sent"


def test_a_failing_fallback_does_not_undo_the_batch(session_factory: sessionmaker[Session]) -> None:
    clock = Clock(NOW)
    refused = DeliveryResult(Outcome.PERMANENT, "550 no such user", code="550")
    channel = Scripted("email", {"gone@example.com": [refused]})
    add_messages(session_factory, 1)
    add_messages(session_factory, 1, address="gone@example.com")

    def broken(_session: Session, _message_id: int, _now: datetime) -> None:
        raise RuntimeError("fallback blew up")

    worker = dispatcher(session_factory, clock, channel, on_dead=broken)
    counts = worker.run_once()
    worker.close()
    assert (counts.sent, counts.dead) == (1, 1)
    assert statuses(session_factory) == Counter({"sent": 1, "dead": 1})
    assert len(channel.sent) == 2


def test_each_fallback_stands_alone_a_failing_one_undoes_only_itself(
    session_factory: sessionmaker[Session],
) -> None:
    clock = Clock(NOW)
    refused = DeliveryResult(Outcome.PERMANENT, "550 no such user", code="550")
    channel = Scripted("email", {"gone@example.com": [refused, refused, refused]})
    add_messages(session_factory, 3, address="gone@example.com")
    seen: list[int] = []

    def fallback(db_session: Session, message_id: int, _now: datetime) -> None:
        seen.append(message_id)
        row = db_session.get(OutboxMessage, message_id)
        assert row is not None
        row.last_error = "fell back"
        db_session.flush()
        if len(seen) == 2:  # the second one's fallback breaks after writing
            raise RuntimeError("fallback blew up")

    worker = dispatcher(session_factory, clock, channel, on_dead=fallback)
    counts = worker.run_once()
    worker.close()
    assert counts.dead == 3 and len(seen) == 3
    with unit_of_work(session_factory) as db_session:
        errors = {m.id: m.last_error for m in db_session.scalars(select(OutboxMessage)).all()}
    assert errors[seen[0]] == errors[seen[2]] == "fell back"
    assert errors[seen[1]] == "550 no such user"  # only the broken one was undone


def test_a_provider_id_goes_ahead_of_the_batch_only_where_receipts_come_back(
    session_factory: sessionmaker[Session],
) -> None:
    """Twilio's receipts are matched by the message's SID, so it is stored the moment the
    send returns; other channels' ids (an in-app message's inbox row) wait for the batch, one
    write fewer per message for every process that waits on the database's write lock."""
    engine = session_factory.kw["bind"]
    commits: dict[bool, int] = {}
    for receipts in (True, False):
        ids = add_messages(session_factory, 3, channel="sms", address="+15550100001")
        sent = DeliveryResult(Outcome.SENT, "queued", provider_id=f"SM-{receipts}")
        channel = Scripted("sms", {"+15550100001": [sent]})
        if receipts:
            channel.receipts = True  # type: ignore[attr-defined]
        seen: list[int] = []

        def count(_conn: Any, seen: list[int] = seen) -> None:
            seen.append(1)

        event.listen(engine, "commit", count)
        try:
            worker = dispatcher(session_factory, Clock(NOW), channel)
            assert worker.run_once().sent == 3
            worker.close()
        finally:
            event.remove(engine, "commit", count)
        commits[receipts] = len(seen)
        with unit_of_work(session_factory) as db_session:
            stored = db_session.scalars(
                select(OutboxMessage.provider_id).where(OutboxMessage.id.in_(ids))
            ).all()
        assert stored == [f"SM-{receipts}"] * 3  # with the batch's outcomes either way
    assert commits[True] == commits[False] + 3
