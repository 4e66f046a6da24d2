"""What an escalation message says about its lead: the card the templates
(`notifications.templates`) word for each channel and level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
