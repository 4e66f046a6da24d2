"""The escalation API on a real database (SQLite and PostgreSQL): listing, the decision log,
claims, statistics, the versioned settings, previews, and the intake and event hooks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.auth import service as auth_service
from leadwatch.config import Settings
from leadwatch.core.leads import EventType
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations.models import Escalation
from leadwatch.leads.models import Lead
from leadwatch.notifications.models import OutboxMessage
from tests.integration.escalation_support import OPEN_TUESDAY, World, make_world, staffed_document

TOKEN_NAME = "crm-bridge"


def _client(engine: Engine, settings: Settings, clock: Any) -> Iterator[TestClient]:
    app = create_app(settings, engine=engine, clock=clock)
    with unit_of_work(app.state.session_factory) as db_session:
        _, token = auth_service.create_token(db_session=db_session, name=TOKEN_NAME, now=clock())
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    return make_world(session_factory, settings, OPEN_TUESDAY)


@pytest.fixture
def client(engine: Engine, settings: Settings, world: World) -> Iterator[TestClient]:
    yield from _client(engine, settings, world.clock)


def _count(world: World, model: type[Any]) -> int:
    with unit_of_work(world.factory) as db_session:
        return db_session.scalar(select(func.count()).select_from(model)) or 0


def _escalated(world: World, external_id: str, probability: float) -> tuple[int, int]:
    lead = world.add_lead(external_id, probability=probability)
    world.watch(lead)
    return lead, world.escalation(lead).id


def _preview_lead(created_at: str) -> dict[str, Any]:
    return {
        "external_id": "P-1",
        "created_at": created_at,
        "rep": "Dana Reyes",
        "lead_source": "Cars.com",
        "vehicle": {"make": "Toyota", "model": "Camry", "price": 32000},
    }


def test_every_escalation_route_needs_a_token(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    calls = [
        ("GET", "/api/v1/escalations"),
        ("GET", "/api/v1/escalations/stats"),
        ("POST", "/api/v1/escalations/preview"),
        ("GET", "/api/v1/escalations/1"),
        ("POST", "/api/v1/escalations/1/claim"),
        ("GET", "/api/v1/escalation-settings"),
        ("PUT", "/api/v1/escalation-settings"),
        ("GET", "/api/v1/escalation-settings/versions"),
    ]
    for method, path in calls:
        body: dict[str, Any] | None = {} if method in {"POST", "PUT"} else None
        response = anonymous.request(method, path, json=body)
        assert response.status_code == 401, (method, path, response.text)
        assert "missing API token" in response.json()["detail"]
    wrong = anonymous.get("/api/v1/escalations", headers={"Authorization": "Bearer lw_nope"})
    assert wrong.status_code == 401 and "invalid or revoked" in wrong.json()["detail"]


def test_list_filters_by_status_and_level(client: TestClient, world: World) -> None:
    _, critical = _escalated(world, "C-1", 0.05)
    _, high = _escalated(world, "H-1", 0.15)
    stopped_lead, stopped = _escalated(world, "M-1", 0.25)
    world.event(stopped_lead, EventType.CONTACTED)
    world.watch(stopped_lead)
    assert client.post(f"/api/v1/escalations/{high}/claim", json={}).status_code == 200

    def ids(**params: str) -> list[int]:
        response = client.get("/api/v1/escalations", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids() == [stopped, high, critical]  # newest first (same start: by id)
    assert ids(status="live") == [high, critical]
    assert ids(status="active") == [critical]
    assert ids(status="claimed") == [high]
    assert ids(status="stopped") == [stopped]
    assert ids(level="critical") == [critical]
    assert ids(level="medium", status="live") == []
    page = client.get("/api/v1/escalations", params={"limit": 1, "offset": 1}).json()
    assert (page["limit"], page["offset"], [i["id"] for i in page["items"]]) == (1, 1, [high])
    item = client.get("/api/v1/escalations", params={"level": "high"}).json()["items"][0]
    assert (item["status"], item["claimed_by"], item["policy"]) == ("claimed", TOKEN_NAME, "high")
    assert client.get("/api/v1/escalations", params={"status": "done"}).status_code == 422
    assert client.get("/api/v1/escalations", params={"level": "urgent"}).status_code == 422


def test_detail_shows_the_decision_log_with_reasons(client: TestClient, world: World) -> None:
    lead, esc_id = _escalated(world, "C-2", 0.05)
    response = client.get(f"/api/v1/escalations/{esc_id}")
    assert response.status_code == 200
    detail = response.json()
    assert (detail["lead_id"], detail["level"], detail["status"]) == (lead, "critical", "active")
    assert (detail["policy"], detail["settings_version"], detail["depth"]) == ("critical", 1, 1)
    assert detail["plan"]["policy"]["name"] == "critical"
    start, notify = detail["decisions"]
    assert (start["action"], notify["action"]) == ("start", "notify")
    assert "P(sale in 30 d) 0.05 < critical line 0.10: critical" in start["reason"]
    assert notify["step"] == 0 and notify["reason"]
    names = {(r["name"], r["channel"]) for r in notify["recipients"]}
    assert ("Dana Reyes", "sms") in names and ("Sam Patel", "email") in names
    assert client.get("/api/v1/escalations/9999").status_code == 404


def test_claim_through_the_api(client: TestClient, world: World) -> None:
    lead, esc_id = _escalated(world, "H-2", 0.15)
    world.clock.advance(minutes=2)
    response = client.post(f"/api/v1/escalations/{esc_id}/claim")  # no body at all
    assert response.status_code == 200, response.text
    claimed = response.json()
    assert (claimed["status"], claimed["claimed_by"]) == ("claimed", TOKEN_NAME)
    assert datetime.fromisoformat(claimed["claimed_at"]) == world.clock.now
    again = client.post(f"/api/v1/escalations/{esc_id}/claim", json={"by": "Sam Patel"})
    assert again.status_code == 409
    assert f"already claimed by {TOKEN_NAME}" in again.json()["detail"]
    missing = client.post("/api/v1/escalations/9999/claim", json={"by": "Sam Patel"})
    assert missing.status_code == 404 and "no escalation 9999" in missing.json()["detail"]
    events = client.get(f"/api/v1/leads/{lead}").json()["events"]
    assert [(e["type"], e["actor"]) for e in events if e["type"] == "claimed"] == [
        ("claimed", TOKEN_NAME)
    ]
    # Naming who claims works too; a blank name is the token's.
    _, other = _escalated(world, "H-3", 0.15)
    named = client.post(f"/api/v1/escalations/{other}/claim", json={"by": " Dana Reyes "})
    assert named.json()["claimed_by"] == "Dana Reyes"
    _, third = _escalated(world, "H-4", 0.15)
    blank = client.post(f"/api/v1/escalations/{third}/claim", json={"by": "  "})
    assert blank.json()["claimed_by"] == TOKEN_NAME
    extra = client.post(f"/api/v1/escalations/{third}/claim", json={"who": "x"})
    assert extra.status_code == 422


def test_stats_after_a_small_scenario(client: TestClient, world: World) -> None:
    _escalated(world, "C-3", 0.05)  # critical: 6 messages at once, still live
    won, won_esc = _escalated(world, "H-4", 0.15)  # high: claimed, then contacted
    lost, _ = _escalated(world, "M-2", 0.25)  # medium: lost without contact
    world.clock.advance(minutes=3)
    assert client.post(f"/api/v1/escalations/{won_esc}/claim", json={}).status_code == 200
    world.clock.advance(minutes=7)
    world.event(won, EventType.CONTACTED)
    world.event(lost, EventType.LOST)
    world.watch(won, lost)
    world.clock.advance(minutes=1)
    response = client.get("/api/v1/escalations/stats")
    assert response.status_code == 200
    stats = response.json()
    assert (stats["total"], stats["live"], stats["succeeded"]) == (3, 1, 1)
    assert stats["by_status"] == {"active": 1, "stopped": 2}
    assert stats["success_rate"] == 0.5  # one of the two that ended
    assert stats["by_level"] == {
        "critical": {"total": 1, "succeeded": 0, "success_rate": None},
        "high": {"total": 1, "succeeded": 1, "success_rate": 1.0},
        "medium": {"total": 1, "succeeded": 0, "success_rate": 0.0},
    }
    assert stats["by_dealership"]["Riverside Motors"]["total"] == 3
    pending = {"total": 2, "by_status": {"pending": 2}, "delivery_rate": None}
    assert stats["by_channel"] == {"email": pending, "in_app": pending, "sms": pending}
    assert stats["time_to_claim"] == {"count": 1, "median_minutes": 3.0, "p90_minutes": 3.0}
    assert stats["time_to_first_contact"]["median_minutes"] == 10.0
    assert stats["depth"]["distribution"] == {"0": 2, "1": 1}
    later = {"since": "2025-06-04T00:00:00Z"}
    assert client.get("/api/v1/escalations/stats", params=later).json()["total"] == 0
    naive = client.get("/api/v1/escalations/stats", params={"since": "2025-06-01T00:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.json()["detail"]


def test_settings_start_at_version_zero_defaults(engine: Engine, settings: Settings) -> None:
    for client in _client(engine, settings, lambda: OPEN_TUESDAY):
        body = client.get("/api/v1/escalation-settings").json()
        assert (body["version"], body["author"], body["created_at"]) == (0, None, None)
        assert body["document"]["people"] == []
        assert body["document"]["thresholds"] == {"critical": 0.1, "high": 0.2, "medium": 0.3}
        assert body["document"]["claim_timeout_minutes"] == 30.0
        assert client.get("/api/v1/escalation-settings/versions").json() == []


def test_settings_put_saves_a_new_version(client: TestClient, world: World) -> None:
    current = client.get("/api/v1/escalation-settings").json()
    assert (current["version"], current["author"]) == (1, "test")
    assert [p["name"] for p in current["document"]["people"]][:2] == ["Dana Reyes", "Sam Patel"]
    world.clock.advance(minutes=1)
    document = staffed_document(claim_timeout_minutes=45)
    response = client.put(
        "/api/v1/escalation-settings", json={"document": document, "comment": "busy season"}
    )
    assert response.status_code == 200, response.text
    saved = response.json()
    assert (saved["version"], saved["author"], saved["comment"]) == (
        2,
        f"token:{TOKEN_NAME}",
        "busy season",
    )
    assert saved["changes"] == ["claim_timeout_minutes: 30.0 -> 45.0"]
    assert datetime.fromisoformat(saved["created_at"]) == world.clock.now
    current = client.get("/api/v1/escalation-settings").json()
    assert (current["version"], current["document"]["claim_timeout_minutes"]) == (2, 45.0)
    assert current["author"] == f"token:{TOKEN_NAME}"
    versions = client.get("/api/v1/escalation-settings/versions").json()
    assert [(v["version"], v["author"]) for v in versions] == [
        (2, f"token:{TOKEN_NAME}"),
        (1, "test"),
    ]
    limited = client.get("/api/v1/escalation-settings/versions", params={"limit": 1}).json()
    assert [v["version"] for v in limited] == [2]


def test_settings_put_refuses_an_invalid_document_by_path(client: TestClient) -> None:
    bad_step = {"steps": [{"delay_minutes": 0, "recipients": ["rep"], "channels": ["pigeon"]}]}
    document = staffed_document(policies={"high": bad_step})
    response = client.put("/api/v1/escalation-settings", json={"document": document})
    assert response.status_code == 422
    assert "policies.high.steps.0.channels.0" in response.json()["detail"]
    typo = client.put("/api/v1/escalation-settings", json={"document": {"claim_timeout": 5}})
    assert typo.status_code == 422 and "claim_timeout" in typo.json()["detail"]
    assert client.get("/api/v1/escalation-settings").json()["version"] == 1


def test_preview_of_a_critical_lead_notifies_at_once(client: TestClient, world: World) -> None:
    at = "2025-06-03T10:00:00-05:00"
    body = {"lead": _preview_lead("2025-06-03T09:55:00"), "at": at, "probability": 0.05}
    response = client.post("/api/v1/escalations/preview", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["level"], result["probability"], result["policy"]) == (
        "critical",
        0.05,
        "critical",
    )
    assert result["settings_version"] == 1
    first = result["steps"][0]
    assert set(first) == {"at", "action", "recipients", "channels", "reason"}
    assert datetime.fromisoformat(first["at"]) == datetime.fromisoformat(at)
    assert first["action"] == "notify"
    assert first["recipients"] == ["Dana Reyes", "Sam Patel"]
    assert set(first["channels"]) == {"sms", "email", "in_app"}
    second = result["steps"][1]
    assert datetime.fromisoformat(second["at"]) == datetime.fromisoformat(at) + timedelta(
        minutes=10
    )
    assert second["recipients"] == ["Gina Lopez"]


def test_preview_after_hours_holds_until_saturday_morning(client: TestClient) -> None:
    body = {
        "lead": _preview_lead("2025-06-06T18:20:00"),
        "at": "2025-06-06T18:30:00",  # no zone: the dealership's (Chicago)
        "probability": 0.15,
    }
    result = client.post("/api/v1/escalations/preview", json=body).json()
    assert result["level"] == "high"
    actions = [(s["action"], datetime.fromisoformat(s["at"])) for s in result["steps"]]
    saturday_nine = datetime.fromisoformat("2025-06-07T09:00:00-05:00")
    # The first step is due 5 minutes on, after Friday's closing: held for the opening.
    assert actions[0] == ("hold", datetime.fromisoformat("2025-06-06T18:35:00-05:00"))
    assert "Sat 07 Jun 09:00" in result["steps"][0]["reason"]
    assert actions[1] == ("notify", saturday_nine)
    assert result["steps"][1]["recipients"] == ["Dana Reyes"]


def test_preview_without_a_model_or_probability_says_how_to_fix(
    client: TestClient, world: World
) -> None:
    body = {"lead": _preview_lead("2025-06-03T09:55:00"), "at": "2025-06-03T10:00:00-05:00"}
    response = client.post("/api/v1/escalations/preview", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "no active model" in detail and "leadwatch train" in detail and "probability" in detail
    early = dict(body, at="2025-06-03T09:00:00-05:00", probability=0.05)
    too_early = client.post("/api/v1/escalations/preview", json=early)
    assert too_early.status_code == 422 and "before the lead was created" in too_early.text
    # Nothing was stored by any preview.
    ok = dict(body, probability=0.05)
    assert client.post("/api/v1/escalations/preview", json=ok).status_code == 200
    assert (_count(world, Escalation), _count(world, OutboxMessage), _count(world, Lead)) == (
        0,
        0,
        0,
    )


def test_intake_without_a_model_leaves_the_lead_unscored(client: TestClient, world: World) -> None:
    lead = {
        "external_id": "I-1",
        "created_at": "2025-06-03T09:50:00",
        "rep": "Dana Reyes",
        "lead_source": "Facebook",
        "vehicle": {"make": "Toyota", "model": "Camry"},
    }
    response = client.post("/api/v1/leads", json=lead)
    assert response.status_code == 201, response.text
    lead_id = response.json()["leads"][0]["id"]
    stored = client.get(f"/api/v1/leads/{lead_id}").json()
    assert (stored["sale_probability_30d"], stored["risk_level"]) == (None, None)
    assert client.get("/api/v1/escalations").json()["items"] == []
    assert _count(world, OutboxMessage) == 0


def test_a_contact_event_stops_the_escalation_in_the_same_request(
    client: TestClient, world: World
) -> None:
    lead, esc_id = _escalated(world, "E-1", 0.15)
    world.clock.advance(minutes=2)
    response = client.post(
        f"/api/v1/leads/{lead}/events", json={"type": "contacted", "actor": "Dana Reyes"}
    )
    assert response.status_code == 201, response.text
    esc = client.get(f"/api/v1/escalations/{esc_id}").json()
    assert (esc["status"], esc["end_reason"]) == ("stopped", "lead contacted: chain stopped")
    assert datetime.fromisoformat(esc["ended_at"]) == world.clock.now
    assert esc["decisions"][-1]["action"] == "stop"
    assert client.get("/api/v1/escalations", params={"status": "live"}).json()["items"] == []
