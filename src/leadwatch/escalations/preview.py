"""Preview: what escalation would do with a lead, without storing or sending anything.

The lead is scored as of ``at`` with the active model (or given a probability), assessed
with the settings in force, and its chain is run forward in time with the real calendar and
directory, assuming nobody claims it or calls the customer.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from leadwatch.core.escalation import Action
from leadwatch.core.leads import EventType, LeadIn, status_from_events
from leadwatch.core.policy import LeadFacts
from leadwatch.escalations.service import Runtime

if TYPE_CHECKING:
    from leadwatch.prediction.predictor import LeadOutcomePredictor


class PreviewError(ValueError):
    pass


def lead_facts(lead: LeadIn, *, dealership: str, at: datetime) -> LeadFacts:
    """The lead as escalation sees it at ``at``: events after ``at`` have not happened yet."""
    events = [e for e in lead.events if e.occurred_at <= at]
    vehicle = lead.vehicle
    price = vehicle.price if vehicle is not None else None
    return LeadFacts(
        lead_id=0,
        dealership=dealership,
        status=status_from_events(events).value,
        contacted=any(e.type is EventType.CONTACTED for e in events),
        rep=lead.rep,
        source=lead.lead_source,
        make=vehicle.make if vehicle else None,
        model=vehicle.model if vehicle else None,
        price=float(price) if price is not None else None,
    )


def score(
    lead: LeadIn,
    predictor: LeadOutcomePredictor,
    *,
    dealership: str,
    timezone: str,
    at: datetime,
    horizon: int,
) -> float:
    """The lead's sale probability as of ``at``, on the dealership's local clock."""
    zone = ZoneInfo(timezone)

    def local(value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(zone).replace(tzinfo=None)

    def first(kind: EventType) -> datetime | None:
        times = [e.occurred_at for e in lead.events if e.type is kind and e.occurred_at <= at]
        return min(times) if times else None

    vehicle = lead.vehicle
    record: dict[str, Any] = {
        "created_at": local(lead.created_at),
        "contacted_at": local(first(EventType.CONTACTED)),
        "sold_at": local(first(EventType.SOLD)),
        "rep": lead.rep,
        "vehicle_make": vehicle.make if vehicle else None,
        "vehicle_model": vehicle.model if vehicle else None,
        "vehicle_price": float(vehicle.price) if vehicle and vehicle.price is not None else None,
        "lead_source": lead.lead_source,
        "dealership": dealership,
    }
    scored = predictor.predict_one(record, as_of=local(at))
    return float(scored["sale_probability_14d" if horizon == 14 else "sale_probability_30d"])


def preview(
    lead: LeadIn,
    *,
    runtime: Runtime,
    dealership: str,
    timezone: str,
    at: datetime,
    probability: float | None = None,
    predictor: LeadOutcomePredictor | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    if at.tzinfo is None:
        raise PreviewError("the preview time needs a time zone (e.g. 2026-11-27T18:30:00-06:00)")
    if at < lead.created_at:
        raise PreviewError(
            f"the preview time {at.isoformat()} is before the lead was created "
            f"({lead.created_at.isoformat()})"
        )
    rules = runtime.config.rules
    if probability is None:
        if predictor is None:
            raise PreviewError(
                "no active model to score the lead: train one (`leadwatch train`) or give "
                'the probability (--probability / "probability")'
            )
        probability = score(
            lead,
            predictor,
            dealership=dealership,
            timezone=timezone,
            at=at,
            horizon=rules.horizon_days,
        )
    if not 0.0 <= probability <= 1.0:
        raise PreviewError(f"probability must be between 0 and 1, got {probability}")
    facts = lead_facts(lead, dealership=dealership, at=at)
    router = runtime.config
    assessment, decisions = router.preview(
        facts,
        probability,
        timezone=timezone,
        start=at,
        thresholds=runtime.thresholds,
        limit=limit,
    )
    out: dict[str, Any] = {
        "level": assessment.level.value,
        "probability": round(probability, 4),
        "horizon_days": rules.horizon_days,
        "reason": assessment.reason,
        "policy": assessment.plan.policy.name if assessment.plan else None,
        "settings_version": router.version,
        "steps": [
            {
                "at": d.at.isoformat(),
                "action": "hold" if d.action is Action.HOLD else "notify",
                "recipients": d.recipients,
                "channels": d.channels,
                "reason": d.reason,
            }
            for d in decisions
        ],
    }
    if assessment.plan is not None and (facts.closed or facts.contacted):
        out["reason"] += f"; but the lead is already {facts.status}: nothing to escalate"
    return out
