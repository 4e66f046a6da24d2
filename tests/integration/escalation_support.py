"""Shared set-up for escalation tests: a settable clock, a staffed dealership, leads with a
chosen probability, and the runtime the service needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.config import Settings
from leadwatch.core.leads import Customer, EventType, LeadEventIn, LeadIn, Vehicle
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations import service
from leadwatch.escalations import settings as settings_service
from leadwatch.escalations.jobs import EscalationRunner, RuntimeSource
from leadwatch.escalations.models import Escalation, EscalationDecision
from leadwatch.leads import service as lead_service
from leadwatch.leads.directory import DealershipDirectory
from leadwatch.leads.models import Lead
from leadwatch.leads.scoring import ActiveModel
from leadwatch.leads.store import store_leads
from leadwatch.notifications.models import OutboxMessage
from leadwatch.prediction.artifacts import store_for

# Tuesday 2 June 2025, 10:00 in Chicago (CDT, UTC-5): the store is open.
OPEN_TUESDAY = datetime.fromisoformat("2025-06-03T15:00:00+00:00")
# Friday 6 June 2025, 18:30 in Chicago: after Friday's closing (the default hours end at 20:00
# on weekdays, so the staffed settings below close at 18:00 on Fridays).
FRIDAY_EVENING = datetime.fromisoformat("2025-06-06T23:30:00+00:00")

PEOPLE = [
    {
        "key": "dana",
        "name": "Dana Reyes",
        "roles": [],
        "email": "dana@riverside.example",
        "phone": "+15550100001",
    },
    {
        "key": "sam",
        "name": "Sam Patel",
        "roles": ["sales_manager"],
        "email": "sam@riverside.example",
        "phone": "+15550100002",
    },
    {
        "key": "gina",
        "name": "Gina Lopez",
        "roles": ["general_manager"],
        "email": "gina@riverside.example",
    },
    {"key": "bdc", "name": "BDC Desk", "roles": ["bdc"], "email": "bdc@riverside.example"},
]

WEEKLY = {
    "mon": ["09:00-20:00"],
    "tue": ["09:00-20:00"],
    "wed": ["09:00-20:00"],
    "thu": ["09:00-20:00"],
    "fri": ["09:00-18:00"],
    "sat": ["09:00-18:00"],
    "sun": [],
}


def staffed_document(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "people": [dict(person) for person in PEOPLE],  # callers may edit their copy
        "working_hours": {"default": {"weekly": WEEKLY, "holidays": ["2025-07-04"]}},
    }
    document.update(overrides)
    return document


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class World:
    """A database with the staffed settings saved, and the parts that run escalations."""

    factory: sessionmaker[Session]
    settings: Settings
    clock: Clock
    runtime: RuntimeSource

    def save_settings(self, document: dict[str, Any], author: str = "test") -> int:
        with unit_of_work(self.factory) as db_session:
            row = settings_service.save(
                db_session=db_session,
                document=settings_service.parse(document),
                author=author,
                now=self.clock(),
            )
            return row.version

    def add_lead(
        self,
        external_id: str,
        *,
        probability: float | None,
        created_at: datetime | None = None,
        rep: str | None = "Dana Reyes",
        price: float | None = 32_000,
        source: str = "Cars.com",
        email: str | None = None,
    ) -> int:
        """Store a lead (as intake would) with the given 30-day probability, no escalation."""
        created = created_at or self.clock() - timedelta(minutes=5)
        lead = LeadIn(
            source_system="test",
            external_id=external_id,
            created_at=created,
            rep=rep,
            lead_source=source,
            vehicles=(Vehicle(year=2025, make="Toyota", model="Camry", price=_money(price)),),
            customer=Customer(
                full_name=f"Customer {external_id}", emails=(email,) if email else ()
            ),
            events=(LeadEventIn(EventType.CREATED, created, actor="test"),),
        )
        directory = DealershipDirectory(
            default_name=self.settings.default_dealership,
            default_timezone=self.settings.default_timezone,
        )
        with unit_of_work(self.factory) as db_session:
            directory.load(db_session=db_session)
            stored = store_leads(
                db_session=db_session,
                leads=[(1, lead)],
                directory=directory,
                now=self.clock(),
                duplicate_window=timedelta(hours=72),
            )
            lead_id = stored[0].lead_id
            if probability is not None:
                set_probability(db_session, lead_id, probability)
        return lead_id

    def watch(self, *lead_ids: int) -> service.WatchCounts:
        with unit_of_work(self.factory) as db_session:
            return service.watch(
                db_session=db_session,
                lead_ids=list(lead_ids),
                runtime=self.runtime(db_session),
                now=self.clock(),
            )

    def event(self, lead_id: int, kind: EventType, actor: str = "Dana Reyes") -> None:
        with unit_of_work(self.factory) as db_session:
            lead_service.add_event(
                db_session=db_session,
                lead_id=lead_id,
                event=LeadEventIn(kind, self.clock(), actor=actor),
            )

    def runner(self) -> EscalationRunner:
        return EscalationRunner(
            session_factory=self.factory, runtime=self.runtime, clock=self.clock
        )

    def escalation(self, lead_id: int) -> Escalation:
        with unit_of_work(self.factory) as db_session:
            rows = db_session.scalars(
                select(Escalation).where(Escalation.lead_id == lead_id).order_by(Escalation.id)
            ).all()
            assert rows, f"lead {lead_id} has no escalation"
            return rows[-1]

    def decisions(self, escalation_id: int) -> list[EscalationDecision]:
        with unit_of_work(self.factory) as db_session:
            return service.decisions(db_session=db_session, escalation_id=escalation_id)

    def messages(self, escalation_id: int | None = None) -> list[OutboxMessage]:
        with unit_of_work(self.factory) as db_session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if escalation_id is not None:
                query = query.where(OutboxMessage.escalation_id == escalation_id)
            return list(db_session.scalars(query))


def _money(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def set_probability(db_session: Session, lead_id: int, probability: float) -> None:
    db_session.execute(
        update(Lead)
        .where(Lead.id == lead_id)
        .values(sale_probability_14d=probability / 2, sale_probability_30d=probability)
    )


def make_world(factory: sessionmaker[Session], settings: Settings, now: datetime) -> World:
    clock = Clock(now)
    runtime = RuntimeSource(
        settings, ActiveModel(lambda: store_for(settings.home, settings.secret_key_value))
    )
    world = World(factory, settings, clock, runtime)
    world.save_settings(staffed_document())
    return world
