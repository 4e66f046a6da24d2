"""Stored leads as one table, in the canonical CSV columns: what training, scoring and the lead
flow analysis read when they work from the database instead of a file.

Times are given on each dealership's own clock, as naive values, exactly as a CRM export of
that store would show them: hour of day and weekday mean what the store saw. Stage times are
the first event of each stage. Repeat shoppers linked to an earlier lead are left out by
default (they are the same sale, not a new lead).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session

from leadwatch.core.calendar import CalendarError
from leadwatch.core.leads import STAGE_TIME_FIELDS
from leadwatch.leads.models import Dealership, Lead, LeadEvent

# Stage column -> the event type whose first occurrence sets it.
STAGE_EVENTS = {field: field.removesuffix("_at") for field in STAGE_TIME_FIELDS}
LEAD_COLUMNS = (
    "lead_id",
    "source_system",
    "dealership",
    "dealership_timezone",
    "created_at",
    "rep",
    "lead_source",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "vehicle_trim",
    "vehicle_price",
    "vehicle_condition",
    "status",
)
COLUMNS = (*LEAD_COLUMNS, *STAGE_TIME_FIELDS, "id")


def lead_frame(
    *,
    db_session: Session,
    dealership_ids: Sequence[int] | None = None,
    rep: str | None = None,
    since: datetime | None = None,
    include_linked: bool = False,
) -> pd.DataFrame:
    """The stored leads (optionally of some dealerships, of one rep, created since a moment)
    with their stage times, one row per lead, columns ``COLUMNS``. A dealership whose time
    zone this system does not know raises `CalendarError` naming it."""
    query = select(
        Lead.id,
        Lead.external_id,
        Lead.source_system,
        Dealership.name,
        Dealership.timezone,
        _raw(Lead.created_at),
        Lead.rep,
        Lead.lead_source,
        Lead.vehicle_year,
        Lead.vehicle_make,
        Lead.vehicle_model,
        Lead.vehicle_trim,
        Lead.vehicle_price,
        Lead.vehicle_condition,
        Lead.status,
    ).join(Dealership, Dealership.id == Lead.dealership_id)
    if dealership_ids is not None:
        query = query.where(Lead.dealership_id.in_(list(dealership_ids)))
    if rep is not None:  # as the leads pages match a rep: regardless of case
        query = query.where(func.lower(Lead.rep) == rep.lower())
    if since is not None:
        query = query.where(Lead.created_at >= since)
    if not include_linked:
        query = query.where(Lead.duplicate_of_id.is_(None))
    rows = db_session.execute(query.order_by(Lead.id)).all()
    frame = pd.DataFrame(rows, columns=["id", *LEAD_COLUMNS])
    stages = _stage_times(db_session, query)
    for field in STAGE_TIME_FIELDS:
        frame[field] = frame["id"].map(stages.get(field, {}))
    frame["vehicle_price"] = pd.to_numeric(frame["vehicle_price"], errors="coerce")
    _check_zones(frame)
    for column in ("created_at", *STAGE_TIME_FIELDS):
        frame[column] = _local_naive(frame[column], frame["dealership_timezone"])
    return frame[list(COLUMNS)]


def _stage_times(db_session: Session, leads_query: object) -> dict[str, dict[int, object]]:
    """Stage column -> {lead id: first time of that stage} for the leads of the query."""
    ids = select(leads_query.subquery().c.id)  # type: ignore[attr-defined]
    first = db_session.execute(
        select(LeadEvent.lead_id, LeadEvent.type, _raw(func.min(LeadEvent.occurred_at)))
        .where(LeadEvent.lead_id.in_(ids))
        .where(LeadEvent.type.in_(list(STAGE_EVENTS.values())))
        .group_by(LeadEvent.lead_id, LeadEvent.type)
    ).all()
    by_event = {event: field for field, event in STAGE_EVENTS.items()}
    stages: dict[str, dict[int, object]] = {}
    for lead_id, event, occurred in first:
        stages.setdefault(by_event[event], {})[lead_id] = occurred
    return stages


def _raw(column: Any) -> Any:
    """A time column as the driver gives it (SQLite: text in UTC; PostgreSQL: aware), left
    for pandas to convert in one go instead of value by value."""
    return type_coerce(column, String)


def _check_zones(frame: pd.DataFrame) -> None:
    for zone in frame["dealership_timezone"].dropna().unique():
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            stores = sorted(set(frame.loc[frame["dealership_timezone"] == zone, "dealership"]))
            raise CalendarError(
                f"time zone {zone!r} of {', '.join(stores)} is not one this system knows: "
                "correct the dealership's zone (e.g. America/Chicago)"
            ) from None


def _local_naive(times: pd.Series, zones: pd.Series) -> pd.Series:
    """Aware (or naive UTC) times -> naive times on each row's own zone."""
    utc = pd.to_datetime(times, utc=True)  # naive values are taken as UTC, as stored
    out = pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns]")
    for zone in zones.dropna().unique():
        rows = zones == zone
        out[rows] = utc[rows].dt.tz_convert(ZoneInfo(zone)).dt.tz_localize(None)
    return out
