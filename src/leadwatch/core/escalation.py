"""The escalation decision, as a pure function of values: no database, network or clock.

`assess` gives a lead its risk level and freezes the policy it will follow (`Plan`); `begin`
starts the chain; `decide(state, plan, lead, ...)` runs whatever falls due at ``now`` and
returns a `Decision`: who to notify and where, or why the step is held, or why the chain
stops, with the escalation's next state. The service layer stores the state, writes the
decision's messages and schedules ``state.due_at``; `preview` runs the same function
forward in time without storing or sending anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from leadwatch.core.directory import Directory
from leadwatch.core.policy import (
    SEVERITY,
    Channel,
    Delivery,
    LeadFacts,
    Level,
    Plan,
    RecipientRef,
    Rules,
    Thresholds,
)


class Calendar(Protocol):
    """Working hours of the lead's dealership (`core.calendar.WorkingHours`)."""

    @property
    def timezone(self) -> str: ...

    def is_open(self, at: datetime) -> bool: ...

    def next_opening(self, at: datetime) -> datetime | None: ...


class Status(StrEnum):
    ACTIVE = "active"
    CLAIMED = "claimed"
    STOPPED = "stopped"
    EXHAUSTED = "exhausted"


ENDED = frozenset({Status.STOPPED, Status.EXHAUSTED})


class Action(StrEnum):
    NOTIFY = "notify"
    HOLD = "hold"
    STOP = "stop"
    WAIT = "wait"
    UNROUTABLE = "unroutable"
    CLAIM = "claim"
    UPGRADE = "upgrade"
    START = "start"


class State(NamedTuple):
    """Where an escalation is: the next step to run and when it falls due. (Tuples rather
    than frozen dataclasses: decisions run in hot loops, and ``_replace`` is ~10x cheaper.)"""

    status: Status
    step: int
    cycle: int
    due_at: datetime | None
    started_at: datetime
    depth: int = 0  # steps that notified somebody
    claimed_at: datetime | None = None


class Decision(NamedTuple):
    action: Action
    at: datetime
    reason: str
    state: State
    step: int | None = None
    deliveries: tuple[Delivery, ...] = ()
    fallback: bool = False
    after_hours: bool = False

    @property
    def recipients(self) -> list[str]:
        return list(dict.fromkeys(d.name for d in self.deliveries))

    @property
    def channels(self) -> list[str]:
        return list(dict.fromkeys(d.channel.value for d in self.deliveries))


@dataclass(frozen=True, slots=True)
class Assessment:
    level: Level
    probability: float
    plan: Plan | None  # None: not escalated (low risk)
    reason: str


def assess(
    rules: Rules,
    lead: LeadFacts,
    probability: float,
    *,
    thresholds: Thresholds,
    settings_version: int = 0,
) -> Assessment:
    """The lead's level and, unless it is not escalated, the policy it will follow and why."""
    level = thresholds.level(probability)
    line = thresholds.line(level)
    said = f"P(sale in {rules.horizon_days} d) {_p(probability)}"
    if line is None:
        why = f"{said} >= medium line {_p(thresholds.medium)}: low risk"
        if not rules.escalate_low:
            return Assessment(level, probability, None, f"{why}, not escalated")
    else:
        why = f"{said} < {level.value} line {_p(line)}: {level.value}"
    policy_name = rules.level_policies[level]
    chosen = f"the {level.value} policy {policy_name!r}"
    for route in rules.routes:
        matched = route.when.explain_match(lead, level)
        if matched is not None:
            policy_name = route.policy
            chosen = f"route {route.name!r} ({matched}) chose policy {policy_name!r}"
            break
    plan = Plan(
        level=level,
        policy=rules.policies[policy_name],
        why=f"{why}; {chosen}",
        after_hours=rules.after_hours.get(level, "hold"),
        after_hours_recipients=rules.after_hours_recipients,
        after_hours_channels=rules.after_hours_channels,
        fallback_recipients=rules.fallback_recipients,
        fallback_channels=rules.fallback_channels,
        claim_timeout_minutes=rules.claim_timeout_minutes,
        settings_version=settings_version,
    )
    return Assessment(level, probability, plan, plan.why)


def begin(plan: Plan, now: datetime) -> State:
    first = plan.policy.steps[0]
    return State(Status.ACTIVE, 0, 0, now + _minutes(first.delay_minutes), now)


