"""Escalation rules as values: risk levels, recipients, chains of steps, routing, after hours.

These are what a manager configures (Notification Settings > Lead Escalation) and what an
escalation freezes when it starts (`Plan`), so that editing the settings later never changes
an escalation in flight. Parsing and storage live in the service layer; this module only
holds the values and the small rules that belong to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


class Level(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY: Mapping[Level, int] = {Level.LOW: 0, Level.MEDIUM: 1, Level.HIGH: 2, Level.CRITICAL: 3}


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    SLACK = "slack"
    WEBHOOK = "webhook"
    IN_APP = "in_app"


class Role(StrEnum):
    SALES_MANAGER = "sales_manager"
    GENERAL_MANAGER = "general_manager"
    BDC = "bdc"


AfterHoursMode = Literal["hold", "route"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A lead is critical below ``critical``, high below ``high``, medium below ``medium``.

    The probability compared is the calibrated P(sale within the horizon), so a lower number
    is a worse lead."""

    critical: float = 0.10
    high: float = 0.20
    medium: float = 0.30

    def __post_init__(self) -> None:
        if not 0.0 < self.critical < self.high < self.medium < 1.0:
            raise ValueError(
                "risk thresholds must satisfy 0 < critical < high < medium < 1, got "
                f"critical={self.critical}, high={self.high}, medium={self.medium}"
            )

    def level(self, probability: float) -> Level:
        if not 0.0 <= probability <= 1.0:  # NaN fails too: refuse rather than call it "low"
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if probability < self.critical:
            return Level.CRITICAL
        if probability < self.high:
            return Level.HIGH
        if probability < self.medium:
            return Level.MEDIUM
        return Level.LOW

    def line(self, level: Level) -> float | None:
        """The probability below which a lead has this level (None for low)."""
        return {
            Level.CRITICAL: self.critical,
            Level.HIGH: self.high,
            Level.MEDIUM: self.medium,
        }.get(level)


@dataclass(frozen=True, slots=True)
class RecipientRef:
    """Who a step notifies: the lead's assigned rep, everyone holding a role at the lead's
    dealership, or one named person from the directory (by key)."""

    kind: Literal["rep", "role", "person"]
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> RecipientRef:
        """``rep``, ``role:sales_manager`` (or just ``sales_manager``), ``person:KEY``."""
        raw = text.strip()
        if raw in {"rep", "assigned_rep"}:
            return cls("rep")
        kind, _, name = raw.partition(":")
        if not name and kind in Role.__members__.values():
            return cls("role", kind)
        if kind == "role" and name in Role.__members__.values():
            return cls("role", name)
        if kind == "person" and name.strip():
            return cls("person", name.strip())
        roles = ", ".join(role.value for role in Role)
        raise ValueError(f"unknown recipient {text!r}: use 'rep', a role ({roles}) or 'person:KEY'")

    def __str__(self) -> str:
        return "rep" if self.kind == "rep" else f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class Step:
    """Wait ``delay_minutes`` after the previous step (or the start), then notify."""

    delay_minutes: float
    recipients: tuple[RecipientRef, ...]
    channels: tuple[Channel, ...]

    def __post_init__(self) -> None:
        if not self.delay_minutes >= 0:
            raise ValueError(f"a step's delay must be >= 0 minutes, got {self.delay_minutes}")
        if not self.recipients:
            raise ValueError("a step needs at least one recipient")
        if not self.channels:
            raise ValueError("a step needs at least one channel")


