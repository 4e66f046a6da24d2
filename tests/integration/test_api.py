"""The lead API over HTTP on a real database: JSON, ADF/XML, events, auth and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from leadwatch.app import create_app
from leadwatch.auth import service as auth_service
from leadwatch.config import Settings
from leadwatch.db.engine import make_session_factory, unit_of_work
from leadwatch.deps import SessionDep
from leadwatch.leads.models import ImportBatch
from tests.conftest import FIXED_NOW

ADF = """<?xml version="1.0"?>
<?adf version="1.0"?>
<adf>
 <prospect status="new">
  <id sequence="1" source="AutoTrader">AT-5001</id>
  <requestdate>2025-06-01T09:15:00-05:00</requestdate>
  <vehicle interest="buy" status="new">
   <year>2025</year><make>Ford</make><model>F-150</model><trim>XLT</trim>
   <vin>1FTFW1E50PFA00001</vin><price type="asking">$52,300</price>
  </vehicle>
  <vehicle interest="trade-in">
   <year>2016</year><make>Chevrolet</make><model>Malibu</model>
  </vehicle>
  <customer><contact>
   <name part="first">Maria</name><name part="last">Lopez</name>
   <email>maria@example.com</email><phone>(555) 201-3344</phone>
  </contact><comments>Is it still available?</comments></customer>
  <vendor><vendorname>Riverside Motors</vendorname></vendor>
  <provider><name>AutoTrader</name></provider>
 </prospect>
