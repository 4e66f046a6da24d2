"""Every signed-in page is usable without a mouse or sight: one h1, form controls with labels
(a label for it, a wrapping label or an aria-label), charts with a text alternative, tables
with headers, and nothing fetched from another site."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.users import service as user_service
from tests.integration.escalation_support import OPEN_TUESDAY, make_world, staffed_document
from tests.integration.web_support import PASSWORD, sign_in

PAGES = [
    "/",
    "/leads",
    "/escalations",
    "/escalations/{escalation}",
    "/notifications",
    "/stats",
    "/model",
    "/flow",
    "/settings/escalation",
    "/settings/escalation/recipients",
    "/settings/escalation/recipients?edit=sam",
    "/settings/escalation/chains",
    "/settings/escalation/hours",
    "/settings/escalation/routing",
    "/settings/escalation/integrations",
    "/settings/escalation/templates",
]


class Audit(HTMLParser):
    """Collects what the checks need from one page."""

    def __init__(self) -> None:
        super().__init__()
        self.h1 = 0
        self.labels_for: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.open_labels = 0
        self.svgs: list[dict[str, str | None]] = []
        self.svg_titles = 0
        self.in_svg = False
        self.external: list[str] = []
        self.tables = 0
        self.table_headers = 0
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "h1":
            self.h1 += 1
        elif tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.labels_for.add(str(a["for"]))
        elif tag in ("input", "select", "textarea"):
            kind = a.get("type") or ""
            if kind not in ("hidden", "submit", "button"):
                self.controls.append(a | {"tag": tag, "wrapped": "1" if self.open_labels else None})
        elif tag == "svg":
            self.svgs.append(a)
            self.in_svg = True
        elif tag == "title" and self.in_svg:
            self.svg_titles += 1
        elif tag == "table":
            self.tables += 1
        elif tag == "th":
            self.table_headers += 1
        for name in ("src", "href", "action"):
            value = a.get(name) or ""
            if re.match(r"^(https?:)?//", value) and tag not in ("a",):
                self.external.append(f"{tag} {name}={value}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1
        elif tag == "svg":
            self.in_svg = False


@pytest.fixture
def admin(
    engine: Engine, settings: Settings, session_factory: sessionmaker[Session]
) -> tuple[TestClient, int]:
    world = make_world(session_factory, settings, OPEN_TUESDAY)
    world.save_settings(staffed_document())
    lead = world.add_lead("A11Y-1", probability=0.05)
    world.watch(lead)
    with unit_of_work(session_factory) as db_session:
        user_service.create_user(
            db_session=db_session,
            email="ada@riverside.example",
            password=PASSWORD,
            role="admin",
            person_key="sam",
            now=OPEN_TUESDAY,
        )
    client = TestClient(create_app(settings, engine=engine, clock=world.clock))
    assert sign_in(client, "ada@riverside.example").status_code == 200
    return client, world.escalation(lead).id


def test_every_page_is_labelled_and_self_contained(admin: tuple[TestClient, int]) -> None:
    client, escalation = admin
    problems: list[str] = []
    for path in [*PAGES, "/login"]:
        response = client.get(path.format(escalation=escalation))
        assert response.status_code == 200, path
        audit = Audit()
        audit.feed(response.text)
        where = f"{path}:"
        if audit.lang != "en":
            problems.append(f"{where} <html> has no lang")
        if audit.h1 != 1:
            problems.append(f"{where} {audit.h1} h1 headings (want 1)")
        for control in audit.controls:
            named = (
                control.get("aria-label")
                or control.get("wrapped")
                or (control.get("id") and control["id"] in audit.labels_for)
            )
            if not named:
                problems.append(f"{where} unlabelled {control['tag']} name={control.get('name')}")
        for svg in audit.svgs:
            if svg.get("role") != "img" or not (
                svg.get("aria-labelledby") or svg.get("aria-label")
            ):
                problems.append(f"{where} an svg without role=img and a label")
        if audit.svgs and audit.svg_titles < len(audit.svgs):
            problems.append(f"{where} an svg without a <title>")
        if audit.tables and not audit.table_headers:
            problems.append(f"{where} tables without header cells")
        problems += [f"{where} fetches from elsewhere: {e}" for e in audit.external]
    assert not problems, "\n".join(problems)