@dataclass(frozen=True, slots=True)
class Policy:
    """An ordered chain of steps, run ``repeat`` more times after the first pass, each new
    pass starting ``repeat_after_minutes`` after the last step."""

    name: str
    steps: tuple[Step, ...]
    repeat: int = 0
    repeat_after_minutes: float = 60.0

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"policy {self.name!r} has no steps")
        if self.repeat < 0:
            raise ValueError(f"policy {self.name!r}: repeat must be >= 0")
        if not self.repeat_after_minutes >= 0:
            raise ValueError(f"policy {self.name!r}: repeat_after_minutes must be >= 0")


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What routing and the chain need to know about a lead, read when a step falls due."""

    lead_id: int
    dealership: str
    status: str = "new"
    contacted: bool = False
    rep: str | None = None
    source: str | None = None
    make: str | None = None
    model: str | None = None
    price: float | None = None

    @property
    def closed(self) -> bool:
        return self.status in {"sold", "delivered", "lost"}


def _folded(values: frozenset[str]) -> frozenset[str]:
    return frozenset(value.casefold() for value in values)


@dataclass(frozen=True, slots=True)
class Condition:
    """Every given part must hold (empty sets and None mean "any"). Text compares without
    regard to case."""

    levels: frozenset[Level] = frozenset()
    min_price: float | None = None
    max_price: float | None = None
    sources: frozenset[str] = frozenset()
    makes: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    reps: frozenset[str] = frozenset()
    dealerships: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("sources", "makes", "models", "reps", "dealerships"):
            object.__setattr__(self, name, _folded(getattr(self, name)))
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_price {low} is above max_price {high}")

    def explain_match(self, lead: LeadFacts, level: Level) -> str | None:
        """None when the lead does not match, else the parts that matched, in words."""
        why: list[str] = []
        if self.levels:
            if level not in self.levels:
                return None
            why.append(f"level {level.value}")
        if self.min_price is not None or self.max_price is not None:
            if lead.price is None:
                return None
            if self.min_price is not None and lead.price < self.min_price:
                return None
            if self.max_price is not None and lead.price > self.max_price:
                return None
            bounds = [
                f">= {self.min_price:,.0f}" if self.min_price is not None else "",
                f"<= {self.max_price:,.0f}" if self.max_price is not None else "",
            ]
            why.append(f"price {lead.price:,.0f} {' and '.join(b for b in bounds if b)}")
        for name, value in (
            ("sources", lead.source),
            ("makes", lead.make),
            ("models", lead.model),
            ("reps", lead.rep),
            ("dealerships", lead.dealership),
        ):
            wanted: frozenset[str] = getattr(self, name)
            if wanted:
                if value is None or value.casefold() not in wanted:
                    return None
                why.append(f"{name[:-1]} {value}")
        return ", ".join(why) or "always"


@dataclass(frozen=True, slots=True)
class Route:
    """Advanced routing: leads matching ``when`` get ``policy`` instead of their level's."""

    name: str
    when: Condition
    policy: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """Who to reach and where (after resolving a step against the directory)."""

    person: str
    name: str
    channel: Channel
    address: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The policy an escalation froze when it started, with everything a step needs later."""

    level: Level
    policy: Policy
    why: str
    after_hours: AfterHoursMode = "hold"
    after_hours_recipients: tuple[RecipientRef, ...] = ()
    after_hours_channels: tuple[Channel, ...] = ()
    fallback_recipients: tuple[RecipientRef, ...] = ()
    fallback_channels: tuple[Channel, ...] = ()
    claim_timeout_minutes: float = 30.0
    settings_version: int = 0


def _default_policies() -> dict[str, Policy]:
    email_sms = (Channel.EMAIL, Channel.SMS)
    rep = (RecipientRef("rep"),)
    manager = (RecipientRef("role", Role.SALES_MANAGER),)
    return {
        "critical": Policy(
            "critical",
            (
                Step(0, (*rep, *manager), (Channel.SMS, Channel.EMAIL, Channel.IN_APP)),
                Step(10, (RecipientRef("role", Role.GENERAL_MANAGER),), email_sms),
            ),
            repeat=1,
            repeat_after_minutes=30,
        ),
        "high": Policy(
            "high",
            (
                Step(5, rep, (Channel.SMS, Channel.IN_APP)),
                Step(15, manager, email_sms),
            ),
        ),
        "medium": Policy(
            "medium",
            (
                Step(15, rep, (Channel.EMAIL, Channel.IN_APP)),
                Step(45, (RecipientRef("role", Role.BDC),), (Channel.EMAIL,)),
            ),
        ),
        "low": Policy("low", (Step(60, rep, (Channel.IN_APP,)),)),
    }


@dataclass(frozen=True, slots=True)
class Rules:
    """The whole Lead Escalation configuration (one version of the settings)."""

    thresholds: Thresholds | None = field(default_factory=Thresholds)
    horizon_days: Literal[14, 30] = 30
    escalate_low: bool = False
    policies: Mapping[str, Policy] = field(default_factory=_default_policies)
    level_policies: Mapping[Level, str] = field(
        default_factory=lambda: {level: level.value for level in Level}
    )
    routes: tuple[Route, ...] = ()
    after_hours: Mapping[Level, AfterHoursMode] = field(
        default_factory=lambda: {
            Level.CRITICAL: "route",
            Level.HIGH: "hold",
            Level.MEDIUM: "hold",
            Level.LOW: "hold",
        }
    )
    after_hours_recipients: tuple[RecipientRef, ...] = (RecipientRef("role", Role.SALES_MANAGER),)
    after_hours_channels: tuple[Channel, ...] = (Channel.SMS,)
    fallback_recipients: tuple[RecipientRef, ...] = (RecipientRef("role", Role.GENERAL_MANAGER),)
    fallback_channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.SMS)
    claim_timeout_minutes: float = 30.0
    watch_hours: float = 72.0

    def __post_init__(self) -> None:
        for level in Level:
            name = self.level_policies.get(level)
            if name is None:
                raise ValueError(f"no policy for level {level.value}")
            if name not in self.policies:
                raise ValueError(f"level {level.value} names unknown policy {name!r}")
        for route in self.routes:
            if route.policy not in self.policies:
                raise ValueError(f"route {route.name!r} names unknown policy {route.policy!r}")
        if not self.claim_timeout_minutes > 0:
            raise ValueError("claim_timeout_minutes must be > 0")
        if not self.watch_hours > 0:
            raise ValueError("watch_hours must be > 0")