def decide(
    state: State,
    plan: Plan,
    lead: LeadFacts,
    *,
    calendar: Calendar,
    directory: Directory,
    now: datetime,
) -> Decision:
    """What to do at ``now``. The lead is re-checked first: contact, sale or loss stops the
    chain; a lapsed claim resumes it; working hours are judged at ``now``, not at the start."""
    if state.status in ENDED:
        return Decision(Action.STOP, now, f"escalation already {state.status.value}", state)
    stop = _stop_reason(lead)
    if stop:
        ended = state._replace(status=Status.STOPPED, due_at=None)
        return Decision(Action.STOP, now, stop, ended)
    if state.due_at is None or now < state.due_at:
        when = state.due_at.isoformat() if state.due_at else "never"
        return Decision(Action.WAIT, now, f"nothing due before {when}", state)
    lapsed = ""
    if state.status is Status.CLAIMED:
        lapsed = (
            f"claim lapsed: no contact logged within {plan.claim_timeout_minutes:g} min; "
            "escalation resumes; "
        )
        state = state._replace(status=Status.ACTIVE, claimed_at=None)
    step = plan.policy.steps[state.step]
    label = f"step {state.step + 1}/{len(plan.policy.steps)} of {plan.policy.name!r}"
    if state.cycle:
        label += f" (repeat {state.cycle})"
    is_open = calendar.is_open(now)
    if not is_open and plan.after_hours == "hold":
        opening = calendar.next_opening(now)
        if opening is not None:
            why = (
                f"{lapsed}{label}: after hours at {lead.dealership} "
                f"({_local(now, calendar)}); {plan.level.value} holds until the next opening "
                f"({_local(opening, calendar)})"
            )
            held = state._replace(due_at=opening)
            return Decision(Action.HOLD, now, why, held, state.step, after_hours=True)
    if is_open:
        refs, channels = step.recipients, step.channels
        why = f"{lapsed}{label}: notifies {_names(refs)}"
    else:
        refs = plan.after_hours_recipients or step.recipients
        channels = plan.after_hours_channels or step.channels
        why = (
            f"{lapsed}{label}: after hours at {lead.dealership} ({_local(now, calendar)}); "
            f"{plan.level.value} routes to {_names(refs)}"
        )
    deliveries, notes = directory.deliveries(
        refs, channels, dealership=lead.dealership, rep=lead.rep
    )
    used_fallback = False
    if not deliveries:
        used_fallback = True
        fallback_channels = plan.fallback_channels or channels
        deliveries, more = directory.deliveries(
            plan.fallback_recipients, fallback_channels, dealership=lead.dealership, rep=lead.rep
        )
        why += f"; nobody reachable ({'; '.join(notes)}): fallback to "
        why += _names(plan.fallback_recipients)
        notes = more
    elif notes:
        why += f" (not reached: {'; '.join(notes)})"
    if not deliveries:
        why += f"; fallback unreachable too ({'; '.join(notes)})"
    after = _advance(state, plan, now, notified=bool(deliveries))
    action = Action.NOTIFY if deliveries else Action.UNROUTABLE
    if after.status is Status.EXHAUSTED:
        why += "; last step of the chain"
    return Decision(
        action, now, why, after, state.step, deliveries, used_fallback, after_hours=not is_open
    )


def settle(state: State, lead: LeadFacts, *, now: datetime) -> Decision | None:
    """Stop at once when the lead has been contacted, sold or lost (as its events arrive),
    rather than at the next due step; None when the chain goes on."""
    if state.status in ENDED:
        return None
    stop = _stop_reason(lead)
    if not stop:
        return None
    return Decision(Action.STOP, now, stop, state._replace(status=Status.STOPPED, due_at=None))


def fallback(
    state: State,
    plan: Plan,
    lead: LeadFacts,
    *,
    directory: Directory,
    now: datetime,
    failed_step: int,
) -> Decision:
    """Every delivery of a step failed permanently: reach the fallback recipients instead.
    The chain itself carries on as scheduled."""
    stop = _stop_reason(lead)
    if not stop and state.status is Status.STOPPED:
        stop = "escalation already stopped"
    if stop:
        if state.status not in ENDED:
            state = state._replace(status=Status.STOPPED, due_at=None)
        return Decision(Action.STOP, now, stop, state, failed_step)
    deliveries, notes = directory.deliveries(
        plan.fallback_recipients,
        plan.fallback_channels
        or plan.policy.steps[min(failed_step, len(plan.policy.steps) - 1)].channels,
        dealership=lead.dealership,
        rep=lead.rep,
    )
    why = (
        f"every delivery of step {failed_step + 1} failed permanently: fallback to "
        f"{_names(plan.fallback_recipients)}"
    )
    if notes:
        why += f" ({'; '.join(notes)})"
    action = Action.NOTIFY if deliveries else Action.UNROUTABLE
    return Decision(action, now, why, state, failed_step, deliveries, fallback=True)


