"""The statistics page: escalations over time by level on the viewer's clock, messages sent and
dead by channel, success over time and the dead letters, each counting only what the signed-in
user may see (reps their own leads, managers their dealership, admins everything)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.core.leads import EventType
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations import series
from leadwatch.leads.directory import ensure_dealership
from leadwatch.leads.models import Dealership, Lead
from leadwatch.notifications.models import OutboxMessage
from leadwatch.users import service as user_service
from tests.integration.escalation_support import World, make_world
from tests.integration.web_support import PASSWORD, sign_in

CHICAGO = ZoneInfo("America/Chicago")
# Thursday 12 June 2025, 10:00 in Chicago: the page is looked at now.
NOW = datetime(2025, 6, 12, 15, 0, tzinfo=UTC)
BOUNCED = "550 5.1.1 <gina@riverside.example>: mailbox unavailable"
BAD_NUMBER = "21211 invalid 'To' phone number"
# (role, name, dealership id) -> a test client signed in as that new user
SignIn = Callable[..., AbstractContextManager[TestClient]]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 6, day, hour, minute, tzinfo=UTC)


class Scenario:
    """Six escalations over three days in two dealerships. A's messages were sent; B's text
    to Dana (a bad number) and E's email to Sam (bounced) were given up on.

    | lead | rep       | dealership | started (UTC) | Chicago     | level    | outcome   |
    | A    | Dana      | Main       | Tue 10 15:00  | Tue 10      | critical | contacted |
    | B    | Dana      | Main       | Tue 10 15:00  | Tue 10      | critical | live      |
    | C    | Lee Chen  | Main       | Tue 10 16:00  | Tue 10      | high     | lost      |
    | D    | Dana      | Main       | Wed 11 03:00  | Tue 10 22h  | medium   | live      |
    | E    | Lee Chen  | Main       | Wed 11 15:00  | Wed 11      | critical | live      |
    | F    | Pat Kim   | Lakeside   | Thu 12 14:00  | Thu 12      | critical | live      |
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.lead: dict[str, int] = {}
        for key, rep, when, probability in (
            ("A", "Dana Reyes", at(10, 15), 0.05),
            ("B", "Dana Reyes", at(10, 15), 0.05),
            ("C", "Lee Chen", at(10, 16), 0.15),
            ("D", "Dana Reyes", at(11, 3), 0.25),
            ("E", "Lee Chen", at(11, 15), 0.05),
            ("F", "Pat Kim", at(12, 14), 0.05),
        ):
            world.clock.now = when
            self.lead[key] = world.add_lead(f"S-{key}", probability=probability, rep=rep)
            if key == "F":
                self._move_to_lakeside(self.lead[key])
            world.watch(self.lead[key])
        world.clock.now = at(10, 15, 20)
        world.event(self.lead["A"], EventType.CONTACTED)
        world.watch(self.lead["A"])
        world.clock.now = at(10, 18)
        world.event(self.lead["C"], EventType.LOST)
        world.watch(self.lead["C"])
        self.esc = {key: world.escalation(lead).id for key, lead in self.lead.items()}
        self.sent = Counter(m.channel for m in world.messages(self.esc["A"]))
        self._kill(self.esc["B"], "sms", BAD_NUMBER, at(10, 15, 30))
        self._kill(self.esc["E"], "email", BOUNCED, at(11, 16))
        with unit_of_work(world.factory) as db_session:
            db_session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.escalation_id == self.esc["A"])
                .values(status="sent", sent_at=at(10, 15, 1))
            )
        world.clock.now = NOW

    def _move_to_lakeside(self, lead_id: int) -> None:
        with unit_of_work(self.world.factory) as db_session:
            lakeside = ensure_dealership(
                db_session=db_session, name="Lakeside Auto", timezone="America/New_York"
            )
            db_session.execute(
                update(Lead).where(Lead.id == lead_id).values(dealership_id=lakeside.id)
            )

    def _kill(self, escalation_id: int, channel: str, error: str, when: datetime) -> None:
        """Give up on the first message of ``escalation_id`` on ``channel``."""
        with unit_of_work(self.world.factory) as db_session:
            message = db_session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.escalation_id == escalation_id)
                .where(OutboxMessage.channel == channel)
                .order_by(OutboxMessage.id)
            ).first()
            assert message is not None, (escalation_id, channel)
            message.status, message.last_error, message.dead_at = "dead", error, when


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    return make_world(session_factory, settings, NOW)


@pytest.fixture
def scenario(world: World) -> Scenario:
    return Scenario(world)


def main_store(world: World) -> int:
    with unit_of_work(world.factory) as db_session:
        return db_session.scalars(
            select(Dealership.id).where(Dealership.name == world.settings.default_dealership)
        ).one()


