"""Dealership names to ids and time zones, for the intakes."""

from __future__ import annotations

from datetime import tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadwatch.leads.models import Dealership


class DealershipDirectory:
    """Dealership names to ids and time zones; unknown names are created with the default zone."""

    def __init__(self, *, default_name: str, default_timezone: str) -> None:
        self.default_name = default_name
        self.default_timezone = default_timezone
        self._ids: dict[str, int] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def load(self, *, db_session: Session) -> DealershipDirectory:
        # Plain rows, not ORM objects: every intake request loads the directory.
        columns = (Dealership.id, Dealership.name, Dealership.timezone)
        for dealer_id, name, timezone in db_session.execute(select(*columns)):
            self._ids[name] = dealer_id
            self._zones[name] = ZoneInfo(timezone)  # ZoneInfo keeps its own cache by key
        return self

    def tz_for(self, name: str | None) -> tzinfo:
        key = name or self.default_name
        zone = self._zones.get(key)
        if zone is None:
            zone = self._zones[key] = ZoneInfo(self.default_timezone)
        return zone

    def name_for(self, name: str | None) -> str:
        """The dealership a lead naming ``name`` (or none) is stored under."""
        return (name or self.default_name).strip()[:200] or self.default_name

    def id_for(self, *, db_session: Session, name: str | None) -> int:
        key = self.name_for(name)
        dealer_id = self._ids.get(key)
        if dealer_id is None:
            dealer_id = ensure_dealership(
                db_session=db_session, name=key, timezone=str(self.tz_for(key))
            ).id
            self._ids[key] = dealer_id
        return dealer_id


def ensure_dealership(*, db_session: Session, name: str, timezone: str) -> Dealership:
    dealer = db_session.scalars(select(Dealership).where(Dealership.name == name)).one_or_none()
    if dealer is None:
        ZoneInfo(timezone)  # raises for an unknown zone before anything is written
        dealer = Dealership(name=name, timezone=timezone)
        db_session.add(dealer)
        db_session.flush()
    return dealer
