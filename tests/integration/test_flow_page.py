"""The Lead Flow page: signed-in users only, each seeing the flow of the leads in their scope
(reps their own, managers their dealership's, admins all)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.core.leads import EventType
from leadwatch.db.engine import unit_of_work
from leadwatch.leads.directory import ensure_dealership
from leadwatch.users import service as user_service
from tests.integration import web_support
from tests.integration.escalation_support import Clock
from tests.integration.test_lead_export import T0, lead, store
from tests.integration.web_support import PASSWORD

NOW = T0 + timedelta(days=50)
LEADS = re.compile(r'<th scope="row">Leads analysed</th><td>([\d,]+) \(')


@pytest.fixture
def app_with_leads(
    engine: Engine, settings: Settings, session_factory: sessionmaker[Session]
) -> TestClient:
    """Riverside: 6 leads of Dana Reyes, 4 of Ben Cho; Lakeshore: 5 of Ben Cho."""
    leads = []
    for i in range(15):
        dealer = "Lakeshore Auto" if i >= 10 else "Riverside Motors"
        rep = "Dana Reyes" if i < 6 else "Ben Cho"
        events: tuple[tuple[EventType, timedelta], ...] = (
            (EventType.CONTACTED, timedelta(minutes=4 + i)),
        )
        if i % 3 == 0:
            events += ((EventType.SOLD, timedelta(days=3)),)
        leads.append(
            lead(
                f"W{i}", dealership=dealer, rep=rep, created=T0 + timedelta(hours=i), events=events
            )
        )
    with unit_of_work(session_factory) as db_session:
        store(db_session, leads)
        lakeshore = ensure_dealership(
            db_session=db_session, name="Lakeshore Auto", timezone="America/New_York"
        ).id
        for email, role, name, dealership in (
            ("dana@example.com", "rep", "Dana Reyes", None),
            ("nobody@example.com", "rep", "Nobody Yet", None),
            ("sam@example.com", "manager", "Sam Patel", lakeshore),
            ("root@example.com", "admin", "Ada Admin", None),
        ):
            user_service.create_user(
                db_session=db_session,
                email=email,
                password=PASSWORD,
                role=role,
                name=name,
                dealership_id=dealership,
                now=NOW,
            )
    return TestClient(create_app(settings, engine=engine, clock=Clock(NOW)))


@pytest.fixture
def sign_in(app_with_leads: TestClient) -> Iterator[Callable[[str], TestClient]]:
    def signed(email: str) -> TestClient:
        response = web_support.sign_in(app_with_leads, email)
        assert response.status_code == 200, response.text
        return app_with_leads

    with app_with_leads:
        yield signed


def analysed(page: str) -> int:
    found = LEADS.search(page)
    assert found is not None, page[:2000]
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize(
    ("email", "leads", "scope"),
    [
        ("dana@example.com", 6, "Leads assigned to Dana Reyes."),
        ("sam@example.com", 5, "Leads of your dealership."),
        ("root@example.com", 15, "All leads."),
    ],
)
def test_each_role_sees_the_flow_of_its_own_scope(
    sign_in: Callable[[str], TestClient], email: str, leads: int, scope: str
) -> None:
    browser = sign_in(email)
    page = browser.get("/flow")
    assert page.status_code == 200
    assert scope in page.text and analysed(page.text) == leads
    assert '<a href="/flow">Lead flow</a>' in page.text
    assert page.text.count("<svg") >= 6 and "Speed to lead" in page.text
    assert "Stage funnel" in page.text and "Recommendations" in page.text


def test_a_scope_without_leads_says_so(sign_in: Callable[[str], TestClient]) -> None:
    browser = sign_in("nobody@example.com")
    page = browser.get("/flow")
    assert page.status_code == 200
    assert "No leads created in the last 365 days" in page.text and "<svg" not in page.text
    assert browser.get("/flow", params={"days": 5}).status_code == 422


def test_the_page_needs_a_signed_in_user(engine: Engine, settings: Settings) -> None:
    with TestClient(create_app(settings, engine=engine), follow_redirects=False) as anonymous:
        response = anonymous.get("/flow")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=/flow"


def test_a_store_zone_the_system_does_not_know_is_said_not_a_crash(
    sign_in: Callable[[str], TestClient], session_factory: sessionmaker[Session]
) -> None:
    from sqlalchemy import update

    from leadwatch.leads.models import Dealership

    with unit_of_work(session_factory) as db_session:  # an old record, before zones were checked
        db_session.execute(
            update(Dealership)
            .where(Dealership.name == "Lakeshore Auto")
            .values(timezone="Mars/Base")
        )
    page = sign_in("root@example.com").get("/flow")
    assert page.status_code == 200 and "Mars/Base" in page.text
