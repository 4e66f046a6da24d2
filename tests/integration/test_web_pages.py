"""The signed-in pages: recent escalations with filters, an escalation's timeline, and the
in-app notifications with the bell's unread count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.leads.models import Lead
from leadwatch.notifications.channels.in_app import InAppChannel
from leadwatch.notifications.dispatcher import Dispatcher
from leadwatch.users import service as user_service
from tests.integration.escalation_support import OPEN_TUESDAY, World, make_world
from tests.integration.web_support import CSRF, PASSWORD, sign_in


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    world = make_world(session_factory, settings, OPEN_TUESDAY)
    with unit_of_work(session_factory) as db_session:
        user_service.create_user(
            db_session=db_session,
            email="dana@riverside.example",
            password=PASSWORD,
            role="rep",
            name="Dana Reyes",
            person_key="dana",
            now=OPEN_TUESDAY,
        )
    return world


@pytest.fixture
def browser(engine: Engine, settings: Settings, world: World) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine, clock=world.clock)) as client:
        signed = sign_in(client, "dana@riverside.example")
        assert signed.status_code == 200 and "Welcome, Dana Reyes" in signed.text
        yield client


def test_every_page_needs_sign_in(engine: Engine, settings: Settings, world: World) -> None:
    with TestClient(create_app(settings, engine=engine), follow_redirects=False) as anonymous:
        for path in ("/", "/escalations", "/escalations/1", "/notifications"):
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next=")
        assert anonymous.post("/notifications/read", data={"csrf_token": "x"}).status_code == 303


def test_recent_escalations_filter_and_show_a_timeline(browser: TestClient, world: World) -> None:
    critical = world.add_lead("P-1", probability=0.05)
    medium = world.add_lead("P-2", probability=0.25)
    world.watch(critical, medium)
    listing = browser.get("/escalations")
    assert listing.status_code == 200
    assert f">#{critical}</a>" in listing.text and f">#{medium}</a>" in listing.text
    only = browser.get("/escalations", params={"level": "critical"})
    assert f">#{critical}</a>" in only.text and f">#{medium}</a>" not in only.text
    assert browser.get("/escalations", params={"level": "urgent"}).status_code == 422
    esc = world.escalation(critical)
    timeline = browser.get(f"/escalations/{esc.id}")
    assert "critical line 0.10" in timeline.text and "Dana Reyes (sms)" in timeline.text
    assert browser.get("/escalations/999999").status_code == 404


def test_the_bell_counts_unread_notifications_until_they_are_read(
    browser: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    world.watch(world.add_lead("N-1", probability=0.05))  # Dana gets an in-app message
    _deliver_in_app(session_factory, world)
    home = browser.get("/")
    assert "Notifications, 1 unread" in home.text
    inbox = browser.get("/notifications")
    assert "1 unread." in inbox.text and "[CRITICAL] Customer N-1" in inbox.text
    token = CSRF.search(inbox.text)
    assert token is not None
    assert browser.post("/notifications/read", data={"csrf_token": "forged"}).status_code == 403
    read = browser.post("/notifications/read", data={"csrf_token": token.group(1)})
    assert read.status_code == 200 and "0 unread." in read.text
    assert "Notifications, 0 unread" in read.text


def test_a_rep_sees_their_own_leads_and_can_claim_or_log_contact(
    browser: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    mine = world.add_lead("L-1", probability=0.15)
    other = world.add_lead("L-2", probability=0.15, rep="Lee Chen")
    contacted = world.add_lead("L-3", probability=0.15)
    world.watch(mine, other, contacted)
    page = browser.get("/leads")
    assert "Leads assigned to Dana Reyes." in page.text
    assert f"#{mine}<br>" in page.text and f"#{other}<br>" not in page.text
    assert f"Claim lead {mine}" in page.text and "15%" in page.text and "high" in page.text
    token = CSRF.search(page.text)
    assert token is not None
    csrf = {"csrf_token": token.group(1)}
    assert browser.post(f"/leads/{mine}/claim", data={"csrf_token": "forged"}).status_code == 403
    assert browser.post(f"/leads/{other}/claim", data=csrf).status_code == 404  # not hers
    claimed = browser.post(f"/leads/{mine}/claim", data=csrf)
    assert claimed.status_code == 200
    esc = world.escalation(mine)
    assert (esc.status, esc.claimed_by) == ("claimed", "Dana Reyes")
    assert browser.post(f"/leads/{mine}/claim", data=csrf).status_code == 409  # already
    logged = browser.post(f"/leads/{contacted}/contacted", data=csrf)
    assert logged.status_code == 200 and "not contacted" in logged.text  # the others still
    esc = world.escalation(contacted)
    assert (esc.status, esc.end_reason) == ("stopped", "lead contacted: chain stopped")
    with unit_of_work(session_factory) as db_session:
        lead = db_session.get(Lead, contacted)
        assert lead is not None and lead.contacted_at is not None


def test_statistics_draw_charts_on_the_server(browser: TestClient, world: World) -> None:
    empty = browser.get("/stats")
    assert empty.status_code == 200 and "Escalations by level: no data" in empty.text
    world.watch(
        world.add_lead("S-1", probability=0.05),
        world.add_lead("S-2", probability=0.05),
        world.add_lead("S-3", probability=0.15),
    )
    page = browser.get("/stats")
    assert "3 escalations, 3 live" in page.text and "<script" not in page.text
    assert '<title id="chart-escalations-by-level">Escalations by level: critical 2, high 1' in (
        page.text
    )
    assert "Messages by channel: email 4, in_app 4, sms 4" in page.text
    assert browser.get("/stats", params={"days": 0}).status_code == 422


def test_a_rep_sees_only_the_escalations_of_their_own_leads(
    browser: TestClient, world: World
) -> None:
    mine = world.add_lead("R-1", probability=0.05)
    theirs = world.add_lead("R-2", probability=0.05, rep="Lee Chen")
    world.watch(mine, theirs)
    listing = browser.get("/escalations")
    assert f">#{mine}</a>" in listing.text and f">#{theirs}</a>" not in listing.text
    assert browser.get(f"/escalations/{world.escalation(theirs).id}").status_code == 404
    assert browser.get(f"/escalations/{world.escalation(mine).id}").status_code == 200


def test_escalations_filter_by_channel_and_dealership(
    engine: Engine, settings: Settings, world: World
) -> None:
    critical = world.add_lead("F-1", probability=0.05)  # messages at once, sms among them
    medium = world.add_lead("F-2", probability=0.25)  # its first step waits: no message yet
    world.watch(critical, medium)
    with unit_of_work(world.factory) as db_session:
        user_service.create_user(
            db_session=db_session,
            email="ada@riverside.example",
            password=PASSWORD,
            role="admin",
            now=OPEN_TUESDAY,
        )
        store = db_session.get(Lead, critical).dealership_id  # type: ignore[union-attr]
    with TestClient(create_app(settings, engine=engine, clock=world.clock)) as admin:
        assert sign_in(admin, "ada@riverside.example").status_code == 200
        by_sms = admin.get("/escalations", params={"channel": "sms"}).text
        assert f">#{critical}</a>" in by_sms and f">#{medium}</a>" not in by_sms
        here = admin.get("/escalations", params={"dealership": store}).text
        assert f">#{critical}</a>" in here and f">#{medium}</a>" in here
        assert "<td>Riverside Motors</td>" in here
        elsewhere = admin.get("/escalations", params={"dealership": store + 1}).text
        assert "No escalations match." in elsewhere
        assert admin.get("/escalations", params={"channel": "fax"}).status_code == 422


def test_an_account_reads_the_inbox_of_the_recipient_with_its_email(
    engine: Engine, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    """Sam's account is not linked to a directory person, but the directory has a recipient
    with Sam's sign-in email: that recipient's in-app messages are Sam's."""
    with unit_of_work(session_factory) as db_session:
        user_service.create_user(
            db_session=db_session,
            email="Sam@Riverside.example",  # the same address, written differently
            password=PASSWORD,
            role="manager",
            now=OPEN_TUESDAY,
        )
        user_service.create_user(
            db_session=db_session,
            email="nobody@riverside.example",
            password=PASSWORD,
            role="manager",
            now=OPEN_TUESDAY,
        )
    world.watch(world.add_lead("N-2", probability=0.05))  # critical: the sales manager too
    _deliver_in_app(session_factory, world)
    for email, expected in (("Sam@Riverside.example", 1), ("nobody@riverside.example", 0)):
        with TestClient(create_app(settings, engine=engine, clock=world.clock)) as client:
            assert sign_in(client, email).status_code == 200
            inbox = client.get("/notifications").text
            assert f"Notifications, {expected} unread" in inbox
            if expected:
                assert "[CRITICAL] Customer N-2" in inbox
            else:
                assert "Add yourself on" in inbox


def _deliver_in_app(session_factory: sessionmaker[Session], world: World) -> None:
    """One dispatcher pass with the in-app channel: the waiting messages reach the inboxes."""
    dispatcher = Dispatcher(
        session_factory=session_factory,
        channels={"in_app": InAppChannel(session_factory)},
        clock=world.clock,
    )
    dispatcher.run_once()
    dispatcher.close()
