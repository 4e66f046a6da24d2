"""Notification Settings > Lead Escalation in the browser: every sub-page saves a new version
with who and what, refuses bad input with a message that says what and where (and saves
nothing), refuses a stale form, and what is saved is what the next escalation does. Reps may
look but not edit."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.escalations import settings as settings_service
from leadwatch.escalations.document import EscalationSettings
from leadwatch.leads.models import Dealership
from leadwatch.notifications.channels.webhook import signing_secret
from leadwatch.users import service as user_service
from tests.integration.escalation_support import (
    OPEN_TUESDAY,
    World,
    make_world,
    staffed_document,
)
from tests.integration.sinks import HttpSink
from tests.integration.web_support import CSRF, PASSWORD, sign_in

VERSION = re.compile(r'name="base_version" value="(\d+)"')
BASE = "/settings/escalation"


@pytest.fixture
def world(session_factory: sessionmaker[Session], settings: Settings) -> World:
    world = make_world(session_factory, settings, OPEN_TUESDAY)
    with unit_of_work(session_factory) as db_session:
        for email, role in (
            ("sam@riverside.example", "manager"),
            ("dana@riverside.example", "rep"),
            ("ada@riverside.example", "admin"),
        ):
            user_service.create_user(
                db_session=db_session, email=email, password=PASSWORD, role=role, now=OPEN_TUESDAY
            )
    return world


def signed_in(engine: Engine, settings: Settings, world: World, email: str) -> TestClient:
    client = TestClient(create_app(settings, engine=engine, clock=world.clock))
    assert sign_in(client, email).status_code == 200
    return client


@pytest.fixture
def manager(engine: Engine, settings: Settings, world: World) -> Iterator[TestClient]:
    with signed_in(engine, settings, world, "sam@riverside.example") as client:
        yield client


def submit(client: TestClient, page: str, action: str, data: dict[str, Any]) -> Response:
    """Post a form the way a browser does: with the token and version the page carries."""
    shown = client.get(page).text
    token, version = CSRF.search(shown), VERSION.search(shown)
    assert token is not None and version is not None
    fields = {"csrf_token": token.group(1), "base_version": version.group(1), **data}
    return client.post(action, data=fields)


def document(factory: sessionmaker[Session]) -> EscalationSettings:
    with unit_of_work(factory) as db_session:
        return settings_service.load(db_session=db_session).document


def version(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as db_session:
        return settings_service.current_version(db_session=db_session)


# --- thresholds, behaviour, versions ------------------------------------------------------


def test_a_manager_changes_the_thresholds_as_a_new_version(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    page = manager.get(BASE)
    assert "Version 1, saved by test" in page.text and 'value="0.1"' in page.text
    saved = submit(
        manager, BASE, f"{BASE}/thresholds", {"critical": 0.12, "high": 0.25, "medium": 0.4}
    )
    assert saved.status_code == 200 and "Thresholds saved." in saved.text
    assert "Version 2, saved by sam@riverside.example" in saved.text
    assert "thresholds.critical: 0.1 -&gt; 0.12" in saved.text  # the history says what changed
    thresholds = document(session_factory).thresholds
    assert thresholds is not None and thresholds.critical == 0.12


def test_thresholds_out_of_order_are_refused_and_nothing_is_saved(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    refused = submit(
        manager, BASE, f"{BASE}/thresholds", {"critical": 0.5, "high": 0.2, "medium": 0.3}
    )
    assert refused.status_code == 422 and "critical &lt; high &lt; medium" in refused.text
    assert "Version 1," in refused.text and version(session_factory) == 1


def test_a_form_opened_before_another_save_is_refused_not_merged(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    token = CSRF.search(manager.get(BASE).text)
    assert token is not None
    stale = {"csrf_token": token.group(1), "base_version": "1"}
    first = manager.post(
        f"{BASE}/thresholds", data={**stale, "critical": 0.11, "high": 0.2, "medium": 0.3}
    )
    assert first.status_code == 200
    second = manager.post(
        f"{BASE}/thresholds", data={**stale, "critical": 0.05, "high": 0.2, "medium": 0.3}
    )
    assert (
        second.status_code == 409 and "Version 2 was saved by sam@riverside.example" in second.text
    )
    assert version(session_factory) == 2
    assert document(session_factory).thresholds.critical == 0.11  # type: ignore[union-attr]


def test_behaviour_settings_are_saved_and_an_unchanged_form_makes_no_version(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    fields = {"horizon_days": 14, "claim_timeout_minutes": 45, "watch_hours": 48}
    saved = submit(manager, BASE, f"{BASE}/general", {**fields, "escalate_low": "true"})
    assert "Settings saved." in saved.text
    doc = document(session_factory)
    assert (doc.horizon_days, doc.claim_timeout_minutes, doc.watch_hours) == (14, 45, 48)
    assert doc.escalate_low
    again = submit(manager, BASE, f"{BASE}/general", {**fields, "escalate_low": "true"})
    assert "Nothing changed" in again.text and version(session_factory) == 2


# --- recipients ---------------------------------------------------------------------------


def test_recipients_are_added_edited_and_removed(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    page = f"{BASE}/recipients"
    added = submit(
        manager,
        page,
        f"{BASE}/people",
        {"key": "lee", "name": "Lee Chen", "role": "bdc", "email": "lee@riverside.example"},
    )
    assert added.status_code == 200 and "Recipient added." in added.text
    assert "<td>Lee Chen</td><td>bdc</td>" in added.text
    twice = submit(manager, page, f"{BASE}/people", {"key": "lee", "name": "Lee Two"})
    assert twice.status_code == 422 and "is used twice" in twice.text
    bad = submit(manager, page, f"{BASE}/people", {"key": "kim", "name": "Kim", "email": "nope"})
    assert bad.status_code == 422 and "people.5.email: value is not a valid email" in bad.text

    edit = manager.get(page, params={"edit": "lee"})
    assert 'value="lee@riverside.example"' in edit.text and "Save recipient" in edit.text
    edited = submit(
        manager,
        page,
        f"{BASE}/people",
        {
            "original_key": "lee",
            "key": "lee",
            "name": "Lee Chen",
            "role": "bdc",
            "email": "lee.chen@riverside.example",
            "phone": "+15550100009",
            "after_hours": "true",
            "active": "true",
        },
    )
    assert "Recipient saved." in edited.text
    doc = document(session_factory)
    lee = next(p for p in doc.people if p.key == "lee")
    assert (lee.email, lee.phone) == ("lee.chen@riverside.example", "+15550100009")
    assert "person:lee" in doc.after_hours_recipients
    assert any("people[lee].email: changed" in c for c in _changes(session_factory))

    removed = submit(manager, page, f"{BASE}/people/remove", {"key": "lee"})
    assert "Recipient removed." in removed.text
    doc = document(session_factory)
    assert (
        all(p.key != "lee" for p in doc.people) and "person:lee" not in doc.after_hours_recipients
    )


def test_a_recipient_a_chain_names_cannot_be_removed(
    manager: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    policies = EscalationSettings().model_dump(mode="json")["policies"]
    policies["critical"]["steps"][0]["recipients"] = ["person:gina"]
    world.save_settings(staffed_document(policies=policies))
    refused = submit(manager, f"{BASE}/recipients", f"{BASE}/people/remove", {"key": "gina"})
    assert refused.status_code == 422 and "no person with key &#39;gina&#39;" in refused.text
    assert any(p.key == "gina" for p in document(session_factory).people)


# --- chains, levels, after hours, fallback --------------------------------------------------


def test_a_chain_is_edited_step_by_step_and_the_next_escalation_follows_it(
    manager: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    page = f"{BASE}/chains"
    shown = manager.get(page).text
    assert "Save chain critical" in shown and 'value="10.0"' in shown
    saved = submit(
        manager,
        page,
        f"{BASE}/chains",
        {
            "name": "critical",
            # row 0 kept with new recipients, row 1 removed, the blank row becomes step 2
            "delay": ["0", "10", "20"],
            "recipients": ["person:gina", "general_manager", "bdc"],
            "channels": ["0:email", "1:email", "2:in_app", "2:email"],
            "remove": ["1"],
            "repeat": "2",
            "repeat_after_minutes": "45",
        },
    )
    assert saved.status_code == 200 and "Chain saved." in saved.text
    critical = document(session_factory).policies["critical"]
    assert [(s.delay_minutes, s.recipients, s.channels) for s in critical.steps] == [
        (0.0, ["person:gina"], ["email"]),
        (20.0, ["bdc"], ["in_app", "email"]),
    ]
    assert (critical.repeat, critical.repeat_after_minutes) == (2, 45.0)

    lead = world.add_lead("CH-1", probability=0.05)
    world.watch(lead)
    sent = world.messages(world.escalation(lead).id)
    assert [(m.channel, m.address) for m in sent] == [("email", "gina@riverside.example")]


def test_bad_chains_are_refused_with_what_and_where(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    page = f"{BASE}/chains"
    no_channel = submit(
        manager, page, f"{BASE}/chains", {"name": "high", "delay": ["5"], "recipients": ["rep"]}
    )
    assert no_channel.status_code == 422 and "policies.high.steps.0.channels" in no_channel.text
    negative = submit(
        manager,
        page,
        f"{BASE}/chains",
        {"name": "high", "delay": ["-5"], "recipients": ["rep"], "channels": ["0:sms"]},
    )
    assert negative.status_code == 422 and "step 1: the delay cannot be negative" in negative.text
    unknown = submit(
        manager,
        page,
        f"{BASE}/chains",
        {"name": "high", "delay": ["5"], "recipients": ["person:nobody"], "channels": ["0:sms"]},
    )
    assert unknown.status_code == 422 and "no person with key" in unknown.text
    in_use = submit(manager, page, f"{BASE}/chains/remove", {"name": "high"})
    assert in_use.status_code == 422 and "still used by high" in in_use.text
    assert version(session_factory) == 1


def test_a_new_chain_is_given_to_a_level_with_after_hours_and_fallback_rules(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    page = f"{BASE}/chains"
    created = submit(
        manager,
        page,
        f"{BASE}/chains",
        {
            "new": "true",
            "name": "vip",
            "delay": ["0"],
            "recipients": ["sales_manager, general_manager"],
            "channels": ["0:sms", "0:email"],
        },
    )
    assert "Chain saved." in created.text
    levels = {
        f"{level}_policy": "vip" if level == "high" else level
        for level in ("critical", "high", "medium", "low")
    } | {f"{level}_after_hours": "hold" for level in ("critical", "high", "medium", "low")}
    saved = submit(
        manager,
        page,
        f"{BASE}/levels",
        levels
        | {
            "high_after_hours": "route",
            "after_hours_recipients": "person:sam, bdc",
            "fallback_recipients": "general_manager",
            "channels": ["after_hours:sms", "fallback:email", "fallback:in_app"],
        },
    )
    assert saved.status_code == 200 and "Levels and after-hours rules saved." in saved.text
    doc = document(session_factory)
    assert doc.level_policies.high == "vip" and doc.after_hours.high == "route"
    assert doc.after_hours.critical == "hold"
    assert doc.after_hours_recipients == ["person:sam", "bdc"]
    assert doc.after_hours_channels == ["sms"]
    assert (doc.fallback_recipients, doc.fallback_channels) == (
        ["general_manager"],
        ["email", "in_app"],
    )
    duplicate = submit(
        manager,
        page,
        f"{BASE}/chains",
        {"new": "true", "name": "vip", "recipients": ["rep"], "channels": ["0:sms"]},
    )
    assert duplicate.status_code == 422 and "exists already" in duplicate.text


# --- working hours and time zones -----------------------------------------------------------


def test_working_hours_and_holidays_are_saved_and_bad_ones_refused(
    manager: TestClient, session_factory: sessionmaker[Session]
) -> None:
    page = f"{BASE}/hours"
    days = {"mon": "08:00-12:00, 13:00-19:00", "tue": "09:00-20:00", "sat": "10:00-16:00"}
    saved = submit(manager, page, f"{BASE}/hours", days | {"holidays": "2025-12-25\n2025-07-04"})
    assert "Working hours saved." in saved.text
    default = document(session_factory).hours.default
    assert default.weekly["mon"] == ["08:00-12:00", "13:00-19:00"] and default.weekly["sun"] == []
    assert [d.isoformat() for d in default.holidays] == ["2025-07-04", "2025-12-25"]

    bad_range = submit(manager, page, f"{BASE}/hours", {"mon": "9am-5pm"})
    assert bad_range.status_code == 422 and "mon" in bad_range.text
    bad_day = submit(manager, page, f"{BASE}/hours", {"mon": "09:00-17:00", "holidays": "Xmas"})
    assert bad_day.status_code == 422 and "holiday &#39;Xmas&#39; is not a date" in bad_day.text

    own = submit(
        manager, page, f"{BASE}/hours", {"dealership": "Riverside Motors", "sun": "11:00-15:00"}
    )
    assert "Working hours saved." in own.text
    stores = document(session_factory).hours.dealerships
    assert stores["Riverside Motors"].weekly["sun"] == ["11:00-15:00"]
    submit(
        manager, page, f"{BASE}/hours", {"dealership": "Riverside Motors", "use_default": "true"}
    )
    assert "Riverside Motors" not in document(session_factory).hours.dealerships


def test_a_dealership_time_zone_is_changed_and_recorded_in_the_history(
    manager: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    world.add_lead("TZ-1", probability=0.5)  # creates the dealership
    page = f"{BASE}/hours"
    assert 'value="America/Chicago"' in manager.get(page).text
    bad = submit(
        manager,
        page,
        f"{BASE}/timezone",
        {"dealership": "Riverside Motors", "timezone": "Mars/Base"},
    )
    assert bad.status_code == 422 and "not an IANA time zone" in bad.text
    saved = submit(
        manager,
        page,
        f"{BASE}/timezone",
        {"dealership": "Riverside Motors", "timezone": "America/Denver"},
    )
    assert "Time zone saved." in saved.text
    with unit_of_work(session_factory) as db_session:
        zone = db_session.scalar(
            select(Dealership.timezone).where(Dealership.name == "Riverside Motors")
        )
    assert zone == "America/Denver"
    assert "dealerships[Riverside Motors].timezone: America/Chicago -> America/Denver" in (
        _changes(session_factory)
    )


# --- routing --------------------------------------------------------------------------------


def test_routing_rules_are_added_ordered_removed_and_route_leads(
    manager: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    page = f"{BASE}/routing"
    added = submit(
        manager,
        page,
        f"{BASE}/routes",
        {"name": "High value", "policy": "critical", "min_price": "$60,000", "levels": ["high"]},
    )
    assert added.status_code == 200 and "Routing rule saved." in added.text
    assert "price from $60,000" in added.text
    submit(
        manager,
        page,
        f"{BASE}/routes",
        {"name": "Facebook", "policy": "low", "sources": "Facebook, Instagram"},
    )
    bad = submit(
        manager, page, f"{BASE}/routes", {"name": "X", "policy": "low", "max_price": "lots"}
    )
    assert bad.status_code == 422 and "maximum price &#39;lots&#39; is not a number" in bad.text
    backwards = submit(
        manager,
        page,
        f"{BASE}/routes",
        {"name": "Y", "policy": "low", "min_price": "9", "max_price": "5"},
    )
    assert backwards.status_code == 422 and "above max_price" in backwards.text

    moved = submit(manager, page, f"{BASE}/routes/change", {"name": "Facebook", "action": "up"})
    assert "Routing rule saved." in moved.text
    assert [r.name for r in document(session_factory).routes] == ["Facebook", "High value"]

    expensive = world.add_lead("RT-1", probability=0.15, price=72_000)  # high level
    cheap = world.add_lead("RT-2", probability=0.15, price=22_000)
    world.watch(expensive, cheap)
    assert world.escalation(expensive).plan["policy"]["name"] == "critical"
    assert world.escalation(cheap).plan["policy"]["name"] == "high"

    submit(manager, page, f"{BASE}/routes/change", {"name": "High value", "action": "remove"})
    assert [r.name for r in document(session_factory).routes] == ["Facebook"]


# --- webhooks, channels, templates ---------------------------------------------------------


@pytest.fixture
def open_settings(settings: Settings) -> Settings:
    """Loopback receivers over plain HTTP are allowed here, as in the delivery tests."""
    return settings.model_copy(
        update={
            "allow_private_urls": True,
            "allow_http_urls": True,
            "smtp_host": "mail.example.com",
            "smtp_password": "hunter2-smtp",
        }
    )


def test_integrations_send_a_signed_test_event_and_never_show_secrets(
    engine: Engine, open_settings: Settings, world: World
) -> None:
    sink = HttpSink()
    try:
        with signed_in(engine, open_settings, world, "sam@riverside.example") as manager:
            page = f"{BASE}/integrations"
            shown = manager.get(page)
            assert shown.status_code == 200 and "hunter2-smtp" not in shown.text
            assert "mail.example.com" in shown.text and "password: ********" in shown.text
            result = submit(manager, page, f"{BASE}/webhook-test", {"url": f"{sink.url}/hook"})
            assert "Test event to http://127.0.0.1/…: sent (HTTP 200)" in result.text
            assert len(sink.received) == 1
            hit = sink.received[0]
            secret = signing_secret(open_settings)
            expected = hmac.new(
                secret,
                hit.headers["x-leadwatch-timestamp"].encode() + b"." + hit.body,
                hashlib.sha256,
            ).hexdigest()
            assert hit.headers["x-leadwatch-signature"] == f"v1={expected}"
            assert secret.hex() not in result.text  # masked for managers...
            refused = submit(manager, page, f"{BASE}/webhook-secret", {})
            assert refused.status_code == 403
        with signed_in(engine, open_settings, world, "ada@riverside.example") as admin:
            revealed = submit(admin, page, f"{BASE}/webhook-secret", {})
            assert secret.hex() in revealed.text  # ...and shown to an admin who asks
    finally:
        sink.close()


def test_last_webhook_deliveries_are_listed_with_masked_urls(
    manager: TestClient, world: World
) -> None:
    people = staffed_document()["people"]
    people[1]["webhook"] = "https://crm.example.com/hooks/secret-path-123"
    policies = EscalationSettings().model_dump(mode="json")["policies"]
    policies["critical"]["steps"][0]["channels"] = ["webhook"]
    policies["critical"]["steps"][0]["recipients"] = ["person:sam"]
    world.save_settings(staffed_document(people=people, policies=policies))
    lead = world.add_lead("WH-1", probability=0.05)
    world.watch(lead)
    page = manager.get(f"{BASE}/integrations").text
    assert "Sam Patel (sam)" in page and "https://crm.example.com/…" in page
    assert f"#{lead}" in page and "secret-path-123" not in page


def test_a_template_is_previewed_saved_used_and_reset(
    manager: TestClient, world: World, session_factory: sessionmaker[Session]
) -> None:
    page = f"{BASE}/templates?name=in_app.subject.j2"
    opened = manager.get(page)
    assert opened.status_code == 200 and "Maria Gonzalez" in opened.text  # the sample lead
    text = "Call {{ customer }} now ({{ chance }})"
    preview = submit(
        manager,
        page,
        f"{BASE}/templates/preview?fragment=true",
        {"name": "in_app.subject.j2", "source": text},
    )
    assert preview.text.lstrip().startswith('<div id="preview"')
    assert "Call Maria Gonzalez now (8% chance of a sale in 14 days)" in preview.text
    broken = submit(
        manager, page, f"{BASE}/templates", {"name": "in_app.subject.j2", "source": "{{ custmer }}"}
    )
    assert broken.status_code == 422 and "custmer" in broken.text
    assert "{{ custmer }}</textarea>" in broken.text  # what was typed is kept
    saved = submit(
        manager, page, f"{BASE}/templates", {"name": "in_app.subject.j2", "source": text}
    )
    assert "Template saved." in saved.text and "(saved)" in saved.text
    assert "templates[in_app.subject.j2]: added" in _changes(session_factory)

    lead = world.add_lead("TP-1", probability=0.05)
    world.watch(lead)
    in_app = [m for m in world.messages(world.escalation(lead).id) if m.channel == "in_app"]
    assert in_app and in_app[0].subject.startswith("Call Customer TP-1 now")

    reset = submit(
        manager, page, f"{BASE}/templates", {"name": "in_app.subject.j2", "reset": "true"}
    )
    assert "Template reset to the default." in reset.text
    assert document(session_factory).templates == {}
    bad_name = submit(manager, page, f"{BASE}/templates", {"name": "../etc.j2", "source": "x"})
    assert bad_name.status_code == 422


# --- roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "action", "data"),
    [
        (BASE, f"{BASE}/thresholds", {"critical": 0.12, "high": 0.25, "medium": 0.4}),
        (f"{BASE}/recipients", f"{BASE}/people", {"key": "x", "name": "X"}),
        (f"{BASE}/chains", f"{BASE}/chains/remove", {"name": "low"}),
        (f"{BASE}/hours", f"{BASE}/hours", {"mon": "09:00-17:00"}),
        (f"{BASE}/routing", f"{BASE}/routes", {"name": "X", "policy": "low"}),
        (f"{BASE}/templates", f"{BASE}/templates", {"name": "sms.text.j2", "source": "x"}),
        (f"{BASE}/integrations", f"{BASE}/webhook-test", {"url": "https://example.com"}),
    ],
)
def test_a_rep_may_look_but_not_edit(
    engine: Engine,
    settings: Settings,
    world: World,
    session_factory: sessionmaker[Session],
    page: str,
    action: str,
    data: dict[str, Any],
) -> None:
    with signed_in(engine, settings, world, "dana@riverside.example") as rep:
        shown = rep.get(page)
        assert shown.status_code == 200 and "You can read these settings" in shown.text
        assert not re.search(r"<button type=\"submit\">Save", shown.text)
        token = CSRF.search(shown.text)
        assert token is not None
        fields = {"csrf_token": token.group(1), "base_version": "1", **data}
        assert rep.post(action, data=fields).status_code == 403
    assert version(session_factory) == 1


def test_forms_without_the_token_are_refused(manager: TestClient) -> None:
    refused = manager.post(
        f"{BASE}/routes",
        data={"csrf_token": "forged", "base_version": "1", "name": "X", "policy": "low"},
    )
    assert refused.status_code == 403


def _changes(factory: sessionmaker[Session]) -> list[str]:
    with unit_of_work(factory) as db_session:
        return [c for row in settings_service.history(db_session=db_session) for c in row.changes]


def test_an_admin_connects_email_and_a_running_worker_sends_with_it(
    engine: Engine, settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    """Saved on the page, the SMTP settings reach a dispatcher that started without email;
    the password is stored encrypted, shown masked, and never written to the history."""
    from leadwatch.notifications.jobs import build_dispatcher
    from leadwatch.notifications.models import ChannelCredentials
    from tests.integration.sinks import SmtpSink

    smtp = SmtpSink().start()
    dispatcher = build_dispatcher(
        settings, session_factory, clock=world.clock, credentials_every=0.0
    )
    try:
        assert "email" in dispatcher.unconfigured  # nothing in the environment
        page = f"{BASE}/integrations"
        with signed_in(engine, settings, world, "sam@riverside.example") as manager:
            assert "Save email settings" not in manager.get(page).text
            refused = submit(manager, page, f"{BASE}/channels/email", {"smtp_host": "x"})
            assert refused.status_code == 403
        with signed_in(engine, settings, world, "ada@riverside.example") as admin:
            bad = submit(admin, page, f"{BASE}/channels/email", {"smtp_port": "smtp"})
            assert bad.status_code == 422 and "smtp_port" in bad.text
            fields = {
                "smtp_host": "127.0.0.1",
                "smtp_port": str(smtp.port),
                "smtp_security": "none",
                "smtp_password": "s3cret-pw",
                "smtp_from": "LeadWatch <alerts@riverside.example>",
            }
            saved = submit(admin, page, f"{BASE}/channels/email", fields)
            assert saved.status_code == 200 and "Channel credentials saved." in saved.text
            assert "s3cret-pw" not in saved.text and "password: ********" in saved.text
            again = submit(admin, page, f"{BASE}/channels/email", fields | {"smtp_password": ""})
            assert "Nothing changed" in again.text  # an empty password keeps the saved one
        with unit_of_work(session_factory) as db_session:
            row = db_session.get(ChannelCredentials, "email")
            assert row is not None and row.values["smtp_host"] == "127.0.0.1"
            assert row.secrets and "s3cret-pw" not in row.secrets  # encrypted at rest
        history = _changes(session_factory)
        assert "channels.email.smtp_password: changed" in history
        assert not any("s3cret-pw" in change for change in history)

        lead = world.add_lead("EM-1", probability=0.05)  # critical: email among its channels
        world.watch(lead)
        counts = dispatcher.run_once()
        assert "email" not in dispatcher.unconfigured
        sent = [(m.channel, m.status, m.last_error) for m in world.messages()]
        assert counts.sent >= 2, sent
        assert sorted(m["To"] for m in smtp.messages) == [
            "Dana Reyes <dana@riverside.example>",
            "Sam Patel <sam@riverside.example>",
        ]
        assert smtp.messages[0]["From"] == "LeadWatch <alerts@riverside.example>"

        with signed_in(engine, settings, world, "ada@riverside.example") as admin:
            submit(admin, page, f"{BASE}/channels/email", {"clear": "true"})
        dispatcher.run_once()
        assert "email" in dispatcher.unconfigured  # back to the environment's: none
    finally:
        dispatcher.close()
        smtp.stop()


def test_secrets_saved_under_another_key_are_refused_not_used(
    settings: Settings, world: World, session_factory: sessionmaker[Session]
) -> None:
    from pydantic import SecretStr

    from leadwatch.notifications import credentials
    from leadwatch.notifications.jobs import build_dispatcher

    with unit_of_work(session_factory) as db_session:
        credentials.save(
            db_session=db_session,
            settings=settings,
            channel="email",
            values={"smtp_host": "127.0.0.1", "smtp_password": "pw"},
            author="ada@riverside.example",
            now=OPEN_TUESDAY,
        )
    moved = settings.model_copy(update={"secret_key": SecretStr("another installation")})
    with (
        unit_of_work(session_factory) as db_session,
        pytest.raises(credentials.CredentialsError, match="save them again"),
    ):
        credentials.in_force(db_session=db_session, settings=moved)
    dispatcher = build_dispatcher(moved, session_factory, clock=world.clock)
    try:  # the worker keeps going on the environment's settings
        assert "email" in dispatcher.unconfigured
        dispatcher.run_once()
    finally:
        dispatcher.close()
