"""Notification Settings > Lead Escalation in the browser: thresholds and recipients, saved
as new versions with who and what; reps may look but not edit."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations import settings as settings_service
from leadwatch.users import service as user_service
from tests.integration.escalation_support import OPEN_TUESDAY, World, make_world

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    world = make_world(session_factory, settings, OPEN_TUESDAY)
    with unit_of_work(session_factory) as db_session:
        for email, role in (
            ("sam@riverside.example", "manager"),
            ("dana@riverside.example", "rep"),
        ):
            user_service.create_user(
                db_session=db_session, email=email, password=PASSWORD, role=role, now=OPEN_TUESDAY
            )
    return world


def signed_in(engine: Engine, settings: Settings, world: World, email: str) -> TestClient:
    client = TestClient(create_app(settings, engine=engine, clock=world.clock))
    token = CSRF.search(client.get("/login").text)
    assert token is not None
    data = {"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/login", data=data).status_code == 200
    return client


@pytest.fixture
def manager(engine: Engine, settings: Settings, world: World) -> Iterator[TestClient]:
    with signed_in(engine, settings, world, "sam@riverside.example") as client:
        yield client


def form_token(client: TestClient) -> str:
    found = CSRF.search(client.get("/settings/escalation").text)
    assert found is not None
    return found.group(1)


def test_a_manager_changes_the_thresholds_as_a_new_version(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    page = manager.get("/settings/escalation")
    assert "Version 1, saved by test" in page.text and 'value="0.1"' in page.text
    saved = manager.post(
        "/settings/escalation/thresholds",
        data={"csrf_token": form_token(manager), "critical": 0.12, "high": 0.25, "medium": 0.4},
    )
    assert saved.status_code == 200 and "Thresholds saved." in saved.text
    assert "Version 2, saved by sam@riverside.example" in saved.text
    assert "thresholds.critical: 0.1 -&gt; 0.12" in saved.text  # the history says what changed
    with unit_of_work(session_factory) as db_session:
        rules = settings_service.load(db_session=db_session).rules
    assert rules.thresholds is not None and rules.thresholds.critical == 0.12


def test_thresholds_out_of_order_are_refused_and_nothing_is_saved(manager: TestClient) -> None:
    refused = manager.post(
        "/settings/escalation/thresholds",
        data={"csrf_token": form_token(manager), "critical": 0.5, "high": 0.2, "medium": 0.3},
    )
    assert refused.status_code == 422 and "critical &lt; high &lt; medium" in refused.text
    assert "Version 1," in refused.text


def test_a_manager_adds_a_recipient_and_bad_ones_are_refused(manager: TestClient) -> None:
    added = manager.post(
        "/settings/escalation/people",
        data={
            "csrf_token": form_token(manager),
            "key": "lee",
            "name": "Lee Chen",
            "role": "bdc",
            "email": "lee@riverside.example",
            "phone": "",
        },
    )
    assert added.status_code == 200 and "Recipient added." in added.text
    assert "<td>Lee Chen</td><td>bdc</td>" in added.text
    again = manager.post(
        "/settings/escalation/people",
        data={"csrf_token": form_token(manager), "key": "lee", "name": "Lee Two"},
    )
    assert again.status_code == 422 and "is used twice" in again.text


def test_a_rep_may_look_but_not_edit(engine: Engine, settings: Settings, world: World) -> None:
    with signed_in(engine, settings, world, "dana@riverside.example") as rep:
        page = rep.get("/settings/escalation")
        assert page.status_code == 200 and "Save thresholds" not in page.text
        token = CSRF.search(page.text)
        assert token is not None
        refused = rep.post(
            "/settings/escalation/thresholds",
            data={"csrf_token": token.group(1), "critical": 0.12, "high": 0.25, "medium": 0.4},
        )
        assert refused.status_code == 403
