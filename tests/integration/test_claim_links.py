"""Claim links from escalation messages, end to end (SQLite and PostgreSQL): the signed token
in the address is the only credential; opening the link shows a button, posting claims."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.core.leads import EventType
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations.models import ClaimUse, Escalation
from tests.integration.escalation_support import OPEN_TUESDAY, World, make_world

LINK = re.compile(r"(https?://[^\s|>]+/claim/[^\s|>]+)")  # in every channel's wording


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    return make_world(session_factory, settings, OPEN_TUESDAY)


@pytest.fixture
def client(engine: Engine, settings: Settings, world: World) -> Iterator[TestClient]:
    # No API token on this client: the claim pages must not need one.
    with TestClient(create_app(settings, engine=engine, clock=world.clock)) as test_client:
        yield test_client


def critical_links(world: World, external_id: str = "C-1") -> tuple[int, dict[str, str]]:
    """A critical lead notified at once; the claim link path of each person messaged."""
    lead = world.add_lead(external_id, probability=0.05)
    world.watch(lead)
    esc = world.escalation(lead)
    paths: dict[str, set[str]] = {}
    for message in world.messages(esc.id):
        found = LINK.search(message.body)
        assert found, message.body
        url = urlsplit(found.group(1))
        # http://127.0.0.1:8000 unless LEADWATCH_PUBLIC_URL says otherwise
        assert f"{url.scheme}://{url.netloc}" == world.settings.public_base_url
        assert url.path.startswith("/claim/")
        paths.setdefault(message.recipient, set()).add(url.path)
    # One link per person, whatever the channel.
    assert {person: len(found) for person, found in paths.items()} == {"dana": 1, "sam": 1}
    return esc.id, {person: found.pop() for person, found in paths.items()}


def status_of(world: World, escalation_id: int) -> tuple[str, str | None]:
    with unit_of_work(world.factory) as db_session:
        esc = db_session.get(Escalation, escalation_id)
        assert esc is not None
        return esc.status, esc.claimed_by


def claim_uses(world: World) -> int:
    with unit_of_work(world.factory) as db_session:
        return db_session.scalar(select(func.count()).select_from(ClaimUse)) or 0


def assert_page(response: httpx2.Response, code: int, *texts: str) -> None:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    for text in texts:
        assert text in response.text, f"{text!r} not in the page"


def test_opening_the_link_shows_a_button_and_claims_nothing(
    client: TestClient, world: World
) -> None:
    esc_id, links = critical_links(world)
    for _ in range(2):  # a mail scanner, then the person
        page = client.get(links["sam"])
        assert_page(page, 200, "Claim this lead?", "Claim this lead</button>", 'method="post"')
        assert "Customer C-1 – 2025 Toyota Camry (Cars.com)" in page.text
        assert "within 30 minutes" in page.text
    assert status_of(world, esc_id) == ("active", None)
    assert claim_uses(world) == 0


def test_posting_the_link_claims_the_lead_once(client: TestClient, world: World) -> None:
    esc_id, links = critical_links(world)
    done = client.post(links["sam"])
    assert_page(done, 200, "Lead claimed", "It is yours, Sam Patel.", "within 30 minutes")
    assert status_of(world, esc_id) == ("claimed", "Sam Patel")
    with unit_of_work(world.factory) as db_session:
        use = db_session.scalars(select(ClaimUse)).one()
        assert (use.escalation_id, use.person) == (esc_id, "Sam Patel")
    assert world.decisions(esc_id)[-1].action == "claim"
    again = client.post(links["sam"])
    assert_page(again, 400, "Claim link not valid", "this claim link has already been used")
    # Dana's own link is still unused, but the lead is taken: nothing changes, and her link
    # is not used up by the refusal.
    other = client.post(links["dana"])
    assert_page(other, 409, "Not claimed", "lead already claimed by Sam Patel")
    assert status_of(world, esc_id) == ("claimed", "Sam Patel")
    assert claim_uses(world) == 1


def test_a_tampered_link_is_refused(client: TestClient, world: World) -> None:
    esc_id, links = critical_links(world)
    path = links["dana"]
    flipped = path[:-1] + ("A" if path[-1] != "A" else "B")
    for response in (client.get(flipped), client.post(flipped)):
        assert_page(response, 400, "Claim link not valid", "altered or from another install")
    # Pointing a genuine signature at another escalation does not work either.
    prefix, _, rest = path.rpartition("/claim/")
    _, tail = rest.split(".", 1)
    moved = f"{prefix}/claim/{esc_id + 1}.{tail}"
    assert_page(client.post(moved), 400, "altered or from another install")
    incomplete = path.rsplit(".", 1)[0]
    assert_page(client.get(incomplete), 400, "incomplete")
    assert status_of(world, esc_id) == ("active", None)
    assert claim_uses(world) == 0


def test_an_expired_link_is_refused(client: TestClient, world: World, settings: Settings) -> None:
    esc_id, links = critical_links(world)
    world.clock.advance(hours=settings.claim_link_hours, minutes=1)
    assert_page(client.get(links["dana"]), 400, "Claim link not valid", "expired")
    assert_page(client.post(links["dana"]), 400, "expired", "claim the lead in LeadWatch instead")
    assert status_of(world, esc_id) == ("active", None)


def test_a_link_just_before_expiry_still_works(
    client: TestClient, world: World, settings: Settings
) -> None:
    esc_id, links = critical_links(world)
    world.clock.advance(hours=settings.claim_link_hours, minutes=-1)
    assert_page(client.post(links["dana"]), 200, "Lead claimed", "It is yours, Dana Reyes.")
    assert status_of(world, esc_id) == ("claimed", "Dana Reyes")


def test_a_link_for_an_ended_escalation_says_it_ended(client: TestClient, world: World) -> None:
    esc_id, links = critical_links(world)
    with unit_of_work(world.factory) as db_session:
        lead_id = db_session.get(Escalation, esc_id).lead_id  # type: ignore[union-attr]
    world.clock.advance(minutes=3)
    world.event(lead_id, EventType.CONTACTED)
    world.watch(lead_id)
    assert status_of(world, esc_id) == ("stopped", None)
    for response in (client.get(links["dana"]), client.post(links["dana"])):
        assert_page(response, 409, "Not claimed", "has already ended", "lead contacted")
        assert "Claim this lead</button>" not in response.text
    assert status_of(world, esc_id) == ("stopped", None)
    assert claim_uses(world) == 0  # the refused claim does not use the link up


def test_claim_pages_ignore_api_tokens_and_refuse_junk(client: TestClient, world: World) -> None:
    esc_id, links = critical_links(world)
    page = client.get(links["dana"], headers={"Authorization": "Bearer lw_not_a_token"})
    assert_page(page, 200, "Claim this lead?")
    assert client.get("/claim/not%20a%20token").status_code == 422
    assert_page(client.get("/claim/a.b.c.d.e"), 400, "Claim link not valid")
    assert status_of(world, esc_id) == ("active", None)
