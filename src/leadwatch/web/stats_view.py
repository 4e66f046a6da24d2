"""What the statistics page shows: the window's totals, charts over time and dead letters,
all narrowed to what the signed-in user may see (``limits`` from the pages' scope).

Buckets follow the dealership's clock for a manager or a rep (they belong to one), and UTC
for an admin, who sees every dealership; the page says which.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from leadwatch.escalations import series
from leadwatch.escalations.stats import escalation_stats
from leadwatch.leads.models import Dealership
from leadwatch.users.models import User
from leadwatch.web import charts, charts_time

WINDOWS = {1: "Last 24 hours", 7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}


def zone_for(*, db_session: Session, user: User) -> tzinfo:
    if user.role == "admin" or user.dealership_id is None:
        return UTC
    dealer = db_session.get(Dealership, user.dealership_id)
    try:
        return ZoneInfo(dealer.timezone) if dealer is not None else UTC
    except (ZoneInfoNotFoundError, ValueError):  # a zone the system no longer knows
        return UTC


def context(
    *, db_session: Session, user: User, limits: dict[str, Any], days: int, now: datetime
) -> dict[str, Any]:
    """The statistics page's template values for the last ``days`` up to ``now``."""
    zone = zone_for(db_session=db_session, user=user)
    since, until = series.window(days=days, now=now, zone=zone)
    stats = escalation_stats(db_session=db_session, since=since, until=until, **limits)
    over_time = series.escalation_series(
        db_session=db_session, since=since, until=until, zone=zone, **limits
    )
    dead = series.dead_letters(db_session=db_session, since=since, until=until, **limits)
    return {
        "days": days,
        "windows": WINDOWS,
        "window_label": WINDOWS[days],
        "since": since.astimezone(zone),
        "zone": str(zone),
        "stats": stats,
        "over_time": over_time,
        "dead": dead,
        "charts": _charts(stats, over_time),
    }


def _charts(stats: dict[str, Any], over_time: series.Series) -> dict[str, str]:
    per = f"per {over_time.unit}"
    buckets = over_time.buckets
    labels = [b.label for b in buckets]
    channels = over_time.channels
    levels = {k: float(v["total"]) for k, v in stats["by_level"].items()}
    messages = {k: float(v["total"]) for k, v in stats["by_channel"].items()}
    depth = {f"{k} steps": float(v) for k, v in stats["depth"]["distribution"].items()}
    return {
        "levels_over_time": charts_time.stacked_columns(
            f"Escalations started {per}, by level",
            labels,
            {level: [b.by_level.get(level, 0) for b in buckets] for level in over_time.levels},
            charts.COLORS,
        ),
        "sent_over_time": charts_time.stacked_columns(
            f"Messages sent {per}, by channel",
            labels,
            {channel: [b.sent.get(channel, 0) for b in buckets] for channel in channels},
            empty="no messages sent in this window",
        ),
        "dead_over_time": charts_time.stacked_columns(
            f"Dead letters {per}, by channel",
            labels,
            {channel: [b.dead.get(channel, 0) for b in buckets] for channel in channels},
            empty="no dead letters in this window",
        ),
        "success_over_time": charts_time.line(
            f"Success rate {per}", [(b.label, b.success_rate) for b in buckets]
        ),
        "by_level": charts.bars("Escalations by level", levels),
        "by_channel": charts.bars("Messages by channel", messages),
        "depth": charts.bars("Escalations by steps that reached someone", depth),
    }