@pytest.fixture
def signed_in(engine: Engine, settings: Settings, world: World) -> SignIn:
    @contextmanager
    def as_user(role: str, name: str, dealership_id: int | None = None) -> Iterator[TestClient]:
        email = f"{role}@riverside.example"
        with unit_of_work(world.factory) as db_session:
            user_service.create_user(
                db_session=db_session,
                email=email,
                password=PASSWORD,
                role=role,
                name=name,
                dealership_id=dealership_id,
                now=world.clock(),
            )
        with TestClient(create_app(settings, engine=engine, clock=world.clock)) as client:
            signed = sign_in(client, email)
            assert signed.status_code == 200, signed.text
            yield client

    return as_user


def level_title(per: str, summary: str) -> str:
    return f"Escalations started per {per}, by level: {summary}</title>"


def test_the_series_counts_each_day_by_level_on_the_viewers_clock(
    scenario: Scenario, world: World
) -> None:
    with unit_of_work(world.factory) as db_session:
        since, until = series.window(days=7, now=NOW, zone=UTC)
        in_utc = series.escalation_series(db_session=db_session, since=since, until=until)
        since, until = series.window(days=7, now=NOW, zone=CHICAGO)
        in_chicago = series.escalation_series(
            db_session=db_session, since=since, until=until, zone=CHICAGO
        )
    assert (in_utc.unit, in_utc.zone, in_chicago.zone) == ("day", "UTC", "America/Chicago")
    assert [b.label for b in in_utc.buckets] == [f"{d:02d} Jun" for d in range(6, 13)]
    assert in_chicago.buckets[0].start == datetime(2025, 6, 6, tzinfo=CHICAGO)
    assert in_utc.levels == ["critical", "high", "medium"]
    assert {b.label: b.by_level for b in in_utc.buckets if b.total} == {
        "10 Jun": {"critical": 2, "high": 1},
        "11 Jun": {"medium": 1, "critical": 1},
        "12 Jun": {"critical": 1},
    }
    # D started at 03:00 UTC on the 11th: 22:00 on the 10th in Chicago.
    assert {b.label: b.by_level for b in in_chicago.buckets if b.total} == {
        "10 Jun": {"critical": 2, "high": 1, "medium": 1},
        "11 Jun": {"critical": 1},
        "12 Jun": {"critical": 1},
    }
    tenth = in_utc.buckets[4]
    # A was contacted (succeeded), C was lost (decided, failed), B is live (not decided).
    assert (tenth.succeeded, tenth.decided, tenth.success_rate) == (1, 2, 0.5)
    assert [b.success_rate for b in in_utc.buckets] == [None] * 4 + [0.5, None, None]
    assert tenth.sent == dict(scenario.sent) and tenth.dead == {"sms": 1}
    assert in_utc.buckets[5].dead == {"email": 1} and in_utc.buckets[5].sent == {}


@pytest.mark.usefixtures("scenario")
def test_a_short_window_is_cut_into_hours(world: World) -> None:
    with unit_of_work(world.factory) as db_session:
        since, until = series.window(days=1, now=NOW, zone=UTC)
        hourly = series.escalation_series(db_session=db_session, since=since, until=until)
    assert hourly.unit == "hour" and len(hourly.buckets) == 24
    assert hourly.buckets[0].label == "16:00" and hourly.buckets[8].label == "12 Jun"  # 0h
    assert {b.label: b.by_level for b in hourly.buckets if b.total} == {"14:00": {"critical": 1}}


def test_a_zone_off_the_hour_buckets_by_its_own_midnight(world: World) -> None:
    world.clock.now = at(10, 18, 40)  # 00:10 on the 11th in Kolkata (UTC+5:30)
    world.watch(world.add_lead("K-1", probability=0.05))
    kolkata = ZoneInfo("Asia/Kolkata")
    with unit_of_work(world.factory) as db_session:
        since, until = series.window(days=7, now=NOW, zone=kolkata)
        days = series.escalation_series(
            db_session=db_session, since=since, until=until, zone=kolkata
        )
    assert {b.label: b.total for b in days.buckets if b.total} == {"11 Jun": 1}


def test_scoping_narrows_the_series_and_the_dead_letters(scenario: Scenario, world: World) -> None:
    store = main_store(world)
    since, until = series.window(days=7, now=NOW, zone=UTC)
    with unit_of_work(world.factory) as db_session:
        for limits, started, dead in (
            ({"rep": "dana reyes"}, 3, {"sms": 1}),
            ({"dealership_id": store}, 5, {"sms": 1, "email": 1}),
            ({}, 6, {"sms": 1, "email": 1}),
        ):
            found = series.escalation_series(
                db_session=db_session, since=since, until=until, **limits
            )
            assert sum(b.total for b in found.buckets) == started, limits
            letters = series.dead_letters(db_session=db_session, since=since, until=until, **limits)
            assert letters.by_channel == dict(sorted(dead.items())), limits
    assert (letters.count, [x.error for x in letters.recent]) == (2, [BOUNCED, BAD_NUMBER])
    assert letters.recent[1].escalation_id == scenario.esc["B"]
    assert letters.recent[1].lead_id == scenario.lead["B"]


