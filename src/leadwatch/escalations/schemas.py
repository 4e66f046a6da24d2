"""API shapes for escalations: reading them, claiming, previewing, settings versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from leadwatch.escalations.document import EscalationSettings
from leadwatch.leads.schemas import LeadCreate


class DecisionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    action: str
    level: str
    step: int | None
    cycle: int
    reason: str
    recipients: list[dict[str, Any]]
    fallback: bool
    after_hours: bool


class EscalationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    lead_id: int
    level: str
    probability: float
    status: str
    step: int
    cycle: int
    depth: int
    due_at: datetime | None
    started_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    settings_version: int
    policy: str = ""


class EscalationDetail(EscalationRead):
    plan: dict[str, Any]
    decisions: list[DecisionRead]


class EscalationPage(BaseModel):
    limit: int
    offset: int
    items: list[EscalationRead]


class ClaimCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(
        default=None, max_length=200, description="Who claims; default: the API token's name."
    )


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead: LeadCreate
    at: datetime | None = Field(
        default=None, description="When to start (ISO 8601 with zone); default: now."
    )
    probability: float | None = Field(
        default=None, ge=0, le=1, description="Use this probability instead of the model's."
    )


class PreviewStep(BaseModel):
    at: datetime
    action: Literal["notify", "hold"]
    recipients: list[str]
    channels: list[str]
    reason: str


class PreviewRead(BaseModel):
    level: str
    probability: float
    horizon_days: int
    reason: str
    policy: str | None
    settings_version: int
    steps: list[PreviewStep]


class SettingsRead(BaseModel):
    version: int
    author: str | None = None
    created_at: datetime | None = None
    comment: str | None = None
    document: EscalationSettings


class SettingsWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any]
    comment: str | None = Field(default=None, max_length=2000)


class SettingsVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    author: str
    comment: str | None
    changes: list[str]
    created_at: datetime