def claim(state: State, plan: Plan, *, now: datetime, by: str) -> Decision:
    """A claim pauses the chain; unless contact is logged within the timeout, it resumes."""
    if state.status in ENDED:
        return Decision(Action.STOP, now, f"escalation already {state.status.value}", state)
    timeout = plan.claim_timeout_minutes
    # A claim pauses the chain: it never brings the next step forward.
    due = now + _minutes(timeout)
    if state.due_at is not None and state.due_at > due:
        due = state.due_at
    claimed = state._replace(status=Status.CLAIMED, claimed_at=now, due_at=due)
    why = f"claimed by {by}; escalation resumes unless contact is logged within {timeout:g} min"
    return Decision(Action.CLAIM, now, why, claimed)


def upgrade(state: State, old: Plan, new: Plan, *, now: datetime) -> Decision | None:
    """A worse level moves the escalation to the new level's chain from its first step;
    an equal or better level changes nothing (None)."""
    if SEVERITY[new.level] <= SEVERITY[old.level] or state.status in ENDED:
        return None
    why = f"level worsened from {old.level.value} to {new.level.value}: {new.why}"
    if state.status is Status.CLAIMED:
        # Somebody is working the lead: the claim stands; if it lapses, the new chain starts.
        moved = state._replace(step=0, cycle=0)
        return Decision(Action.UPGRADE, now, f"{why}; the claim stands", moved)
    moved = begin(new, now)._replace(started_at=state.started_at, depth=state.depth)
    return Decision(Action.UPGRADE, now, why, moved)


def preview(
    plan: Plan,
    lead: LeadFacts,
    *,
    calendar: Calendar,
    directory: Directory,
    start: datetime,
    limit: int = 50,
) -> list[Decision]:
    """The decisions the chain would make from ``start`` if nobody claimed or called."""
    state = begin(plan, start)
    out: list[Decision] = []
    while state.due_at is not None and len(out) < limit:
        decision = decide(
            state, plan, lead, calendar=calendar, directory=directory, now=state.due_at
        )
        out.append(decision)
        state = decision.state
    return out


def _stop_reason(lead: LeadFacts) -> str:
    if lead.closed:
        return f"lead {lead.status}: chain stopped"
    if lead.contacted:
        return "lead contacted: chain stopped"
    return ""


def _advance(state: State, plan: Plan, now: datetime, *, notified: bool) -> State:
    # Built positionally: this runs once per notifying decision (see State).
    steps = plan.policy.steps
    depth = state.depth + notified
    following = state.step + 1
    status, started, cycle = state.status, state.started_at, state.cycle
    if following < len(steps):
        due = now + _minutes(steps[following].delay_minutes)
        return State(status, following, cycle, due, started, depth, state.claimed_at)
    if cycle < plan.policy.repeat:
        wait = _minutes(plan.policy.repeat_after_minutes + steps[0].delay_minutes)
        return State(status, 0, cycle + 1, now + wait, started, depth, state.claimed_at)
    return State(Status.EXHAUSTED, state.step, cycle, None, started, depth, state.claimed_at)


def _p(value: float) -> str:
    """Two decimals, or as many as it takes not to print 0.0999 as the 0.10 line it misses."""
    short = f"{value:.2f}"
    return short if float(short) == value else f"{value:.4g}"


@lru_cache(maxsize=1024)
def _minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _local(at: datetime, calendar: Calendar) -> str:
    """``Fri 06 Jun 18:30 CDT``, as strftime would say it, at a fraction of its cost."""
    t = at.astimezone(_zone(calendar.timezone))
    return (
        f"{_DAYS[t.weekday()]} {t.day:02d} {_MONTHS[t.month - 1]} "
        f"{t.hour:02d}:{t.minute:02d} {t.tzname()}"
    )


@lru_cache(maxsize=1024)
def _names(refs: tuple[RecipientRef, ...]) -> str:
    return ", ".join(str(ref) for ref in refs) or "nobody"


__all__ = [
    "Action",
    "Assessment",
    "Calendar",
    "Channel",
    "Decision",
    "State",
    "Status",
    "assess",
    "begin",
    "claim",
    "decide",
    "fallback",
    "preview",
    "settle",
    "upgrade",
]
