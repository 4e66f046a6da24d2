"""`from leadwatch import AlertEscalationRouter`: the settings, ready to decide, without a
database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from leadwatch import AlertEscalationRouter
from leadwatch.core.escalation import Action, Status, begin
from leadwatch.core.policy import LeadFacts, Level, Thresholds

PEOPLE = [
    {"key": "dana", "name": "Dana Reyes", "email": "dana@example.com", "phone": "+15550100001"},
    {"key": "sam", "name": "Sam Patel", "roles": ["sales_manager"], "phone": "+15550100002"},
]
LEAD = LeadFacts(lead_id=7, dealership="Riverside Motors", rep="Dana Reyes", price=41_000.0)
TUESDAY_10AM_CHICAGO = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
ZONE = "America/Chicago"


def test_the_router_assesses_and_previews_with_its_settings() -> None:
    router = AlertEscalationRouter.from_settings({"people": PEOPLE}, version=4)
    assert router.level(0.05) is Level.CRITICAL and router.level(0.5) is Level.LOW
    assessment, steps = router.preview(LEAD, 0.05, timezone=ZONE, start=TUESDAY_10AM_CHICAGO)
    assert assessment.plan is not None and assessment.plan.settings_version == 4
    assert steps[0].at == TUESDAY_10AM_CHICAGO and steps[0].action is Action.NOTIFY
    assert steps[0].recipients == ["Dana Reyes", "Sam Patel"]
    assert steps[1].at == TUESDAY_10AM_CHICAGO + timedelta(minutes=10)
    assert "nobody holds role general_manager" in steps[1].reason  # then the fallback
    assert steps[-1].state.status is Status.EXHAUSTED


def test_the_router_decides_a_due_step_and_leaves_low_risk_alone() -> None:
    router = AlertEscalationRouter.from_settings(
        '{"people": ' + str(PEOPLE).replace("'", '"') + "}"
    )
    assessment = router.assess(LEAD, 0.15)
    assert assessment.plan is not None and assessment.level is Level.HIGH
    state = begin(assessment.plan, TUESDAY_10AM_CHICAGO)
    decision = router.decide(
        state, assessment.plan, LEAD, timezone=ZONE, now=TUESDAY_10AM_CHICAGO + timedelta(minutes=5)
    )
    assert decision.action is Action.NOTIFY and decision.channels == ["sms", "in_app"]
    low, nothing = router.preview(LEAD, 0.6, timezone=ZONE, start=TUESDAY_10AM_CHICAGO)
    assert low.plan is None and nothing == []
    strict = router.assess(LEAD, 0.6, thresholds=Thresholds(0.5, 0.7, 0.9))
    assert strict.level is Level.HIGH


def test_bad_settings_are_refused_with_the_field() -> None:
    with pytest.raises(ValidationError, match="policies"):
        AlertEscalationRouter.from_settings({"policies": {"x": {"steps": []}}})
