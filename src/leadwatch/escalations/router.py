"""`AlertEscalationRouter`: one version of the Lead Escalation settings, ready to decide.

It holds the rules, the people and the working hours, and answers with the pure functions of
`core.escalation`: which level and policy a lead gets (`assess`), what falls due when
(`decide`), what would happen from a moment on (`preview`). Nothing here touches a database or
the network, so it is what a script or a test uses directly:

    router = AlertEscalationRouter.from_settings({"people": [...]})
    assessment = router.assess(lead, 0.08)
    for decision in router.preview(lead, 0.08, timezone="America/Chicago", start=now): ...

The service layer (`escalations.service`) stores what it decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from leadwatch.core import escalation as engine
from leadwatch.core.calendar import WorkingHours
from leadwatch.core.directory import Directory
from leadwatch.core.escalation import Assessment, Decision, State
from leadwatch.core.policy import LeadFacts, Level, Plan, Rules, Thresholds
from leadwatch.escalations.document import EscalationSettings


class AlertEscalationRouter:
    def __init__(self, document: EscalationSettings | None = None, *, version: int = 0) -> None:
        self.document = document if document is not None else EscalationSettings()
        self.version = version
        self.rules: Rules = self.document.rules()
        self.directory: Directory = self.document.directory()
        self._calendars: dict[tuple[str, str], WorkingHours] = {}

    @classmethod
    def from_settings(
        cls, settings: EscalationSettings | Mapping[str, Any] | str | bytes, *, version: int = 0
    ) -> AlertEscalationRouter:
        """From a settings document: a model, a dict or JSON text (validated)."""
        if isinstance(settings, EscalationSettings):
            return cls(settings, version=version)
        if isinstance(settings, str | bytes):
            return cls(EscalationSettings.model_validate_json(settings), version=version)
        return cls(EscalationSettings.model_validate(settings), version=version)

    def calendar(self, dealership: str, timezone: str) -> WorkingHours:
        """The dealership's working hours in its zone (the zone belongs to the dealership)."""
        key = (dealership, timezone)
        hours = self._calendars.get(key)
        if hours is None:
            hours = self._calendars[key] = self.document.working_hours(dealership, timezone)
        return hours

    def thresholds(self, model_levels: Mapping[str, float] | None = None) -> Thresholds:
        """The settings' risk lines, or the active model's levels when the settings say so
        (``thresholds: null``), or the defaults when there is no model."""
        if self.rules.thresholds is not None:
            return self.rules.thresholds
        if model_levels:
            return Thresholds(
                model_levels["critical"], model_levels["high"], model_levels["medium"]
            )
        return Thresholds()

    def level(self, probability: float, thresholds: Thresholds | None = None) -> Level:
        return (thresholds or self.thresholds()).level(probability)

    def assess(
        self, lead: LeadFacts, probability: float, *, thresholds: Thresholds | None = None
    ) -> Assessment:
        """The lead's level and, unless it is not escalated, the plan it would freeze."""
        return engine.assess(
            self.rules,
            lead,
            probability,
            thresholds=thresholds or self.thresholds(),
            settings_version=self.version,
        )

    def decide(
        self, state: State, plan: Plan, lead: LeadFacts, *, timezone: str, now: datetime
    ) -> Decision:
        return engine.decide(
            state,
            plan,
            lead,
            calendar=self.calendar(lead.dealership, timezone),
            directory=self.directory,
            now=now,
        )

    def preview(
        self,
        lead: LeadFacts,
        probability: float,
        *,
        timezone: str,
        start: datetime,
        thresholds: Thresholds | None = None,
        limit: int = 50,
    ) -> tuple[Assessment, list[Decision]]:
        """The assessment and the decisions the chain would make from ``start`` on if nobody
        claimed or called (none for a lead that is not escalated or already settled)."""
        assessment = self.assess(lead, probability, thresholds=thresholds)
        if assessment.plan is None or lead.closed or lead.contacted:
            return assessment, []
        decisions = engine.preview(
            assessment.plan,
            lead,
            calendar=self.calendar(lead.dealership, timezone),
            directory=self.directory,
            start=start,
            limit=limit,
        )
        return assessment, decisions
