"""Which stored leads an intake hands to escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadwatch.leads.store import StoredLead, worth_watching

NOW = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)


def _stored(lead_id: int, outcome: str, age_hours: float) -> StoredLead:
    created = NOW - timedelta(hours=age_hours)
    return StoredLead(lead_id, lead_id, outcome, "crm", f"L-{lead_id}", created)  # type: ignore[arg-type]


def test_new_leads_inside_the_window_and_every_update_or_repeat_are_watched() -> None:
    stored = [
        _stored(1, "imported", 1),  # new and recent: may need a chain
        _stored(2, "imported", 100),  # new and older than the window: never gets one
        _stored(3, "updated", 500),  # may stop or move up a live chain, however old
        _stored(4, "linked", 500),  # acts on its original's chain
        _stored(5, "imported", 72),  # exactly at the window's edge: still inside
    ]
    assert worth_watching(stored, since=NOW - timedelta(hours=72)) == [1, 3, 4, 5]
