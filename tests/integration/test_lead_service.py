"""The bulk write path on a real database: insert, update, events, shopper linking, quarantine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadwatch.core.leads import (
    Customer,
    EventType,
    LeadEventIn,
    LeadIn,
    RecordError,
    RejectedRecord,
    Vehicle,
    VehicleInterest,
)
from leadwatch.leads import service as lead_service
from leadwatch.leads.directory import DealershipDirectory
from leadwatch.leads.models import Dealership, Lead, LeadEvent, QuarantinedRecord
from leadwatch.leads.store import StoredLead, store_leads

T0 = datetime(2025, 5, 1, 14, 0, tzinfo=UTC)


def directory() -> DealershipDirectory:
    return DealershipDirectory(default_name="Riverside Motors", default_timezone="America/Chicago")


def lead(
    external_id: str,
    *,
    source: str = "crm",
    created: datetime = T0,
    email: str | None = None,
    phone: str | None = None,
    make: str = "Toyota",
    model: str = "Camry",
    vin: str | None = None,
    events: tuple[tuple[EventType, timedelta], ...] = (),
    rep: str | None = "Ana Ruiz",
) -> LeadIn:
    history = (LeadEventIn(EventType.CREATED, created),) + tuple(
        LeadEventIn(kind, created + delay) for kind, delay in events
    )
    return LeadIn(
        source_system=source,
        external_id=external_id,
        created_at=created,
        rep=rep,
        lead_source="Website",
        vehicles=(
            Vehicle(VehicleInterest.TRADE_IN, 2015, "Honda", "Civic"),
            Vehicle(VehicleInterest.BUY, 2025, make, model, vin=vin, price=Decimal("28500.00")),
        ),
        customer=Customer(
            "Jo", "Lee", emails=(email,) if email else (), phones=(phone,) if phone else ()
        ),
        events=history,
    )


def store(db_session: Session, leads: list[LeadIn]) -> list[StoredLead]:
    stored = store_leads(
        db_session=db_session,
        leads=list(enumerate(leads, start=2)),
        directory=directory().load(db_session=db_session),
        now=T0 + timedelta(days=1),
    )
    db_session.commit()
    return stored


def test_insert_then_reimport_updates_and_never_duplicates(db_session: Session) -> None:
    first = store(db_session, [lead("A1"), lead("A2")])
    assert [s.outcome for s in first] == ["imported", "imported"]
    again = store(db_session, [lead("A1", rep="Ben Cho"), lead("A2")])
    assert [s.outcome for s in again] == ["updated", "updated"]
    assert [s.lead_id for s in again] == [s.lead_id for s in first]
    assert db_session.scalar(select(func.count()).select_from(Lead)) == 2
    assert db_session.scalar(select(func.count()).select_from(LeadEvent)) == 2
    row = db_session.scalars(select(Lead).where(Lead.external_id == "A1")).one()
    assert row.rep == "Ben Cho"


def test_stored_lead_keeps_vehicles_customer_and_utc_times(db_session: Session) -> None:
    (stored,) = store(db_session, [lead("V1", email="Jo@Example.com ", phone="+1 (312) 555-0142")])
    row = db_session.get(Lead, stored.lead_id)
    assert row is not None
    assert row.created_at == T0 and row.created_at.tzinfo is not None
    assert (row.vehicle_make, row.vehicle_model, row.vehicle_price) == (
        "Toyota",
        "Camry",
        Decimal("28500.00"),
    )
    assert [v["interest"] for v in row.vehicles] == ["trade-in", "buy"]
    assert row.email_norm == "jo@example.com" and row.phone_norm == "3125550142"
    assert row.customer_name == "Jo Lee"
    assert row.dealership.name == "Riverside Motors"
    assert row.dealership.timezone == "America/Chicago"


def test_status_and_stage_times_are_derived_from_events(db_session: Session) -> None:
    (stored,) = store(
        db_session,
        [
            lead(
                "S1",
                events=(
                    (EventType.CONTACTED, timedelta(minutes=9)),
                    (EventType.SOLD, timedelta(days=6)),
                ),
            )
        ],
    )
    row = db_session.get(Lead, stored.lead_id)
    assert row is not None
    assert row.status == "sold"
    assert row.contacted_at == T0 + timedelta(minutes=9)
    assert row.sold_at == T0 + timedelta(days=6)
    # a later import without the sale keeps the sale: history is append-only
    store(db_session, [lead("S1", events=((EventType.CONTACTED, timedelta(minutes=9)),))])
    db_session.expire_all()
    row = db_session.get(Lead, stored.lead_id)
    assert row is not None and row.status == "sold" and row.sold_at == T0 + timedelta(days=6)


def test_same_shopper_from_another_portal_within_72h_is_linked(db_session: Session) -> None:
    first = store(db_session, [lead("P1", source="autotrader", email="sam@example.com")])
    later = store(
        db_session,
        [
            lead(
                "Q9", source="cars.com", email="SAM@example.com", created=T0 + timedelta(hours=30)
            ),
            lead(
                "Q10", source="cars.com", email="sam@example.com", created=T0 + timedelta(hours=80)
            ),
            lead("Q11", source="cars.com", email="sam@example.com", model="RAV4"),
        ],
    )
    assert [s.outcome for s in later] == ["linked", "imported", "imported"]
    linked = db_session.get(Lead, later[0].lead_id)
    assert linked is not None and linked.duplicate_of_id == first[0].lead_id
    for other in later[1:]:
        row = db_session.get(Lead, other.lead_id)
        assert row is not None and row.duplicate_of_id is None


def test_linking_by_phone_and_vin_within_one_chunk(db_session: Session) -> None:
    stored = store(
        db_session,
        [
            lead(
                "L2",
                source="b",
                phone="312-555-0100",
                vin="1HGCM82633A004352",
                created=T0 + timedelta(hours=2),
            ),
            lead("L1", source="a", phone="(312) 555 0100", vin="1hgcm82633a004352", make="TOYOTA"),
        ],
    )
    # the earlier lead stays the original even though it came second in the file
    by_id = {s.external_id: s for s in stored}
    assert by_id["L1"].outcome == "imported" and by_id["L2"].outcome == "linked"
    row = db_session.get(Lead, by_id["L2"].lead_id)
    assert row is not None and row.duplicate_of_id == by_id["L1"].lead_id


def test_same_lead_twice_in_one_chunk_is_one_lead(db_session: Session) -> None:
    stored = store(db_session, [lead("D1"), lead("D1", rep="Late Rep")])
    assert [s.outcome for s in stored] == ["imported", "updated"]
    assert db_session.scalar(select(func.count()).select_from(Lead)) == 1
    assert db_session.scalars(select(Lead.rep)).one() == "Late Rep"


def test_unknown_dealership_is_created_with_the_default_zone(db_session: Session) -> None:
    item = replace(lead("Z1"), dealership="Hilltop Ford")
    store(db_session, [item])
    dealer = db_session.scalars(select(Dealership).where(Dealership.name == "Hilltop Ford")).one()
    assert dealer.timezone == "America/Chicago"


def test_add_event_is_idempotent_and_updates_the_lead(db_session: Session) -> None:
    (stored,) = store(db_session, [lead("E1")])
    contacted = LeadEventIn(EventType.CONTACTED, T0 + timedelta(hours=2), actor="ana")
    _, created = lead_service.add_event(
        db_session=db_session, lead_id=stored.lead_id, event=contacted
    )
    _, again = lead_service.add_event(
        db_session=db_session, lead_id=stored.lead_id, event=contacted
    )
    db_session.commit()
    assert (created, again) == (True, False)
    row = db_session.get(Lead, stored.lead_id)
    assert (
        row is not None
        and row.status == "contacted"
        and row.contacted_at == T0 + timedelta(hours=2)
    )
    reassigned = LeadEventIn(EventType.REASSIGNED, T0 + timedelta(hours=3))
    lead_service.add_event(
        db_session=db_session, lead_id=stored.lead_id, event=reassigned, rep="Ben Cho"
    )
    db_session.commit()
    assert db_session.get(Lead, stored.lead_id).rep == "Ben Cho"  # type: ignore[union-attr]


def test_rejected_records_are_kept_with_raw_text_and_reasons(db_session: Session) -> None:
    record = RejectedRecord(7, "X9,not-a-date", (RecordError(7, "created_at", "not a date"),))
    lead_service.quarantine(
        db_session=db_session, records=[record], source="leads.csv", batch_id=None, now=T0
    )
    db_session.commit()
    items, total = lead_service.list_rejected(db_session=db_session)
    assert total == 1
    (row,) = items
    assert isinstance(row, QuarantinedRecord)
    assert (row.source, row.row, row.field, row.raw) == (
        "leads.csv",
        7,
        "created_at",
        "X9,not-a-date",
    )
    assert "not a date" in row.reason
