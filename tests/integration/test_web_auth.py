"""Signing in to the web pages: argon2 passwords, session cookies, CSRF on every form, a rate
limit on failures, no open redirects; and `leadwatch user create`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from leadwatch.app import create_app
from leadwatch.cli import app as cli_app
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.users import service
from leadwatch.users.models import User
from tests.integration.escalation_support import OPEN_TUESDAY, Clock
from tests.integration.web_support import CSRF, PASSWORD


@pytest.fixture
def clock() -> Clock:
    return Clock(OPEN_TUESDAY)


@pytest.fixture
def manager(session_factory: sessionmaker[Session]) -> User:
    with unit_of_work(session_factory) as db_session:
        return service.create_user(
            db_session=db_session,
            email="Sam@Riverside.example",
            password=PASSWORD,
            role="manager",
            name="Sam Patel",
            now=OPEN_TUESDAY,
        )


@pytest.fixture
def browser(engine: Engine, settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(settings, engine=engine, clock=clock)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def sign_in(browser: TestClient, password: str = PASSWORD, next_page: str = "/") -> Any:
    form = browser.get("/login")
    token = CSRF.search(form.text)
    assert token is not None
    return browser.post(
        "/login",
        data={
            "email": "sam@riverside.example",
            "password": password,
            "csrf_token": token.group(1),
            "next": next_page,
        },
    )


def test_pages_need_a_signed_in_user(browser: TestClient) -> None:
    response = browser.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/"


def test_signing_in_sets_a_safe_session_cookie_and_shows_the_page(
    browser: TestClient, manager: User
) -> None:
    form = browser.get("/login")
    assert "lw_login_csrf" in form.headers["set-cookie"]
    assert (
        "HttpOnly" in form.headers["set-cookie"] and "SameSite=strict" in form.headers["set-cookie"]
    )
    response = sign_in(browser, next_page="/")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "lw_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test
    page = browser.get("/")
    assert page.status_code == 200 and "Welcome, Sam Patel" in page.text and "manager" in page.text


def test_the_session_cookie_is_secure_under_https(
    engine: Engine, settings: Settings, clock: Clock, manager: User
) -> None:
    secure = settings.model_copy(update={"public_url": "https://leadwatch.example.com"})
    with TestClient(create_app(secure, engine=engine, clock=clock), follow_redirects=False) as b:
        response = sign_in(b)
        assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_or_a_missing_token_is_refused(browser: TestClient, manager: User) -> None:
    wrong = sign_in(browser, password="not the password")
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    forged = browser.post(
        "/login",
        data={"email": "sam@riverside.example", "password": PASSWORD, "csrf_token": "guess"},
    )
    assert forged.status_code == 403 and "lw_session" not in forged.headers.get("set-cookie", "")


def test_failed_sign_ins_are_rate_limited(browser: TestClient, manager: User, clock: Clock) -> None:
    for _ in range(service.MAX_FAILURES):
        assert sign_in(browser, password="wrong guess!").status_code == 401
    blocked = sign_in(browser)  # even the right password, for now
    assert blocked.status_code == 429 and "too many failed sign-ins" in blocked.text
    assert int(blocked.headers["retry-after"]) > 0
    clock.advance(minutes=16)
    assert sign_in(browser).status_code == 303


def test_signing_out_needs_the_form_token_and_ends_the_session(
    browser: TestClient, manager: User
) -> None:
    sign_in(browser)
    page = browser.get("/")
    token = CSRF.search(page.text)
    assert token is not None
    assert browser.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    out = browser.post("/logout", data={"csrf_token": token.group(1)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert browser.get("/").status_code == 303


def test_next_never_leaves_the_site(browser: TestClient, manager: User) -> None:
    response = sign_in(browser, next_page="//evil.example.com/")
    assert response.headers["location"] == "/"


def test_sessions_expire(browser: TestClient, manager: User, clock: Clock) -> None:
    sign_in(browser)
    clock.advance(days=service.SESSION_DAYS, minutes=1)
    assert browser.get("/").status_code == 303


def test_user_create_from_the_cli_stores_only_a_hash(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    env = {
        "LEADWATCH_HOME": str(settings.home),
        "LEADWATCH_DATABASE_URL": settings.resolved_database_url,
    }
    runner = CliRunner()
    base = ["user", "create", "--email", "ana@riverside.example"]
    made = runner.invoke(cli_app, [*base, "--role", "rep", "--password", PASSWORD], env=env)
    assert made.exit_code == 0, made.output
    short = runner.invoke(cli_app, [*base, "--role", "rep", "--password", "short"], env=env)
    assert short.exit_code == 2 and "at least 10 characters" in short.stderr
    role = runner.invoke(cli_app, [*base, "--role", "boss", "--password", PASSWORD], env=env)
    assert role.exit_code == 2 and "unknown role" in role.stderr
    again = runner.invoke(cli_app, [*base, "--role", "rep", "--password", PASSWORD], env=env)
    assert again.exit_code == 2 and "already exists" in again.stderr
    with unit_of_work(session_factory) as db_session:
        stored = db_session.scalars(select(User.password_hash)).one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    listed = runner.invoke(cli_app, ["user", "list"], env=env)
    assert "ana@riverside.example" in listed.stdout and "rep" in listed.stdout


def test_a_session_lasts_a_week(session_factory: sessionmaker[Session], manager: User) -> None:
    with unit_of_work(session_factory) as db_session:
        signed = service.sign_in(
            db_session=db_session,
            email="SAM@riverside.example ",
            password=PASSWORD,
            client="1.2.3.4",
            now=OPEN_TUESDAY,
        )
        assert signed is not None
        later = OPEN_TUESDAY + timedelta(days=6)
        assert service.session_user(db_session=db_session, token=signed.token, now=later)
