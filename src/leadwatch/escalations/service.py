"""The escalation service: the pure decisions of `core.escalation`, stored.

Keyword-only functions that take the session and never commit. Each stores the escalation's
new state, logs the decision with its reason and writes the messages to the outbox, all in
the caller's unit of work, so a decision and its messages land together or not at all.

Exactly once, across processes: a due step is taken by swapping the escalation's run token
in a conditional UPDATE (and, on PostgreSQL, after a ``FOR UPDATE SKIP LOCKED`` so workers
pass over rows another one holds). A process that read an old token updates no row and
runs nothing.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from leadwatch.core import escalation as engine
from leadwatch.core.escalation import Action, Decision, State, Status
from leadwatch.core.leads import EventType, LeadEventIn
from leadwatch.core.policy import SEVERITY, LeadFacts, Level, Plan, Thresholds
from leadwatch.db.engine import insert_or_skip
from leadwatch.escalations import claims
from leadwatch.escalations.document import plan_from_json, plan_to_json
from leadwatch.escalations.messages import LeadCard
from leadwatch.escalations.models import ClaimUse, Escalation, EscalationDecision
from leadwatch.escalations.settings import Config
from leadwatch.escalations.stats import scoped
from leadwatch.leads import service as lead_service
from leadwatch.leads.models import Dealership, Lead
from leadwatch.leads.store import IN_BATCH
from leadwatch.notifications.models import OutboxMessage
from leadwatch.notifications.templates import TemplateSet, message_context

LIVE = (Status.ACTIVE.value, Status.CLAIMED.value)
LeadRow = Any  # a result row of _LEAD_COLUMNS (typed Rows are invariant and unwieldy here)


class EscalationError(ValueError):
    """A request about an escalation that cannot be carried out; the message says why."""


class EscalationNotFoundError(EscalationError):
    pass


@dataclass(frozen=True)
class Runtime:
    """What decisions need besides the session: the settings in force, the risk lines, the
    key that signs claim links and the address those links point at."""

    config: Config
    thresholds: Thresholds
    signing_key: bytes
    public_url: str
    claim_link_hours: float = 24.0
    delivery_max_age_hours: float = 24.0
    templates: TemplateSet = field(default_factory=TemplateSet)


@dataclass
class WatchCounts:
    started: int = 0
    upgraded: int = 0
    stopped: int = 0
    notified: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


# ---- reading leads --------------------------------------------------------------------------

_LEAD_COLUMNS = (
    Lead.id,
    Lead.duplicate_of_id,
    Lead.dealership_id,
    Dealership.name.label("dealership"),
    Dealership.timezone,
    Lead.created_at,
    Lead.status,
    Lead.contacted_at,
    Lead.rep,
    Lead.lead_source,
    Lead.vehicle_year,
    Lead.vehicle_make,
    Lead.vehicle_model,
    Lead.vehicle_price,
    Lead.customer_name,
    Lead.sale_probability_14d,
    Lead.sale_probability_30d,
    Lead.top_factors,
)


_READ_LEADS = (
    select(*_LEAD_COLUMNS)
    .join(Dealership, Lead.dealership_id == Dealership.id)
    .where(Lead.id.in_(bindparam("ids", expanding=True)))
)
_ESCALATIONS_OF = select(Escalation).where(Escalation.lead_id.in_(bindparam("ids", expanding=True)))


def _read_leads(db_session: Session, ids: Iterable[int]) -> dict[int, LeadRow]:
    wanted = sorted(set(ids))
    out: dict[int, LeadRow] = {}
    for start in range(0, len(wanted), IN_BATCH):
        for row in db_session.execute(_READ_LEADS, {"ids": wanted[start : start + IN_BATCH]}):
            out[int(row.id)] = row
    return out


def _facts(row: LeadRow) -> LeadFacts:
    price = row.vehicle_price
    return LeadFacts(
        lead_id=row.id,
        dealership=row.dealership,
        status=row.status,
        contacted=row.contacted_at is not None,
        rep=row.rep,
        source=row.lead_source,
        make=row.vehicle_make,
        model=row.vehicle_model,
        price=float(price) if price is not None else None,
    )


def _probability(row: LeadRow, horizon: int) -> float | None:
    value = row.sale_probability_14d if horizon == 14 else row.sale_probability_30d
    return None if value is None else float(value)


def _card(row: LeadRow, horizon: int) -> LeadCard:
    vehicle = " ".join(
        str(part) for part in (row.vehicle_year, row.vehicle_make, row.vehicle_model) if part
    )
    return LeadCard(
        lead_id=row.id,
        dealership=row.dealership,
        timezone=row.timezone,
        created_at=row.created_at,
        customer=row.customer_name,
        vehicle=vehicle or None,
        source=row.lead_source,
        rep=row.rep,
        probability=_probability(row, horizon),
        horizon_days=horizon,
        factors=tuple(row.top_factors or ()),
    )


# ---- state <-> rows -------------------------------------------------------------------------


def state_of(row: Escalation) -> State:
    return State(
        status=Status(row.status),
        step=row.step,
        cycle=row.cycle,
        due_at=row.due_at,
        started_at=row.started_at,
        depth=row.depth,
        claimed_at=row.claimed_at,
    )


_ESCALATIONS = cast(Table, Escalation.__table__)
_DECISIONS = cast(Table, EscalationDecision.__table__)
_INSERT_DECISION = _DECISIONS.insert().returning(_DECISIONS.c.id)
_INSERT_MESSAGE = cast(Table, OutboxMessage.__table__).insert()
_UPDATE_ESCALATION = _ESCALATIONS.update().where(_ESCALATIONS.c.id == bindparam("b_id"))
_START: dict[str, Any] = {}


def _start_statement(dialect_name: str) -> Any:
    """INSERT ... ON CONFLICT (active_lead_id) DO NOTHING RETURNING id, built once."""
    statement = _START.get(dialect_name)
    if statement is None:
        statement = _START[dialect_name] = insert_or_skip(
            dialect_name, _ESCALATIONS, ["active_lead_id"]
        ).returning(_ESCALATIONS.c.id)
    return statement


def _state_values(state: State, now: datetime, reason: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": state.status.value,
        "step": state.step,
        "cycle": state.cycle,
        "depth": state.depth,
        "due_at": state.due_at,
        "claimed_at": state.claimed_at,
        "updated_at": now,
    }
    if state.status in engine.ENDED:
        values.update(active_lead_id=None, ended_at=now, end_reason=reason)
    return values


def _apply(
    db_session: Session,
    row: Escalation,
    decision: Decision,
    *,
    lead: LeadRow,
    runtime: Runtime,
) -> int:
    """Store a decision: the log entry, the escalation's new state, and the messages."""
    cycle = row.cycle  # the pass the decided step belongs to, before it moves on
    for name, value in _state_values(decision.state, decision.at, decision.reason).items():
        setattr(row, name, value)
    return _record(
        db_session, row.id, row.lead_id, row.level, cycle, decision, lead=lead, runtime=runtime
    )