</adf>"""


def one_lead(external_id: str = "W-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source_system": "website",
        "external_id": external_id,
        "created_at": "2025-06-01T10:00:00",
        "rep": "Ana Ruiz",
        "lead_source": "Website",
        "vehicle": {"year": 2025, "make": "Toyota", "model": "Camry", "price": "28500"},
        "customer": {"first_name": "Jo", "last_name": "Lee", "email": f"{external_id}@example.com"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def client_and_token(engine: Engine, settings: Settings) -> Iterator[tuple[TestClient, str]]:
    small = settings.model_copy(update={"max_body_bytes": 128_000})
    app = create_app(small, engine=engine, clock=lambda: FIXED_NOW)
    with unit_of_work(make_session_factory(engine)) as db_session:
        _, token = auth_service.create_token(db_session=db_session, name="test", now=FIXED_NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        client.app_under_test = app  # type: ignore[attr-defined]
        yield client, token


@pytest.fixture
def client(client_and_token: tuple[TestClient, str]) -> TestClient:
    return client_and_token[0]


def test_a_token_records_its_last_use_before_the_handler_runs(
    client: TestClient, engine: Engine
) -> None:
    """Authentication is its own short unit of work: its last-use mark is committed even when
    the handler then refuses the request."""
    from sqlalchemy import select

    from leadwatch.auth.models import ApiToken

    assert client.post("/api/v1/leads", content=b"{", headers=_JSON).status_code == 422
    with unit_of_work(make_session_factory(engine)) as db_session:
        used = db_session.scalars(select(ApiToken.last_used_at)).one()
    assert used == FIXED_NOW


_JSON = {"Content-Type": "application/json"}


def test_every_api_route_requires_a_token(client: TestClient) -> None:
    anonymous = TestClient(client.app_under_test)  # type: ignore[attr-defined]
    paths = client.get("/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        if path == "/health":
            continue
        for method in operations:
            url = path.replace("{lead_id}", "1")
            assert anonymous.request(method, url).status_code == 401, (method, path)
            wrong = {"Authorization": "Bearer lw_wrong"}
            assert anonymous.request(method, url, headers=wrong).status_code == 401, (method, path)
            checked += 1
    assert checked >= 5
    assert anonymous.get("/health").status_code == 200


def test_token_in_x_api_key_header_works(client_and_token: tuple[TestClient, str]) -> None:
    client, token = client_and_token
    anonymous = TestClient(client.app_under_test)  # type: ignore[attr-defined]
    assert anonymous.get("/api/v1/leads", headers={"X-API-Key": token}).status_code == 200


def test_post_one_lead_then_again_updates(client: TestClient) -> None:
    response = client.post("/api/v1/leads", json=one_lead())
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["imported"], body["updated"], body["rejected"]) == (1, 0, 0)
    lead_id = body["leads"][0]["id"]
    again = client.post("/api/v1/leads", json=one_lead(rep="Ben Cho"))
    assert again.status_code == 200
    assert again.json()["updated"] == 1 and again.json()["leads"][0]["id"] == lead_id
    lead = client.get(f"/api/v1/leads/{lead_id}").json()
    assert lead["rep"] == "Ben Cho"
    # naive created_at is Riverside Motors' local time (Chicago, UTC-5 in June)
    assert lead["created_at"].startswith("2025-06-01T15:00:00")
    assert lead["vehicle_make"] == "Toyota" and lead["status"] == "new"
    assert [e["type"] for e in lead["events"]] == ["created"]


def test_batch_with_a_bad_record_keeps_the_good_ones(client: TestClient, engine: Engine) -> None:
    batch = [one_lead("B-1"), one_lead("B-2", created_at="yesterday-ish"), one_lead("B-3"), 42]
    response = client.post("/api/v1/leads", json=batch)
    assert response.status_code == 201
    body = response.json()
    assert (body["imported"], body["rejected"]) == (2, 2)
    fields = {(e["row"], e["field"]) for e in body["errors"]}
    assert (2, "created_at") in fields and (4, "body") in fields
    rejected = client.get("/api/v1/rejected").json()
    assert rejected["total"] == 2
    assert any("yesterday-ish" in item["raw"] for item in rejected["items"])
    assert client.get("/api/v1/leads").json()["total"] == 2
    # The request's batch: written once it was over, and what its rejects point at.
    with unit_of_work(make_session_factory(engine)) as db_session:
        (batch,) = db_session.scalars(select(ImportBatch)).all()
        counts = (batch.imported, batch.updated, batch.linked, batch.rejected)
        assert (batch.source, batch.format, counts) == ("api:json", "json", (2, 0, 0, 2))
        assert batch.started_at == batch.finished_at == FIXED_NOW
    assert {item["batch_id"] for item in rejected["items"]} == {batch.id}


def test_all_rejected_is_422_and_still_quarantined(client: TestClient) -> None:
    response = client.post("/api/v1/leads", json={"external_id": "", "created_at": "2025-01-01"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "external_id"
    assert client.get("/api/v1/rejected").json()["total"] == 1


def test_adf_document_is_taken_in(client: TestClient) -> None:
    response = client.post(
        "/api/v1/leads", content=ADF, headers={"Content-Type": "application/x-adf+xml"}
    )
    assert response.status_code == 201, response.text
    lead_id = response.json()["leads"][0]["id"]
    lead = client.get(f"/api/v1/leads/{lead_id}").json()
    assert (lead["source_system"], lead["external_id"]) == ("AutoTrader", "AT-5001")
    assert lead["created_at"].startswith("2025-06-01T14:15:00")
    assert lead["vehicle_model"] == "F-150" and lead["vehicle_price"] in ("52300.00", "52300")
    assert [v["interest"] for v in lead["vehicles"]] == ["buy", "trade-in"]
    assert lead["customer_name"] == "Maria Lopez" and lead["lead_source"] == "AutoTrader"


def test_xml_entity_expansion_is_refused_with_422(client: TestClient) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE adf [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><adf><prospect>&b;</prospect></adf>'
    )
    response = client.post(
        "/api/v1/leads", content=bomb, headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 422
    assert "entit" in response.json()["detail"].lower()


def test_wrong_type_is_415_and_oversized_is_413(client: TestClient) -> None:
    response = client.post(
        "/api/v1/leads", content="id,created\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    big = json.dumps([one_lead(f"X-{i}") for i in range(800)])
    response = client.post(
        "/api/v1/leads", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[]", "application/json"),
        (b"[" * 100_000, "application/json"),
        (b"<adf><prospect>", "application/xml"),
        (b"<html></html>", "application/xml"),
        (b"", "application/xml"),
    ],
)
def test_malformed_bodies_get_422_with_a_reason(
    client: TestClient, content: bytes, content_type: str
) -> None:
    response = client.post("/api/v1/leads", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422
    assert response.json()["detail"]


def test_events_endpoint_records_contact_and_sale(client: TestClient) -> None:
    lead_id = client.post("/api/v1/leads", json=one_lead()).json()["leads"][0]["id"]
    contacted = {"type": "contacted", "occurred_at": "2025-06-01T15:20:00Z", "actor": "ana"}
    response = client.post(f"/api/v1/leads/{lead_id}/events", json=contacted)
    assert response.status_code == 201, response.text
    assert client.post(f"/api/v1/leads/{lead_id}/events", json=contacted).status_code == 200
    sold = client.post(f"/api/v1/leads/{lead_id}/events", json={"type": "sold", "note": "a\x00b"})
    assert sold.status_code == 201 and sold.json()["occurred_at"].startswith("2025-06-02T15:00")
    assert sold.json()["note"] == "a\ufffdb"
    lead = client.get(f"/api/v1/leads/{lead_id}").json()
    assert lead["status"] == "sold"
    assert lead["contacted_at"].startswith("2025-06-01T15:20")
    assert [e["type"] for e in lead["events"]] == ["created", "contacted", "sold"]


def test_event_errors(client: TestClient) -> None:
    lead_id = client.post("/api/v1/leads", json=one_lead()).json()["leads"][0]["id"]
    assert client.post("/api/v1/leads/999999/events", json={"type": "contacted"}).status_code == 404
    assert (
        client.post(f"/api/v1/leads/{lead_id}/events", json={"type": "teleported"}).status_code
        == 422
    )
    early = {"type": "contacted", "occurred_at": "2020-01-01T00:00:00Z"}
    response = client.post(f"/api/v1/leads/{lead_id}/events", json=early)
    assert (
        response.status_code == 422 and "before the lead was created" in response.json()["detail"]
    )


def test_shopper_from_two_portals_is_linked_not_counted_twice(client: TestClient) -> None:
    shopper = {"first_name": "Sam", "email": "sam@example.com"}
    client.post("/api/v1/leads", json=one_lead("A-1", source_system="autotrader", customer=shopper))
    second = client.post(
        "/api/v1/leads",
        json=one_lead(
            "C-7", source_system="cars.com", created_at="2025-06-02T08:00:00", customer=shopper
        ),
    )
    assert second.status_code == 200 and second.json()["linked"] == 1
    assert client.get("/api/v1/leads").json()["total"] == 1
    assert client.get("/api/v1/leads", params={"include_duplicates": True}).json()["total"] == 2


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=15), inner, max_size=6)
    ),
    max_leaves=20,
)
_lead_like = st.fixed_dictionaries(
    {},
    optional={
        "external_id": _json_values,
        "created_at": st.one_of(_json_values, st.datetimes().map(str)),
        "source_system": _json_values,
        "vehicle": _json_values,
        "customer": _json_values,
        "events": _json_values,
    },
)


@pytest.mark.slow
@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.one_of(_json_values, _lead_like, st.lists(_lead_like, max_size=3)))
def test_no_json_input_produces_a_server_error(client: TestClient, body: Any) -> None:
    content = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    response = client.post("/api/v1/leads", content=content, headers=headers)
    assert response.status_code in (200, 201, 422), response.text


def test_openapi_documents_the_intake(client: TestClient, tmp_path: Path) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/api/v1/leads"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/xml", "application/x-adf+xml"} <= set(content)
    (tmp_path / "openapi.json").write_text(json.dumps(spec))


def test_api_docs_can_be_turned_off(engine: Engine, settings: Settings) -> None:
    closed = create_app(settings.model_copy(update={"api_docs": False}), engine=engine)
    with TestClient(closed) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 404
        assert client.get("/health").status_code == 200


def test_a_commit_that_fails_is_an_error_not_a_success(engine: Engine, settings: Settings) -> None:
    """The unit of work commits before the response leaves: a client told 2xx can rely on the
    write (and a redirect after a save shows the saved page)."""
    app = create_app(settings, engine=engine)

    @app.post("/_test/failing-commit")
    def failing(db_session: SessionDep) -> dict[str, bool]:
        def refuse(_session: Session) -> None:
            raise RuntimeError("the database refused the commit")

        event.listen(db_session, "before_commit", refuse)
        return {"ok": True}

    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert test_client.post("/_test/failing-commit").status_code == 500
