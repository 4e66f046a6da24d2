"""The dispatcher: claims due outbox messages, sends them, records every attempt.

Claiming is one UPDATE ... RETURNING that marks a batch of due rows ``sending`` with a lease
and this round's run token (on PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED, so
workers pass over each other's rows). The batch is then sent outside any transaction, on a few
threads (delivery is waiting on networks), and the outcomes are written back in one
transaction, each guarded by the run token: a worker whose lease ran out and was taken over
writes nothing. A worker killed mid-batch leaves rows ``sending`` with a lease that expires;
the next claim takes them again and they are sent again with the same idempotency key, which
receivers use to drop the repeat. Nothing is lost.

Outcomes: sent; retry (transient: timeouts, 5xx, 429, SMTP 4xx) after an exponential backoff
with jitter, or the delay the other side asked for; dead (permanent failures, and messages
past their expiry), which hands the message to `on_dead` (escalation's fallback) and leaves
it listed and re-sendable. Per-recipient SMS throttles defer a message instead of dropping
it, and fold what waited into the next one that goes out.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.db.engine import unit_of_work
from leadwatch.notifications.channels.base import (
    Channel,
    DeliveryResult,
    Outcome,
    OutgoingMessage,
)
from leadwatch.notifications.models import DeliveryAttempt, OutboxMessage

log = logging.getLogger(__name__)

OUTBOX = cast(Table, OutboxMessage.__table__)
ATTEMPTS = cast(Table, DeliveryAttempt.__table__)
MAX_BACKOFF = timedelta(hours=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Throttle:
    """At most ``count`` messages per recipient on ``channel`` within ``minutes``."""

    channel: str
    count: int
    minutes: float


@dataclass
class DispatchCounts:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    folded: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Claimed:
    row: Mapping[str, Any]
    message: OutgoingMessage


class Dispatcher:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        channels: Mapping[str, Channel],
        clock: Callable[[], datetime] = _utcnow,
        on_dead: Callable[[Session, int, datetime], None] | None = None,
        throttles: Sequence[Throttle] = (),
        retry_seconds: float = 30.0,
        lease_seconds: float = 120.0,
        batch: int = 200,
        threads: int = 8,
        worker: str | None = None,
        unconfigured: Mapping[str, str] | None = None,
        refresh: Callable[[], tuple[dict[str, Channel], dict[str, str]] | None] | None = None,
    ) -> None:
        """``unconfigured`` maps a channel with no credentials to the reason (a message for
        it is dead at once, saying which setting is missing: nothing pretends to send).
        ``refresh``, asked before each round, gives new channels when their credentials
        changed (saved on the settings page), else None."""
        self.refresh = refresh
        self.session_factory = session_factory
        self.channels = dict(channels)
        self.clock = clock
        self.on_dead = on_dead
        self.throttles = {t.channel: t for t in throttles}
        self.retry_seconds = retry_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        self.unconfigured = dict(unconfigured or {})
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="deliver")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        _close(self.channels)

    def _refresh_channels(self) -> None:
        """Between rounds nothing is being sent, so the old channels can be closed."""
        fresh = self.refresh() if self.refresh is not None else None
        if fresh is None:
            return
        old, (self.channels, self.unconfigured) = self.channels, fresh
        log.info("channel credentials changed; channels off now: %s", sorted(self.unconfigured))
        _close(old)

    # ---- one round ---------------------------------------------------------------------------

    def run_once(self) -> DispatchCounts:
        self._refresh_channels()
        counts = DispatchCounts()
        token = secrets.token_hex(16)
        claimed = self._claim(token)
        counts.claimed = len(claimed)
        if not claimed:
            return counts
        ready, deferred, folded = self._throttle(claimed)
        counts.deferred, counts.folded = len(deferred), len(folded)
        results = list(self._pool.map(lambda item: self._send(item, token), ready))
        self._record(token, ready, results, deferred, folded, counts)
        return counts

    def _claim(self, token: str) -> list[_Claimed]:
        now = self.clock()
        due = or_(
            and_(OUTBOX.c.status.in_(("pending", "retry")), OUTBOX.c.next_attempt_at <= now),
            and_(OUTBOX.c.status == "sending", OUTBOX.c.lease_until < now),
        )
        with unit_of_work(self.session_factory) as db_session:
            pick = select(OUTBOX.c.id).where(due).order_by(OUTBOX.c.next_attempt_at)
            pick = pick.limit(self.batch)
            if db_session.get_bind().dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            statement = (
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(pick.scalar_subquery()), due)
                .values(
                    status="sending",
                    lease_until=now + self.lease,
                    run_token=token,
                    attempts=OUTBOX.c.attempts + 1,
                )
                .returning(*OUTBOX.c)
            )
            rows = [dict(r._mapping) for r in db_session.execute(statement)]
        rows.sort(key=lambda r: r["id"])
        return [_Claimed(r, _outgoing(r)) for r in rows]

    def _throttle(
        self, claimed: list[_Claimed]
    ) -> tuple[list[_Claimed], list[tuple[_Claimed, datetime]], list[tuple[_Claimed, int]]]:
        """Split the batch: what goes now, what waits for the recipient's window to free up
        (deferred, not an attempt), and what rides along inside another message (folded)."""
        if not self.throttles:
            return claimed, [], []
        ready: list[_Claimed] = []
        deferred: list[tuple[_Claimed, datetime]] = []
        folded: list[tuple[_Claimed, int]] = []
        groups: dict[tuple[str, str], list[_Claimed]] = {}
        for item in claimed:
            rule = self.throttles.get(item.row["channel"])
            if rule is None or item.row["channel"] not in self.channels:  # dead anyway: alone
                ready.append(item)
            else:
                groups.setdefault((item.row["channel"], item.row["recipient"]), []).append(item)
        now = self.clock()
        with unit_of_work(self.session_factory) as db_session:
            for (channel, recipient), items in groups.items():
                rule = self.throttles[channel]
                since = now - timedelta(minutes=rule.minutes)
                recent = sorted(
                    db_session.scalars(
                        select(OUTBOX.c.sent_at).where(
                            OUTBOX.c.channel == channel,
                            OUTBOX.c.recipient == recipient,
                            OUTBOX.c.status == "sent",
                            OUTBOX.c.sent_at > since,
                        )
                    )
                )
                if len(recent) >= rule.count:
                    frees_at = recent[len(recent) - rule.count] + timedelta(minutes=rule.minutes)
                    deferred += [(item, frees_at) for item in items]
                    continue
                first, rest = items[0], items[1:]
                if rest:
                    first = _fold(first, rest)
                    folded += [(item, first.row["id"]) for item in rest]
                ready.append(first)
        return ready, deferred, folded

    def _send(self, item: _Claimed, token: str) -> tuple[DeliveryResult, float]:
        started = time.perf_counter()
        channel = self.channels.get(item.message.channel)
        expires = item.row["expires_at"]
        if expires is not None and expires <= self.clock():
            # Too old to be worth sending (it waited, was throttled, or its worker died).
            result = DeliveryResult(Outcome.PERMANENT, "expired before it could be sent")
        elif channel is None:
            why = self.unconfigured.get(item.message.channel, "no such channel")
            result = DeliveryResult(Outcome.PERMANENT, f"{item.message.channel}: {why}")
        else:
            try:
                result = channel.send(item.message)
            except Exception as exc:  # a channel bug must not lose the message: retry it
                log.exception(
                    "channel %s raised on message %d", item.message.channel, item.row["id"]
                )
                result = DeliveryResult(
                    Outcome.RETRY, f"channel error: {type(exc).__name__}: {exc}"
                )
            # Only a provider that reports back needs the id before the batch's outcomes (an
            # in-app message's inbox row needs no early write: half the worker's transactions).
            early = getattr(channel, "receipts", False)
            if early and result.provider_id and result.outcome is Outcome.SENT:
                self._note_provider_id(item.row["id"], token, result.provider_id)
        return result, (time.perf_counter() - started) * 1000

    def _note_provider_id(self, message_id: int, token: str, provider_id: str) -> None:
        """At once, not with the batch: a delivery receipt can arrive within a second. Best
        effort: the batch's outcomes write it again, and a failure here must not lose them
        (the message was sent; losing its outcome would send it twice)."""
        try:
            with unit_of_work(self.session_factory) as db_session:
                db_session.execute(
                    _update_statement(("provider_id",)),
                    {"b_id": message_id, "b_token": token, "provider_id": provider_id},
                )
        except Exception:
            log.exception("message %d: could not note provider id %s yet", message_id, provider_id)

    # ---- writing outcomes --------------------------------------------------------------------

    def _record(
        self,
        token: str,
        ready: list[_Claimed],
        results: list[tuple[DeliveryResult, float]],
        deferred: list[tuple[_Claimed, datetime]],
        folded: list[tuple[_Claimed, int]],
        counts: DispatchCounts,
    ) -> None:
        now = self.clock()
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        dead: list[int] = []
        for item, (result, latency) in zip(ready, results, strict=True):
            row = item.row
            attempts.append(
                {
                    "message_id": row["id"],
                    "at": now,
                    "channel": row["channel"],
                    "recipient": row["recipient"],
                    "outcome": result.outcome.value,
                    "code": result.code,
                    "detail": result.detail[:2000],
                    "latency_ms": round(latency, 2),
                    "worker": self.worker,
                }
            )
            change = self._next(row, result, now)
            updates.append({"b_id": row["id"], "b_token": token, **change})
            status = change["status"]
            counts.sent += status == "sent"
            counts.retried += status == "retry"
            if status == "dead":
                counts.dead += 1
                dead.append(row["id"])
            if status == "sent":
                channel = row["channel"]
                counts.by_channel[channel] = counts.by_channel.get(channel, 0) + 1
        for item, frees_at in deferred:
            updates.append(
                {
                    "b_id": item.row["id"],
                    "b_token": token,
                    "status": "pending",
                    "next_attempt_at": frees_at,
                    "attempts": item.row["attempts"] - 1,  # waiting is not an attempt
                    "last_error": "throttled: waits for the recipient's window",
                }
            )
        carried = {item.row["id"]: item for item in ready}
        escalation_of = {item.row["id"]: item.row.get("escalation_id") for item in ready}
        outcome_of = {u["b_id"]: u["status"] for u in updates}
        for item, into in folded:
            if outcome_of.get(into) == "sent":
                change = {"status": "folded", "sent_at": now, "folded_into_id": into}
            else:  # the carrier did not go: these wait for their own turn again
                change = {
                    "status": "pending",
                    "next_attempt_at": now + self._backoff(1, None),
                    "attempts": item.row["attempts"] - 1,
                    "last_error": "was to ride along in a message that was not sent",
                }
            updates.append({"b_id": item.row["id"], "b_token": token, **change})
        for carrier_id in {into for _, into in folded}:
            if outcome_of.get(carrier_id) == "sent":  # keep what was actually sent
                updates.append(
                    {"b_id": carrier_id, "b_token": token, "body": carried[carrier_id].message.text}
                )
        with unit_of_work(self.session_factory) as db_session:
            if attempts:
                db_session.execute(ATTEMPTS.insert(), attempts)
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for change in updates:  # rows with the same columns to set share one statement
                names = tuple(sorted(k for k in change if not k.startswith("b_")))
                groups.setdefault(names, []).append(change)
            for names, changes in groups.items():
                db_session.execute(_update_statement(names), changes)
        # Outcomes first, committed; then the dead letters' fallbacks, together in one more
        # unit of work but each in its own savepoint, so a failing fallback undoes neither
        # the batch nor the others (a crash in between is repaired by the sweep, which finds
        # steps whose messages all died without a fallback). In escalation order, so two
        # workers lock the same escalations in the same order.
        if self.on_dead is not None and dead:
            with unit_of_work(self.session_factory) as db_session:
                for message_id in sorted(dead, key=lambda i: (escalation_of[i] or 0, i)):
                    try:
                        with db_session.begin_nested():
                            self.on_dead(db_session, message_id, now)
                    except Exception:
                        log.exception(
                            "fallback for dead message %d failed; the sweep retries", message_id
                        )

    def _next(
        self, row: Mapping[str, Any], result: DeliveryResult, now: datetime
    ) -> dict[str, Any]:
        base = {
            "lease_until": None,
            "last_error": None if result.outcome is Outcome.SENT else result.detail[:2000],
        }
        if result.outcome is Outcome.SENT:
            return base | {"status": "sent", "sent_at": now, "provider_id": result.provider_id}
        expires = row["expires_at"]
        if result.outcome is Outcome.RETRY:
            wait = self._backoff(row["attempts"], result.retry_after)
            if expires is None or now + wait < expires:
                return base | {"status": "retry", "next_attempt_at": now + wait}
            base["last_error"] = f"expired after {row['attempts']} attempts; last: {result.detail}"[
                :2000
            ]
        return base | {"status": "dead", "dead_at": now}

    def _backoff(self, attempts: int, asked: float | None) -> timedelta:
        """Exponential with full jitter (half to all of the step), or what the server asked."""
        if asked is not None:
            return min(timedelta(seconds=asked), MAX_BACKOFF)
        step = self.retry_seconds * 2 ** max(0, attempts - 1)
        return min(timedelta(seconds=step * random.uniform(0.5, 1.0)), MAX_BACKOFF)


@lru_cache(maxsize=64)
def _update_statement(names: tuple[str, ...]) -> Any:
    """UPDATE outbox SET <names> WHERE id = :b_id AND run_token = :b_token, built once."""
    return (
        update(OUTBOX)
        .where(OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.run_token == bindparam("b_token"))
        .values({name: bindparam(name) for name in names})
    )


def _outgoing(row: Mapping[str, Any]) -> OutgoingMessage:
    return OutgoingMessage(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        channel=row["channel"],
        recipient=row["recipient"],
        recipient_name=row["recipient_name"],
        address=row["address"],
        subject=row["subject"],
        text=row["body"],
        html=row["html"],
        data=row["data"] or {},
    )


def _fold(first: _Claimed, rest: list[_Claimed]) -> _Claimed:
    """One message carrying the ones that waited behind it, none of them dropped."""
    more = "\n".join(
        f"+ {item.message.subject}"
        + (f" {item.message.data['claim_url']}" if item.message.data.get("claim_url") else "")
        for item in rest
    )
    text = f"{first.message.text}\n\nAlso waiting ({len(rest)}):\n{more}"
    return replace(first, message=replace(first.message, text=text))


def _close(channels: Mapping[str, Channel]) -> None:
    for channel in channels.values():
        closing = getattr(channel, "close", None)
        if callable(closing):
            closing()  # HTTP channels keep a connection pool