def _record(
    db_session: Session,
    escalation_id: int,
    lead_id: int,
    level: str,
    cycle: int,
    decision: Decision,
    *,
    lead: LeadRow,
    runtime: Runtime,
) -> int:
    """The decision's log entry and its messages: constant statements with parameters, so
    they compile once (this is intake's hot path)."""
    logged = db_session.execute(
        _INSERT_DECISION,
        {
            "escalation_id": escalation_id,
            "lead_id": lead_id,
            "at": decision.at,
            "action": decision.action.value,
            "level": level,
            "step": decision.step,
            "cycle": cycle,
            "reason": decision.reason,
            "recipients": [
                {"person": d.person, "name": d.name, "channel": d.channel.value}
                for d in decision.deliveries
            ],
            "fallback": decision.fallback,
            "after_hours": decision.after_hours,
            "fell_back": False,
        },
    ).scalar_one()
    if decision.deliveries:
        messages = _messages(escalation_id, lead_id, level, logged, decision, lead, runtime)
        db_session.execute(_INSERT_MESSAGE, messages)
    return int(logged)


def _messages(
    escalation_id: int,
    lead_id: int,
    level: str,
    decision_id: int,
    decision: Decision,
    lead: LeadRow,
    runtime: Runtime,
) -> list[dict[str, Any]]:
    card = _card(lead, runtime.config.rules.horizon_days)
    expires = decision.at + timedelta(hours=runtime.claim_link_hours)
    links: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for delivery in decision.deliveries:
        url = links.get(delivery.person)
        if url is None:
            token = claims.make_token(
                runtime.signing_key,
                escalation_id=escalation_id,
                person=delivery.person,
                expires_at=expires,
            )
            url = links[delivery.person] = f"{runtime.public_url.rstrip('/')}/claim/{token}"
        context = message_context(
            card, level=level, claim_url=url, now=decision.at, recipient_name=delivery.name
        )
        rendered = runtime.templates.render(
            channel=delivery.channel.value, level=level, context=context
        )
        subject, body = rendered.subject, rendered.text
        rows.append(
            {
                "idempotency_key": uuid.uuid4().hex,
                "html": rendered.html,
                "data": _message_data(card, level=level, claim_url=url, now=decision.at),
                "expires_at": decision.at + timedelta(hours=runtime.delivery_max_age_hours),
                "escalation_id": escalation_id,
                "decision_id": decision_id,
                "lead_id": lead_id,
                "channel": delivery.channel.value,
                "recipient": delivery.person,
                "recipient_name": delivery.name,
                "address": delivery.address,
                "subject": subject,
                "body": body,
                "level": level,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": decision.at,
                "created_at": decision.at,
            }
        )
    return rows


