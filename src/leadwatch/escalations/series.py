"""Escalation statistics over time, and the dead letters of a window.

A window of two days or less is cut into hours, a longer one into days, on the clock of the
zone given (a dealership's, or UTC). The database does the counting: rows are grouped by a
slot of whole epoch seconds (an hour, or a quarter of an hour for a zone whose offset is not
whole hours) and the few slots are folded into local buckets here, so a 90-day window reads
a few thousand grouped rows however many escalations it holds.

Escalations count in the bucket they started in, with the same success rule as
``stats.escalation_stats``; messages count in the bucket they were written in, by the status
they have now (sent, or dead: given up on). ``rep`` and ``dealership_id`` narrow as there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from leadwatch.core.policy import SEVERITY, Level
from leadwatch.escalations.models import Escalation
from leadwatch.escalations.stats import LIVE, scoped, scoped_messages
from leadwatch.leads.models import Lead
from leadwatch.notifications.models import OutboxMessage

HOURLY_UP_TO = timedelta(days=2)
LEVELS = sorted((level.value for level in Level), key=lambda v: -SEVERITY[Level(v)])


@dataclass
class Bucket:
    start: datetime  # local time in the series' zone
    label: str
    by_level: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # channel -> messages sent
    dead: dict[str, int] = field(default_factory=dict)  # channel -> dead letters
    succeeded: int = 0
    decided: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_level.values())

    @property
    def success_rate(self) -> float | None:
        return round(self.succeeded / self.decided, 4) if self.decided else None


@dataclass
class Series:
    unit: str  # "hour" or "day"
    zone: str
    buckets: list[Bucket]
    levels: list[str]  # those that occur, worst first
    channels: list[str]  # those that occur, by name


@dataclass(frozen=True)
class DeadLetter:
    message_id: int
    escalation_id: int | None
    lead_id: int | None
    channel: str
    recipient: str
    error: str
    at: datetime  # when it was given up on (or written, for a row without that time)


@dataclass(frozen=True)
class DeadLetters:
    count: int
    by_channel: dict[str, int]
    recent: list[DeadLetter]


def window(*, days: int, now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The last ``days`` as whole buckets ending with the current one (so partial): the last
    24 * days hours for two days or less, else the last ``days`` local calendar days."""
    if timedelta(days=days) <= HOURLY_UP_TO:
        return _hour_of(now, zone) - timedelta(hours=24 * days - 1), now
    first = now.astimezone(zone).date() - timedelta(days=days - 1)
    return datetime.combine(first, time(), zone).astimezone(UTC), now


def escalation_series(
    *,
    db_session: Session,
    since: datetime,
    until: datetime,
    zone: tzinfo = UTC,
    rep: str | None = None,
    dealership_id: int | None = None,
) -> Series:
    hourly = until - since <= HOURLY_UP_TO
    start_of = _hour_of if hourly else _day_of
    buckets: dict[datetime, Bucket] = {}
    at = start_of(since, zone)
    while at <= until:
        local = at.astimezone(zone)
        label = local.strftime("%H:%M" if hourly and local.hour else "%d %b")  # a date at 0h
        buckets[at] = Bucket(start=local, label=label)
        at = at + timedelta(hours=1) if hourly else _day_of(at + timedelta(hours=26), zone)
    seconds = _slot_seconds(since, until, zone)
    dialect = db_session.get_bind().dialect.name
    started = _slot(Escalation.started_at, seconds, dialect)
    reached = func.coalesce(Lead.contacted_at, Lead.sold_at) >= Escalation.started_at
    escalations = (
        select(
            started,
            Escalation.level,
            func.count(),
            func.sum(case((reached, 1), else_=0)),
            func.sum(case((Escalation.status.not_in(LIVE), 1), (reached, 1), else_=0)),
        )
        .join(Lead, Lead.id == Escalation.lead_id)
        .where(Escalation.started_at >= since, Escalation.started_at <= until)
        .group_by(started, Escalation.level)
    )
    levels: set[str] = set()
    for slot, level, count, succeeded, decided in db_session.execute(
        scoped(escalations, rep=rep, dealership_id=dealership_id)
    ):
        bucket = buckets[start_of(_slot_start(slot, seconds), zone)]
        bucket.by_level[level] = bucket.by_level.get(level, 0) + int(count)
        bucket.succeeded += int(succeeded or 0)
        bucket.decided += int(decided or 0)
        levels.add(level)
    written = _slot(OutboxMessage.created_at, seconds, dialect)
    messages = (
        select(written, OutboxMessage.channel, OutboxMessage.status, func.count())
        .where(OutboxMessage.created_at >= since, OutboxMessage.created_at <= until)
        .group_by(written, OutboxMessage.channel, OutboxMessage.status)
    )  # no filter on status: SQLite would then walk the status index, many times slower
    channels: set[str] = set()
    for slot, channel, state, count in db_session.execute(
        scoped_messages(messages, rep=rep, dealership_id=dealership_id)
    ):
        if state not in ("sent", "dead"):
            continue
        bucket = buckets[start_of(_slot_start(slot, seconds), zone)]
        tally = bucket.sent if state == "sent" else bucket.dead
        tally[channel] = tally.get(channel, 0) + int(count)
        channels.add(channel)
    return Series(
        unit="hour" if hourly else "day",
        zone=str(zone),
        buckets=list(buckets.values()),
        levels=[level for level in LEVELS if level in levels] + sorted(levels - set(LEVELS)),
        channels=sorted(channels),
    )


