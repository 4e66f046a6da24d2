"""Escalation statistics for managers: how many, how deep, how fast, and did it work.

An escalation *succeeded* when its lead was contacted (or sold) after it started; the rate is
taken over escalations that are decided (ended, or already successful), since a live one
that has not reached its lead yet has not had its chance. Times
are in minutes from the start of the escalation.

``rep`` and ``dealership_id`` narrow everything to what a rep or a manager may see, as
``service.list_escalations`` does; messages then count only when they belong to one of those
escalations. Without them (the API, the CLI, an admin) every escalation and message counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, TypeVarTuple

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from leadwatch.escalations.models import Escalation
from leadwatch.leads.models import Dealership, Lead
from leadwatch.notifications.models import OutboxMessage

LIVE = ("active", "claimed")
Columns = TypeVarTuple("Columns")


def _minutes(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else (later - earlier).total_seconds() / 60


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median_minutes": None, "p90_minutes": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"count": len(ordered), "median_minutes": at(0.5), "p90_minutes": at(0.9)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def scoped(
    query: Select[*Columns], *, rep: str | None = None, dealership_id: int | None = None
) -> Select[*Columns]:
    """``query`` (over escalations) narrowed to one rep's leads and/or one dealership."""
    if rep is not None:
        mine = select(Lead.id).where(func.lower(Lead.rep) == rep.lower())
        query = query.where(Escalation.lead_id.in_(mine))
    if dealership_id is not None:
        query = query.where(Escalation.dealership_id == dealership_id)
    return query


def scoped_messages(
    query: Select[*Columns], *, rep: str | None = None, dealership_id: int | None = None
) -> Select[*Columns]:
    """``query`` (over the outbox) narrowed to the messages of the escalations in scope."""
    if rep is None and dealership_id is None:
        return query
    visible = scoped(select(Escalation.id), rep=rep, dealership_id=dealership_id)
    return query.where(OutboxMessage.escalation_id.in_(visible))


def escalation_stats(
    *,
    db_session: Session,
    since: datetime,
    until: datetime,
    rep: str | None = None,
    dealership_id: int | None = None,
) -> dict[str, Any]:
    query = (
        select(
            Escalation.level,
            Escalation.status,
            Escalation.depth,
            Escalation.started_at,
            Escalation.first_claimed_at,
            Dealership.name,
            Lead.contacted_at,
            Lead.sold_at,
        )
        .join(Lead, Lead.id == Escalation.lead_id)
        .join(Dealership, Dealership.id == Escalation.dealership_id)
        .where(Escalation.started_at >= since, Escalation.started_at <= until)
    )
    rows = db_session.execute(scoped(query, rep=rep, dealership_id=dealership_id)).all()
    groups: dict[str, dict[str, Counter[str]]] = {
        "level": defaultdict(Counter),
        "dealership": defaultdict(Counter),
    }
    to_claim: list[float] = []
    to_contact: list[float] = []
    depths: Counter[int] = Counter()
    status_counts: Counter[str] = Counter()
    for level, status, depth, started, claimed, dealership, contacted, sold in rows:
        reached = contacted or sold
        success = reached is not None and reached >= started
        ended = status not in LIVE
        status_counts[status] += 1
        depths[int(depth)] += 1
        for name, key in (("level", level), ("dealership", dealership)):
            counter = groups[name][key]
            counter["total"] += 1
            counter["decided"] += ended or success  # a live one that reached the lead counts
            counter["succeeded"] += success
        if claimed is not None:
            to_claim.append(_minutes(claimed, started) or 0.0)
        if success and contacted is not None:
            to_contact.append(_minutes(contacted, started) or 0.0)
    decided = sum(c["decided"] for c in groups["level"].values())
    succeeded = sum(c["succeeded"] for c in groups["level"].values())
    total = len(rows)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "total": total,
        "live": sum(status_counts[s] for s in LIVE),
        "by_status": dict(status_counts),
        "succeeded": succeeded,
        "success_rate": _rate(succeeded, decided),
        "by_level": _grouped(groups["level"]),
        "by_dealership": _grouped(groups["dealership"]),
        "by_channel": _channels(db_session, since, until, rep=rep, dealership_id=dealership_id),
        "time_to_claim": _summary(to_claim),
        "time_to_first_contact": _summary(to_contact),
        "depth": {
            "mean": round(sum(d * n for d, n in depths.items()) / total, 2) if total else None,
            "distribution": {str(d): n for d, n in sorted(depths.items())},
        },
    }


def _grouped(groups: dict[str, Counter[str]]) -> dict[str, dict[str, Any]]:
    return {
        key: {
            "total": c["total"],
            "succeeded": c["succeeded"],
            "success_rate": _rate(c["succeeded"], c["decided"]),
        }
        for key, c in sorted(groups.items())
    }


def _channels(
    db_session: Session,
    since: datetime,
    until: datetime,
    *,
    rep: str | None,
    dealership_id: int | None,
) -> dict[str, Any]:
    """Messages per channel by delivery status, and the share delivered of those settled."""
    query = (
        select(OutboxMessage.channel, OutboxMessage.status, func.count())
        .where(OutboxMessage.created_at >= since, OutboxMessage.created_at <= until)
        .group_by(OutboxMessage.channel, OutboxMessage.status)
    )
    rows = db_session.execute(scoped_messages(query, rep=rep, dealership_id=dealership_id)).all()
    out: dict[str, dict[str, Any]] = {}
    for channel, status, count in rows:
        entry = out.setdefault(channel, {"total": 0, "by_status": {}})
        entry["total"] += int(count)
        entry["by_status"][status] = int(count)
    for entry in out.values():
        sent = entry["by_status"].get("sent", 0)
        entry["delivery_rate"] = _rate(sent, sent + entry["by_status"].get("dead", 0))
    return dict(sorted(out.items()))