def _message_data(card: LeadCard, *, level: str, claim_url: str, now: datetime) -> dict[str, Any]:
    """The facts channels format themselves (Slack blocks, webhook JSON)."""
    return {
        "lead_id": card.lead_id,
        "customer": card.customer,
        "vehicle": card.vehicle,
        "dealership": card.dealership,
        "source": card.source,
        "rep": card.rep,
        "level": level,
        "probability": card.probability,
        "horizon_days": card.horizon_days,
        "factors": list(card.factors),
        "created_at": card.created_at.isoformat(),
        "waited_minutes": round(max(0.0, (now - card.created_at).total_seconds()) / 60, 1),
        "claim_url": claim_url,
    }


# ---- watching leads: start, upgrade, stop ---------------------------------------------------


def watch(
    *,
    db_session: Session,
    lead_ids: Sequence[int],
    runtime: Runtime,
    now: datetime,
    new_ids: Collection[int] = (),
    views: Mapping[int, Mapping[str, Any]] | None = None,
) -> WatchCounts:
    """Bring the escalations of these leads up to date: stop them when the lead has been
    contacted, sold or lost; start one for an at-risk open lead; move one up to a worse
    level. Duplicates of a shopper act on the original lead's single escalation. Steps due
    at once (a critical lead's first step) run here, in the same unit of work.

    ``new_ids``: leads inserted by this unit of work, which can have no escalation yet (one
    started by another process meanwhile is refused by the unique active lead id).
    ``views``: leads this unit of work has just stored, as `leads.store` saw them
    (`StoredLead.view`): not read back."""
    counts = WatchCounts()
    rows: dict[int, LeadRow] = {i: SimpleNamespace(**v) for i, v in (views or {}).items()}
    unread = [i for i in lead_ids if i not in rows]
    if unread:
        rows.update(_read_leads(db_session, unread))
    roots = {row.duplicate_of_id or row.id for row in rows.values()}
    missing = roots - rows.keys()
    if missing:
        rows.update(_read_leads(db_session, missing))
    live: dict[int, Escalation] = {}
    ended: dict[int, list[tuple[str, str]]] = {}
    known = sorted(roots.difference(new_ids))
    for found in db_session.scalars(_ESCALATIONS_OF, {"ids": known}) if known else ():
        if found.active_lead_id is not None:
            live[found.lead_id] = found
        else:
            ended.setdefault(found.lead_id, []).append((found.status, found.level))
    rules = runtime.config.rules
    watch_from = now - timedelta(hours=rules.watch_hours)
    for root in sorted(roots):
        lead = rows.get(root)
        if lead is None:
            continue
        facts = _facts(lead)
        esc = live.get(root)
        if esc is not None:
            did = _settle_or_upgrade(db_session, esc, facts, lead=lead, runtime=runtime, now=now)
            counts.stopped += did == "stopped"
            counts.upgraded += did == "upgraded"
            continue
        if facts.closed or facts.contacted:
            counts.skip("contacted or closed")
            continue
        probability = _probability(lead, rules.horizon_days)
        if probability is None:
            counts.skip("not scored")
            continue
        assessment = runtime.config.assess(facts, probability, thresholds=runtime.thresholds)
        if lead.created_at < watch_from:
            counts.skip("older than the watch window")
            continue
        if assessment.plan is None:
            counts.skip("low risk")
            continue
        if _ended_at_or_above(ended.get(root, ()), assessment.level):
            counts.skip("already escalated")
            continue
        started = _start(db_session, lead, assessment.plan, probability, runtime=runtime, now=now)
        if started is None:
            counts.skip("started elsewhere")
            continue
        counts.started += 1
        counts.notified += started
    return counts