def test_an_admin_sees_every_dealership_on_utc_days(scenario: Scenario, signed_in: SignIn) -> None:
    with signed_in("admin", "Ada Admin") as admin:
        page = admin.get("/stats", params={"days": 7})
    assert page.status_code == 200 and "<script" not in page.text
    text = page.text
    assert "All leads. Times are in UTC, one column per day." in text
    assert "6 escalations, 4 live" in text.replace("\n", " ")
    assert level_title("day", "6 in all; critical 4, high 1, medium 1; most in 10 Jun (3)") in text
    for tooltip in (
        "10 Jun: critical 2",
        "10 Jun: high 1",
        "11 Jun: medium 1",
        "12 Jun: critical 1",
    ):
        assert f"<title>{tooltip}</title>" in text
    assert "<title>10 Jun: 50%</title>" in text  # the success line
    assert "Success rate per day: success rate lowest 50% (10 Jun)" in text
    assert "<title>10 Jun: sms 1</title>" in text  # B's dead text message
    assert BAD_NUMBER.replace("'", "&#39;") in text and "mailbox unavailable" in text
    assert f'<a href="/escalations/{scenario.esc["B"]}">Lead #{scenario.lead["B"]}' in text
    assert '<option value="7" selected>Last 7 days</option>' in text


def test_a_manager_sees_their_dealership_on_its_clock(
    scenario: Scenario, signed_in: SignIn, world: World
) -> None:
    with signed_in("manager", "Sam Patel", main_store(world)) as manager:
        page = manager.get("/stats", params={"days": 7})
    text = page.text
    assert "Leads of your dealership. Times are in America/Chicago" in text
    assert level_title("day", "5 in all; critical 3, high 1, medium 1; most in 10 Jun (4)") in text
    assert "<title>10 Jun: medium 1</title>" in text  # D, at 22:00 in Chicago
    assert "<title>12 Jun: critical 1</title>" not in text  # F is Lakeside's
    assert "Since Fri 06 Jun 2025 00:00 (America/Chicago)" in text


def test_a_rep_sees_only_their_own_leads(
    scenario: Scenario, signed_in: SignIn, world: World
) -> None:
    with signed_in("rep", "Dana Reyes", main_store(world)) as rep:
        page = rep.get("/stats", params={"days": 7})
    text = page.text
    assert "Leads assigned to Dana Reyes." in text
    assert level_title("day", "3 in all; critical 2, medium 1; most in 10 Jun (3)") in text
    assert "3 escalations, 2 live" in text
    assert ">Success rate per day: success rate lowest 100% (10 Jun)" in text
    assert "invalid &#39;To&#39; phone number" in text  # B is hers
    assert "mailbox unavailable" not in text  # E is Lee Chen's
    assert f'href="/escalations/{scenario.esc["E"]}"' not in text
    # The totals per channel count her escalations' messages only.
    hers = Counter(m.channel for key in "ABD" for m in world.messages(scenario.esc[key]))
    totals = ", ".join(f"{channel} {n}" for channel, n in sorted(hers.items()))
    assert f"Messages by channel: {totals}</title>" in text
    assert "1 message written in this window was given up on: sms 1." in text


def test_an_empty_window_says_so_and_odd_windows_are_refused(signed_in: SignIn) -> None:
    with signed_in("admin", "Ada Admin") as admin:
        page = admin.get("/stats")
        assert page.status_code == 200
        text = page.text
        assert "Escalations started per day, by level: no escalations in this window" in text
        assert "no escalations in this window</text>" in text
        assert "no dead letters in this window" in text
        assert "0 messages written in this window were given up on." in text
        assert '<option value="30" selected>Last 30 days</option>' in text
        hourly = admin.get("/stats", params={"days": 1})
        assert "Escalations started per hour, by level: no escalations" in hourly.text
        for days in ("0", "2", "365", "week"):
            assert admin.get("/stats", params={"days": days}).status_code == 422, days


@pytest.mark.usefixtures("scenario")
def test_dead_letters_are_escaped(signed_in: SignIn, world: World) -> None:
    with unit_of_work(world.factory) as db_session:
        db_session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "dead")
            .values(last_error="<script>alert(1)</script>")
        )
    with signed_in("admin", "Ada Admin") as admin:
        page = admin.get("/stats", params={"days": 7})
    assert "<script" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
