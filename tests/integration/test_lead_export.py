"""`lead_frame`: stored leads as one table in the canonical CSV columns, times on each
dealership's clock, stage times from the events, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from leadwatch.analysis import FlowInputError, analyze_flow
from leadwatch.core.leads import Customer, EventType, LeadEventIn, LeadIn, Vehicle
from leadwatch.leads.directory import DealershipDirectory, ensure_dealership
from leadwatch.leads.export import COLUMNS, lead_frame
from leadwatch.leads.store import store_leads

# Thursday 1 May 2025, 14:00 UTC: 09:00 in Chicago (CDT), 10:00 in New York (EDT).
T0 = datetime(2025, 5, 1, 14, 0, tzinfo=UTC)


def lead(
    external_id: str,
    *,
    dealership: str = "Riverside Motors",
    rep: str | None = "Ana Ruiz",
    created: datetime = T0,
    events: tuple[tuple[EventType, timedelta], ...] = (),
    email: str | None = None,
    source_system: str = "crm",
) -> LeadIn:
    return LeadIn(
        source_system=source_system,
        external_id=external_id,
        created_at=created,
        dealership=dealership,
        rep=rep,
        lead_source="Website",
        vehicles=(Vehicle(year=2025, make="Toyota", model="Camry"),),
        customer=Customer("Jo", "Lee", emails=(email,) if email else ()),
        events=(LeadEventIn(EventType.CREATED, created),)
        + tuple(LeadEventIn(kind, created + delay) for kind, delay in events),
    )


def store(db_session: Session, leads: list[LeadIn]) -> None:
    ensure_dealership(db_session=db_session, name="Riverside Motors", timezone="America/Chicago")
    ensure_dealership(db_session=db_session, name="Lakeshore Auto", timezone="America/New_York")
    directory = DealershipDirectory(
        default_name="Riverside Motors", default_timezone="America/Chicago"
    ).load(db_session=db_session)
    store_leads(
        db_session=db_session,
        leads=list(enumerate(leads, start=2)),
        directory=directory,
        now=T0 + timedelta(days=60),
    )
    db_session.commit()


def test_stage_times_are_the_first_of_each_stage_on_the_dealership_clock(
    db_session: Session,
) -> None:
    store(
        db_session,
        [
            lead(
                "A1",
                events=(
                    (EventType.CONTACTED, timedelta(minutes=7)),
                    (EventType.CONTACTED, timedelta(hours=5)),  # a later call: not the first
                    (EventType.APPOINTMENT, timedelta(days=1)),
                    (EventType.SOLD, timedelta(days=6)),
                ),
            ),
            lead("B1", dealership="Lakeshore Auto", events=((EventType.LOST, timedelta(days=3)),)),
        ],
    )
    frame = lead_frame(db_session=db_session)
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["lead_id"]) == ["A1", "B1"]
    a1, b1 = frame.iloc[0], frame.iloc[1]
    assert a1["created_at"] == pd.Timestamp("2025-05-01 09:00")  # Chicago, naive
    assert b1["created_at"] == pd.Timestamp("2025-05-01 10:00")  # New York, naive
    assert a1["contacted_at"] == pd.Timestamp("2025-05-01 09:07")
    assert a1["appointment_at"] == pd.Timestamp("2025-05-02 09:00")
    assert a1["sold_at"] == pd.Timestamp("2025-05-07 09:00")
    assert pd.isna(a1["test_drive_at"]) and pd.isna(a1["lost_at"])
    assert b1["lost_at"] == pd.Timestamp("2025-05-04 10:00") and pd.isna(b1["contacted_at"])
    assert (a1["dealership"], a1["dealership_timezone"]) == ("Riverside Motors", "America/Chicago")
    assert (a1["status"], b1["status"]) == ("sold", "lost")
    assert a1["vehicle_model"] == "Camry" and a1["rep"] == "Ana Ruiz"
    for column in ("created_at", "contacted_at", "sold_at", "lost_at"):
        assert pd.api.types.is_datetime64_dtype(frame[column]), column
        assert frame[column].dt.tz is None


def test_filters_by_dealership_rep_and_time_and_leaves_out_linked_repeats(
    db_session: Session,
) -> None:
    store(
        db_session,
        [
            lead("R1", rep="Ana Ruiz", email="jo@example.com"),
            lead("R2", rep="Ben Cho", created=T0 + timedelta(days=10)),
            lead("L1", dealership="Lakeshore Auto", rep="ana ruiz"),
            # the same shopper from another portal a day later: linked, not a new lead
            lead(
                "P1",
                source_system="autotrader",
                created=T0 + timedelta(days=1),
                email="jo@example.com",
            ),
        ],
    )
    everything = lead_frame(db_session=db_session)
    assert sorted(everything["lead_id"]) == ["L1", "R1", "R2"]
    assert len(lead_frame(db_session=db_session, include_linked=True)) == 4
    riverside = everything.loc[everything["lead_id"] == "R1", "id"].iloc[0]
    dealer_id = _dealership_id(db_session, "Riverside Motors")
    only_riverside = lead_frame(db_session=db_session, dealership_ids=[dealer_id])
    assert sorted(only_riverside["lead_id"]) == ["R1", "R2"] and riverside in set(
        only_riverside["id"]
    )
    # a rep is matched regardless of case, as the leads pages match one
    assert sorted(lead_frame(db_session=db_session, rep="Ana Ruiz")["lead_id"]) == ["L1", "R1"]
    recent = lead_frame(db_session=db_session, since=T0 + timedelta(days=5))
    assert list(recent["lead_id"]) == ["R2"]


def _dealership_id(db_session: Session, name: str) -> int:
    return ensure_dealership(db_session=db_session, name=name, timezone="America/Chicago").id


def test_an_empty_database_gives_an_empty_frame_the_analysis_refuses_clearly(
    db_session: Session,
) -> None:
    frame = lead_frame(db_session=db_session)
    assert frame.empty and tuple(frame.columns) == COLUMNS
    with pytest.raises(FlowInputError, match="no leads to analyse"):
        analyze_flow(frame)


def test_stored_leads_feed_the_flow_analysis(db_session: Session) -> None:
    leads = []
    for i in range(40):
        created = T0 + timedelta(hours=i * 7)
        stages: tuple[tuple[EventType, timedelta], ...] = (
            (EventType.CONTACTED, timedelta(minutes=4)),
        )
        if i % 4 == 0:
            stages += ((EventType.SOLD, timedelta(days=2)),)
        leads.append(lead(f"F{i}", created=created, events=stages))
    store(db_session, leads)
    frame = lead_frame(db_session=db_session)
    report = analyze_flow(frame, as_of=T0 + timedelta(days=60))
    assert report.leads == 40
    assert (report.overall.d30.n, report.overall.d30.count) == (40, 10)
    assert report.speed.buckets[0].leads == 40  # every lead called within 5 minutes
    assert report.breakdown("dealership").rows[0].name == "Riverside Motors"