def _settle_or_upgrade(
    db_session: Session,
    esc: Escalation,
    facts: LeadFacts,
    *,
    lead: LeadRow,
    runtime: Runtime,
    now: datetime,
) -> str:
    """Stop a live escalation whose lead was contacted or closed, or move it up a level.
    The row is locked only when something changes; if another process changed it since it
    was read, it is left alone (its own next step re-checks the lead). Returns what it did."""
    stop = engine.settle(state_of(esc), facts, now=now)
    if stop is not None:
        if not _lock(db_session, esc):
            return ""
        _apply(db_session, esc, stop, lead=lead, runtime=runtime)
        return "stopped"
    probability = _probability(lead, runtime.config.rules.horizon_days)
    if probability is None:
        return ""
    assessment = runtime.config.assess(facts, probability, thresholds=runtime.thresholds)
    if assessment.plan is None:
        return ""
    old = plan_from_json(esc.plan)
    moved = engine.upgrade(state_of(esc), old, assessment.plan, now=now)
    if moved is None or not _lock(db_session, esc):
        return ""
    esc.level = assessment.plan.level.value
    esc.plan = plan_to_json(assessment.plan)
    esc.settings_version = assessment.plan.settings_version
    esc.probability = probability
    _apply(db_session, esc, moved, lead=lead, runtime=runtime)
    if moved.state.due_at is not None and moved.state.due_at <= now:
        run_locked_step(db_session, esc, lead=lead, runtime=runtime, now=now)
    return "upgraded"


def _ended_at_or_above(rows: Iterable[tuple[str, str]], level: Level) -> bool:
    """A lead whose chain ended (stopped, or ran out at this level or a worse one) is not
    chased again at the same level; a worse level starts a new chain."""
    return any(
        status == Status.STOPPED.value or SEVERITY[Level(old)] >= SEVERITY[level]
        for status, old in rows
    )


def _start(
    db_session: Session,
    lead: LeadRow,
    plan: Plan,
    probability: float,
    *,
    runtime: Runtime,
    now: datetime,
) -> int | None:
    """Insert the escalation unless another process just did (the unique active lead id
    decides; ON CONFLICT DO NOTHING keeps the caller's transaction healthy), and run its
    first step at once when it is due now. Returns how many steps notified (0 or 1), or
    None when it was started elsewhere."""
    state = engine.begin(plan, now)
    decisions = [Decision(Action.START, now, plan.why, state)]
    if state.due_at is not None and state.due_at <= now:
        first = runtime.config.decide(state, plan, _facts(lead), timezone=lead.timezone, now=now)
        decisions.append(first)
    # Inserted in the state its first step leaves it in (one statement, not an insert and
    # an update), unless that step ends it: the insert must still claim the active lead.
    last = decisions[-1]
    settled = last.state.status not in engine.ENDED
    inserted = last if settled else decisions[0]
    values = {
        "lead_id": lead.id,
        "active_lead_id": lead.id,
        "dealership_id": lead.dealership_id,
        "level": plan.level.value,
        "probability": probability,
        "plan": plan_to_json(plan),
        "settings_version": plan.settings_version,
        "run_token": secrets.token_hex(16),
        "started_at": now,
        **_state_values(inserted.state, now, inserted.reason),
    }
    statement = _start_statement(db_session.get_bind().dialect.name)
    new_id = db_session.execute(statement, values).scalar_one_or_none()
    if new_id is None:
        return None
    level = plan.level.value
    for decision in decisions:
        _record(db_session, new_id, lead.id, level, 0, decision, lead=lead, runtime=runtime)
    if not settled:
        db_session.execute(
            _UPDATE_ESCALATION, {"b_id": new_id, **_state_values(last.state, now, last.reason)}
        )
    return int(last.action is Action.NOTIFY)


