"""The words of an escalation message: one subject and body per delivery, with the claim link.

Short enough for SMS (about 300 characters before the link), plain text everywhere; channel
formatting (HTML mail, Slack blocks) belongs to delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from leadwatch.core.policy import Channel, Delivery


@dataclass(frozen=True, slots=True)
class LeadCard:
    lead_id: int
    dealership: str
    timezone: str
    created_at: datetime
    customer: str | None
    vehicle: str | None
    source: str | None
    rep: str | None
    probability: float | None
    horizon_days: int
    factors: tuple[str, ...] = ()


def compose(
    card: LeadCard, *, level: str, delivery: Delivery, claim_url: str | None, now: datetime
) -> tuple[str, str]:
    waited = max(0.0, (now - card.created_at).total_seconds() / 3600)
    who = card.customer or f"lead #{card.lead_id}"
    subject = f"[{level.upper()}] {who} waiting {_hours(waited)} for first contact"
    if card.vehicle:
        subject += f" ({card.vehicle})"
    created = card.created_at.astimezone(ZoneInfo(card.timezone)).strftime("%a %H:%M")
    chance = (
        f"{card.probability:.0%} chance of a sale in {card.horizon_days} days"
        if card.probability is not None
        else "not scored"
    )
    lines = [
        f"{who} at {card.dealership}, from {card.source or 'unknown source'} at {created}.",
        f"Nobody has contacted them yet: {chance}.",
    ]
    if card.rep:
        lines.append(f"Assigned rep: {card.rep}.")
    if card.factors and delivery.channel is not Channel.SMS:
        lines.append("Why: " + "; ".join(card.factors[:3]) + ".")
    if claim_url:
        lines.append(f"Claim it: {claim_url}")
    return subject[:300], "\n".join(lines)


def _hours(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"
