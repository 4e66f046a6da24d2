"""In a real headless Chromium (Debian's package, driven by Playwright): sign in, post a lead
through the API, see its escalation arrive in the list, its timeline, and the in-app bell.
Screenshots go to tests/artifacts/."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.auth import service as auth_service
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.users import service as user_service
from tests.integration.escalation_support import make_world, staffed_document

ARTIFACTS = Path(__file__).parent.parent / "artifacts"
PASSWORD = "correct horse battery"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
        pytest.skip("BROWSER TESTS SKIPPED: no chromium (apt-get install chromium)")
    return path


@pytest.fixture
def served(
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
    model_home: Path,
) -> Iterator[tuple[str, str]]:
    """A real server on loopback with its worker thread, a staffed store open around the
    clock, a manager who signs in, and an API token for the CRM."""
    settings = settings.model_copy(update={"home": model_home})
    world = make_world(session_factory, settings, datetime.now(UTC))
    always = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    world.save_settings(staffed_document(working_hours={"default": {"weekly": always}}))
    now = world.clock()
    with unit_of_work(session_factory) as db_session:
        user_service.create_user(
            db_session=db_session,
            email="sam@riverside.example",
            password=PASSWORD,
            role="manager",
            name="Sam Patel",
            person_key="sam",  # the sales manager: told at once about critical leads
            now=now,
        )
        _, token = auth_service.create_token(db_session=db_session, name="crm", now=now)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(settings, engine=engine, run_worker=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield base, token
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_a_manager_tunes_escalation_and_sees_a_posted_lead_arrive(
    chromium: str, served: tuple[str, str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, token = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            page.goto(f"{base}/escalations")
            expect(page).to_have_url(f"{base}/login?next=/escalations")
            # Signed in with the keyboard only: the email field, Tab, the password, Enter.
            page.get_by_label("Email").focus()
            page.keyboard.type("sam@riverside.example")
            page.keyboard.press("Tab")
            page.keyboard.type(PASSWORD)
            page.keyboard.press("Enter")
            expect(page.get_by_role("heading", name="Recent escalations")).to_be_visible()

            # Notification Settings > Lead Escalation: every new lead counts as at risk...
            page.get_by_role("link", name="Settings").click()
            page.get_by_label("Critical below").fill("0.97")
            page.get_by_label("High below").fill("0.98")
            page.get_by_label("Medium below").fill("0.99")
            page.get_by_role("button", name="Save thresholds").click()
            expect(page.get_by_text("Thresholds saved.")).to_be_visible()
            # ...and a BDC desk joins the recipients.
            page.get_by_role("link", name="Recipients").click()
            page.get_by_label("Key").fill("lee")
            page.get_by_label("Name").fill("Lee Chen")
            page.get_by_label("Role").select_option("bdc")
            page.get_by_label("Email").fill("lee@riverside.example")
            page.get_by_role("button", name="Add recipient").click()
            expect(page.get_by_role("cell", name="Lee Chen", exact=True)).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "settings.png"), full_page=True)
            # The in-app subject is reworded, with the preview following the typing.
            page.get_by_role("link", name="Templates").click()
            page.get_by_label("Template", exact=True).select_option("in_app.subject.j2")
            page.get_by_role("button", name="Open").click()
            page.get_by_label("Template text").fill("Call {{ customer }} now")
            expect(page.locator("#preview")).to_contain_text("Call Maria Gonzalez now")
            page.get_by_role("button", name="Save template").click()
            expect(page.get_by_text("Template saved.")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "settings-templates.png"), full_page=True)
            page.get_by_role("link", name="Escalations").click()

            lead = {
                "external_id": "WEB-1",
                "created_at": datetime.now(UTC).isoformat(),
                "rep": "Dana Reyes",
                "lead_source": "Cars.com",
                "vehicle": {"make": "Toyota", "model": "Camry", "price": 31000},
                "customer": {"name": "Jordan Miles", "email": "jordan@example.com"},
            }
            posted = httpx.post(
                f"{base}/api/v1/leads", json=lead, headers={"Authorization": f"Bearer {token}"}
            )
            assert posted.status_code == 201, posted.text
            lead_id = posted.json()["leads"][0]["id"]

            page.reload()
            link = page.get_by_role("link", name=f"#{lead_id}")
            expect(link).to_be_visible()
            link.click()
            expect(page.get_by_text("critical line 0.97")).to_be_visible()
            expect(page.get_by_text("Sam Patel (in_app)")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "escalation-timeline.png"), full_page=True)

            bell = page.get_by_role("link", name="Notifications, 1 unread")
            for _ in range(40):  # the worker thread delivers the in-app message
                if bell.count():
                    break
                time.sleep(0.25)
                page.reload()
            expect(bell).to_be_visible()
            bell.click()
            expect(page.get_by_text("Call Jordan Miles now")).to_be_visible()  # the saved template
            page.get_by_role("button", name="Mark all as read").click()
            expect(page.get_by_text("0 unread.")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "notifications.png"), full_page=True)
            page.get_by_role("link", name="Statistics").click()
            expect(page.get_by_role("img", name="Escalations by level: critical 1")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "statistics.png"), full_page=True)
        finally:
            browser.close()