# ---- due steps ------------------------------------------------------------------------------


def due(*, db_session: Session, now: datetime, limit: int = 500) -> list[tuple[int, str]]:
    """Escalations with a step due at ``now``, oldest first, with the run token read."""
    query = (
        select(Escalation.id, Escalation.run_token)
        .where(Escalation.status.in_(LIVE), Escalation.due_at <= now)
        .order_by(Escalation.due_at)
        .limit(limit)
    )
    return [(int(i), str(t)) for i, t in db_session.execute(query)]


def next_due_at(*, db_session: Session) -> datetime | None:
    query = select(Escalation.due_at).where(Escalation.status.in_(LIVE)).order_by(Escalation.due_at)
    return db_session.scalars(query.limit(1)).first()


def _lock(db_session: Session, esc: Escalation) -> bool:
    """Own ``esc`` for this unit of work by swapping the run token it was read with. False
    when another process changed it since (its state here is stale): leave it alone."""
    fresh = secrets.token_hex(16)
    result = db_session.execute(
        update(Escalation)
        .where(Escalation.id == esc.id, Escalation.run_token == esc.run_token)
        .values(run_token=fresh)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    set_committed_value(esc, "run_token", fresh)
    return True


def _locked(db_session: Session, escalation_id: int) -> Escalation:
    """The escalation, freshly read and owned by this unit of work."""
    for _ in range(5):
        esc = db_session.get(Escalation, escalation_id, populate_existing=True)
        if esc is None:
            raise EscalationNotFoundError(f"no escalation {escalation_id}")
        if _lock(db_session, esc):
            return esc
    raise EscalationError(f"escalation {escalation_id} is busy; try again")


def take(*, db_session: Session, escalation_id: int, token: str, now: datetime) -> bool:
    """Take a due step for this unit of work: True only for the one process whose token
    swap matched. Must be the first write of the transaction."""
    if db_session.get_bind().dialect.name == "postgresql":
        held = db_session.execute(
            select(Escalation.id)
            .where(Escalation.id == escalation_id)
            .with_for_update(skip_locked=True)
        ).first()
        if held is None:
            return False
    result = db_session.execute(
        update(Escalation)
        .where(
            Escalation.id == escalation_id,
            Escalation.run_token == token,
            Escalation.status.in_(LIVE),
            Escalation.due_at <= now,
        )
        .values(run_token=secrets.token_hex(16))
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def run_step(
    *, db_session: Session, escalation_id: int, runtime: Runtime, now: datetime
) -> Decision:
    """Run the step of an escalation already taken with `take`."""
    esc = db_session.get(Escalation, escalation_id, populate_existing=True)
    if esc is None:
        raise EscalationNotFoundError(f"no escalation {escalation_id}")
    lead = _read_leads(db_session, [esc.lead_id])[esc.lead_id]
    return run_locked_step(db_session, esc, lead=lead, runtime=runtime, now=now)


def run_locked_step(
    db_session: Session, esc: Escalation, *, lead: LeadRow, runtime: Runtime, now: datetime
) -> Decision:
    plan = plan_from_json(esc.plan)
    decision = runtime.config.decide(
        state_of(esc), plan, _facts(lead), timezone=lead.timezone, now=now
    )
    if decision.action is not Action.WAIT:
        _apply(db_session, esc, decision, lead=lead, runtime=runtime)
    return decision


def postpone(
    *,
    db_session: Session,
    escalation_id: int,
    token: str,
    now: datetime,
    error: str,
    minutes: float = 1.0,
) -> bool:
    """A step that raised is logged and tried again later, instead of blocking the queue.
    Only if nobody ran it meanwhile (the run token read is still there)."""
    moved = db_session.execute(
        update(Escalation)
        .where(Escalation.id == escalation_id, Escalation.run_token == token)
        .values(due_at=now + timedelta(minutes=minutes), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        return False
    esc = db_session.get(Escalation, escalation_id, populate_existing=True)
    assert esc is not None
    db_session.add(
        EscalationDecision(
            escalation_id=esc.id,
            lead_id=esc.lead_id,
            at=now,
            action="error",
            level=esc.level,
            step=esc.step,
            cycle=esc.cycle,
            reason=f"step failed and will be retried in {minutes:g} min: {error}"[:2000],
            recipients=[],
        )
    )
    return True


# ---- claims ---------------------------------------------------------------------------------


def claim(
    *, db_session: Session, escalation_id: int, by: str, runtime: Runtime, now: datetime
) -> Escalation:
    """Claim the lead of an escalation: the chain pauses, and resumes if no contact is
    logged within the claim timeout. A claim event goes into the lead's history."""
    esc = _locked(db_session, escalation_id)
    if esc.status not in LIVE:
        raise EscalationError(
            f"escalation {escalation_id} has already ended ({esc.status}: {esc.end_reason})"
        )
    if esc.status == Status.CLAIMED.value:
        raise EscalationError(
            f"lead already claimed by {esc.claimed_by} at {esc.claimed_at:%Y-%m-%d %H:%M} UTC"
        )
    lead = _read_leads(db_session, [esc.lead_id])[esc.lead_id]
    decision = engine.claim(state_of(esc), plan_from_json(esc.plan), now=now, by=by)
    esc.claimed_by = by
    esc.first_claimed_at = esc.first_claimed_at or now
    _apply(db_session, esc, decision, lead=lead, runtime=runtime)
    lead_service.add_event(
        db_session=db_session,
        lead_id=esc.lead_id,
        event=LeadEventIn(type=EventType.CLAIMED, occurred_at=now, actor=by),
    )
    return esc


def claim_with_link(
    *, db_session: Session, token: str, runtime: Runtime, now: datetime
) -> Escalation:
    """Claim through a message's link: valid signature, not expired, never used before."""
    ticket = claims.read_token(runtime.signing_key, token, now=now)
    person = runtime.config.directory.person(ticket.person)
    by = person.name if person is not None else ticket.person
    used = db_session.execute(
        insert_or_skip(db_session.get_bind().dialect.name, ClaimUse, ["nonce"])
        .values(nonce=ticket.nonce, escalation_id=ticket.escalation_id, person=by, used_at=now)
        .returning(ClaimUse.nonce)
    ).scalar_one_or_none()
    if used is None:
        raise claims.ClaimLinkError("this claim link has already been used")
    return claim(
        db_session=db_session, escalation_id=ticket.escalation_id, by=by, runtime=runtime, now=now
    )


# ---- failed deliveries ----------------------------------------------------------------------


def on_delivery_dead(
    *, db_session: Session, message_id: int, runtime: Runtime, now: datetime
) -> Decision | None:
    """Called when delivery gives up on a message: if every message of that step is dead,
    the fallback recipients are notified (once per step)."""
    message = db_session.get(OutboxMessage, message_id)
    if message is None or message.decision_id is None or message.escalation_id is None:
        return None
    siblings = select(OutboxMessage.status).where(OutboxMessage.decision_id == message.decision_id)
    # Most dead letters have a sibling that went out: a plain read says so, with no lock
    # (a write, on SQLite the one write lock intake needs too).
    if any(status != "dead" for status in db_session.scalars(siblings)):
        return None
    # All dead, it seems. Lock, then look again: two workers declaring the last two messages
    # dead at once must not each see the other's as still sending (the second re-reads
    # after the first).
    esc = _locked(db_session, message.escalation_id)
    statuses = db_session.scalars(siblings.execution_options(populate_existing=True)).all()
    if any(status != "dead" for status in statuses):
        return None
    step_decision = db_session.get(EscalationDecision, message.decision_id, populate_existing=True)
    if step_decision is None or step_decision.fallback or step_decision.fell_back:
        return None  # a fallback's own failure, or this step has fallen back already
    if esc.status == Status.STOPPED.value:
        return None  # the lead was reached meanwhile
    step_decision.fell_back = True
    lead = _read_leads(db_session, [esc.lead_id])[esc.lead_id]
    decision = engine.fallback(
        state_of(esc),
        plan_from_json(esc.plan),
        _facts(lead),
        directory=runtime.config.directory,
        now=now,
        failed_step=step_decision.step or 0,
    )
    # A fallback changes nothing in the chain: log it and send it, and leave the state (and
    # an ended chain's end record) as it is.
    _record(
        db_session,
        esc.id,
        esc.lead_id,
        esc.level,
        step_decision.cycle,
        decision,
        lead=lead,
        runtime=runtime,
    )
    return decision


def repair_fallbacks(*, db_session: Session, runtime: Runtime, now: datetime) -> int:
    """Steps whose messages are all dead but whose fallback was never sent (a worker died
    between the two): send it now. The sweep runs this."""
    dead = func.sum(case((OutboxMessage.status == "dead", 1), else_=0))
    pending = (
        select(OutboxMessage.decision_id, func.min(OutboxMessage.id))
        .join(EscalationDecision, EscalationDecision.id == OutboxMessage.decision_id)
        .join(Escalation, Escalation.id == OutboxMessage.escalation_id)
        .where(
            EscalationDecision.fallback.is_(False),
            EscalationDecision.fell_back.is_(False),
            EscalationDecision.action == Action.NOTIFY.value,
            # a stopped chain needs no fallback: without this, its dead steps would be
            # picked again every sweep and could crowd out the ones that do
            Escalation.status != Status.STOPPED.value,
        )
        .group_by(OutboxMessage.decision_id)
        .having(dead == func.count())
        .order_by(OutboxMessage.decision_id)
        .limit(100)
    )
    repaired = 0
    for _decision_id, message_id in db_session.execute(pending).all():
        if on_delivery_dead(
            db_session=db_session, message_id=int(message_id), runtime=runtime, now=now
        ):
            repaired += 1
    return repaired


# ---- reads ----------------------------------------------------------------------------------


def get(*, db_session: Session, escalation_id: int) -> Escalation:
    esc = db_session.get(Escalation, escalation_id)
    if esc is None:
        raise EscalationNotFoundError(f"no escalation {escalation_id}")
    return esc


def decisions(*, db_session: Session, escalation_id: int) -> list[EscalationDecision]:
    query = (
        select(EscalationDecision)
        .where(EscalationDecision.escalation_id == escalation_id)
        .order_by(EscalationDecision.at, EscalationDecision.id)
    )
    return list(db_session.scalars(query))


def list_escalations(
    *,
    db_session: Session,
    limit: int = 50,
    offset: int = 0,
    status: str | None = None,
    level: str | None = None,
    rep: str | None = None,
    dealership_id: int | None = None,
    channel: str | None = None,
) -> list[Escalation]:
    """Newest first; ``rep`` and ``dealership_id`` narrow to what a rep or a manager sees;
    ``channel``: escalations that wrote at least one message for that channel."""
    query = select(Escalation).order_by(Escalation.started_at.desc(), Escalation.id.desc())
    if channel:
        used = select(OutboxMessage.escalation_id).where(OutboxMessage.channel == channel)
        query = query.where(Escalation.id.in_(used))
    query = scoped(query, rep=rep, dealership_id=dealership_id)
    if status == "live":
        query = query.where(Escalation.status.in_(LIVE))
    elif status:
        query = query.where(Escalation.status == status)
    if level:
        query = query.where(Escalation.level == level)
    return list(db_session.scalars(query.limit(limit).offset(offset)))


def live_for_leads(*, db_session: Session, lead_ids: Iterable[int]) -> Mapping[int, Escalation]:
    ids = sorted(set(lead_ids))
    query = select(Escalation).where(Escalation.active_lead_id.in_(ids))
    return {esc.lead_id: esc for esc in db_session.scalars(query)}