def dead_letters(
    *,
    db_session: Session,
    since: datetime,
    until: datetime,
    rep: str | None = None,
    dealership_id: int | None = None,
    recent: int = 10,
) -> DeadLetters:
    """Messages written in the window and given up on: how many, per channel, the latest."""
    in_window = (
        OutboxMessage.status == "dead",
        OutboxMessage.created_at >= since,
        OutboxMessage.created_at <= until,
    )
    counts = select(OutboxMessage.channel, func.count()).where(*in_window)
    by_channel = {
        str(channel): int(n)
        for channel, n in db_session.execute(
            scoped_messages(
                counts.group_by(OutboxMessage.channel), rep=rep, dealership_id=dealership_id
            )
        )
    }
    when = func.coalesce(OutboxMessage.dead_at, OutboxMessage.created_at)
    latest = select(OutboxMessage).where(*in_window).order_by(when.desc()).limit(recent)
    rows = db_session.scalars(scoped_messages(latest, rep=rep, dealership_id=dealership_id))
    return DeadLetters(
        count=sum(by_channel.values()),
        by_channel=dict(sorted(by_channel.items())),
        recent=[
            DeadLetter(
                message_id=row.id,
                escalation_id=row.escalation_id,
                lead_id=row.lead_id,
                channel=row.channel,
                recipient=row.recipient_name,
                error=row.last_error or "no reason recorded",
                at=row.dead_at or row.created_at,
            )
            for row in rows
        ],
    )


def _hour_of(moment: datetime, zone: tzinfo) -> datetime:
    """The start (in UTC) of the local hour holding ``moment``."""
    local = moment.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _day_of(moment: datetime, zone: tzinfo) -> datetime:
    """The start (in UTC) of the local day holding ``moment``."""
    return datetime.combine(moment.astimezone(zone).date(), time(), zone).astimezone(UTC)


def _slot_seconds(since: datetime, until: datetime, zone: tzinfo) -> int:
    """An hour when the zone's offsets in the window are whole hours, else a quarter hour
    (every zone's offset is a multiple of 15 minutes), so no slot straddles two buckets."""
    offsets = {zone.utcoffset(moment.astimezone(zone)) for moment in (since, until)}
    whole = all(o is not None and o.total_seconds() % 3600 == 0 for o in offsets)
    return 3600 if whole else 900


def _slot(column: Any, seconds: int, dialect: str) -> ColumnElement[int]:
    """Whole slots since the epoch, in SQL (SQLite stores the time as naive UTC text)."""
    # Literals, not bound parameters: PostgreSQL must see the GROUP BY expression as the
    # selected one, and SQLite's %s rounds fractions of a second up, so they are cut first.
    if dialect == "sqlite":
        text = func.substr(column, 1, literal_column("19"))
        epoch: ColumnElement[int] = cast(func.strftime(literal_column("'%s'"), text), Integer)
    else:
        epoch = cast(func.floor(extract("epoch", column)), BigInteger)
    return epoch // literal_column(str(int(seconds)), Integer)


def _slot_start(slot: Any, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(slot) * seconds, UTC)
