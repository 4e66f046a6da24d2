"""The delivery API on a real database (SQLite and PostgreSQL): the outbox with masked secret
addresses, attempts, re-sending dead letters, the in-app inbox, channel status, webhook test
events against a real loopback server, template previews, and Twilio's signed status callback
that turns a failed SMS into a dead letter and, when its whole step died, into a fallback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.app import create_app
from leadwatch.auth import service as auth_service
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.notifications.channels import webhook
from leadwatch.notifications.channels.in_app import InAppChannel
from leadwatch.notifications.channels.sms import STATUS_CALLBACK_PATH, twilio_signature
from leadwatch.notifications.dispatcher import Dispatcher
from leadwatch.notifications.models import OutboxMessage
from tests.integration.escalation_support import OPEN_TUESDAY, Clock, make_world
from tests.integration.sinks import Answer, HttpSink
from tests.integration.test_dispatcher import add_messages

NOW = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
SLACK = "https://hooks.slack.com/services/T/B/secret"
HOOK = "https://crm.example.com/hooks/tok-secret?key=abc"
PUBLIC = "https://leadwatch.example.com"
TWILIO_TOKEN = "twilio-auth-token-456"
SID = "SM" + "ab" * 16
FROM = "+15550009999"
LAB = {"allow_private_urls": True, "allow_http_urls": True}
SMTP = {"smtp_host": "smtp.example.com", "smtp_port": 465, "smtp_security": "tls"}
SMTP |= {"smtp_username": "alerts", "smtp_password": SecretStr("smtp-password-123")}
TWILIO = {
    "twilio_account_sid": "AC123",
    "twilio_auth_token": SecretStr(TWILIO_TOKEN),
    "twilio_from_number": FROM,
    "public_url": PUBLIC,
}
MASKED_SLACK, MASKED_HOOK = "https://hooks.slack.com/…", "https://crm.example.com/…"
OpenClient = Callable[..., TestClient]


@pytest.fixture
def open_client(engine: Engine, settings: Settings) -> Iterator[OpenClient]:
    """Opens an authenticated client on an app with the given (or the default) settings."""
    with ExitStack() as stack:

        def open_one(custom: Settings | None = None, clock: Any = None) -> TestClient:
            app = create_app(custom or settings, engine=engine, clock=clock or Clock(NOW))
            with unit_of_work(app.state.session_factory) as db_session:
                _, token = auth_service.create_token(db_session=db_session, name="ops", now=NOW)
            client = stack.enter_context(TestClient(app))
            client.headers["Authorization"] = f"Bearer {token}"
            return client

        yield open_one


@pytest.fixture
def client(open_client: OpenClient) -> TestClient:
    return open_client()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    server = HttpSink()
    yield server
    server.close()


def _set(factory: sessionmaker[Session], ids: list[int], **values: Any) -> None:
    with unit_of_work(factory) as db_session:
        db_session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(values))


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _row(factory: sessionmaker[Session], message_id: int) -> OutboxMessage:
    with unit_of_work(factory) as db_session:
        row = db_session.get(OutboxMessage, message_id)
        assert row is not None
        return row


def test_every_route_but_the_twilio_callback_needs_a_token(client: TestClient) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/outbox", {}),
        ("GET", "/api/v1/outbox/summary", {}),
        ("GET", "/api/v1/outbox/1", {}),
        ("POST", "/api/v1/outbox/resend", {"json": {"all_dead": True}}),
        ("GET", "/api/v1/notifications/inbox", {"params": {"person": "dana"}}),
        ("POST", "/api/v1/notifications/inbox/read", {"json": {"person": "dana"}}),
        ("GET", "/api/v1/notifications/channels", {}),
        ("POST", "/api/v1/notifications/webhook-test", {"json": {"url": "https://x.example"}}),
        ("GET", "/api/v1/notifications/templates/preview", {"params": {"channel": "sms"}}),
    ]
    with TestClient(client.app) as anonymous:
        for method, path, kwargs in calls:
            response = anonymous.request(method, path, **kwargs)
            assert response.status_code == 401, (method, path, response.text)
            assert "missing API token" in response.json()["detail"]
        # The callback is not behind the token: with SMS unconfigured it is simply not there.
        callback = anonymous.post(STATUS_CALLBACK_PATH, data={"MessageSid": SID})
        assert callback.status_code == 404 and "SMS is not configured" in callback.text


def test_outbox_filters_counts_and_masks_secret_addresses(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    [mail] = add_messages(session_factory, 1, address="dana@example.com")
    [sms] = add_messages(session_factory, 1, channel="sms", address="+15550100001")
    [slack] = add_messages(session_factory, 1, channel="slack", address=SLACK)
    [hook] = add_messages(session_factory, 1, channel="webhook", address=HOOK)
    _set(session_factory, [slack], status="dead", dead_at=NOW, last_error="HTTP 404 Not Found")
    _set(session_factory, [mail], status="sent", sent_at=NOW)

    def listed(**params: str) -> list[dict[str, Any]]:
        response = client.get("/api/v1/outbox", params=params)
        assert response.status_code == 200, response.text
        assert "T/B/secret" not in response.text and "tok-secret" not in response.text
        return list(response.json())

    everything = listed()
    assert [m["id"] for m in everything] == [hook, slack, sms, mail]  # newest first
    shown = [m["address"] for m in everything]  # Slack and webhook URLs are credentials
    assert shown == [MASKED_HOOK, MASKED_SLACK, "+15550100001", "dana@example.com"]
    assert [m["id"] for m in listed(status="dead")] == [slack]
    assert [m["id"] for m in listed(channel="sms")] == [sms]
    assert [m["id"] for m in listed(status="pending", channel="webhook")] == [hook]
    assert listed(status="sent", channel="sms") == []
    assert [m["id"] for m in listed(limit="1", offset="1")] == [slack]
    assert client.get("/api/v1/outbox", params={"status": "lost"}).status_code == 422
    for message_id in (slack, hook):
        detail = client.get(f"/api/v1/outbox/{message_id}")
        assert detail.status_code == 200 and "secret" not in detail.json()["address"]
        assert "T/B/secret" not in detail.text and "tok-secret" not in detail.text
    assert _ok(client.get("/api/v1/outbox/summary")) == {"pending": 2, "sent": 1, "dead": 1}


def test_detail_lists_every_attempt_of_a_real_webhook_delivery(
    client: TestClient, session_factory: sessionmaker[Session], settings: Settings, sink: HttpSink
) -> None:
    answers: list[Answer] = [(503, {}, b"busy, try later"), (200, {}, b"accepted")]
    sink.answer = lambda _r: answers.pop(0)
    address = f"{sink.url}/hooks/path-secret"
    [message_id] = add_messages(session_factory, 1, channel="webhook", address=address)
    clock, channel = (
        Clock(NOW),
        webhook.WebhookChannel.from_settings(settings.model_copy(update=LAB)),
    )
    worker = Dispatcher(session_factory=session_factory, channels={"webhook": channel}, clock=clock)
    try:
        assert worker.run_once().retried == 1
        clock.advance(seconds=31)  # the first backoff is at most retry_seconds (30)
        assert worker.run_once().sent == 1
    finally:
        worker.close()
    shown = _ok(client.get(f"/api/v1/outbox/{message_id}"))
    assert (shown["status"], shown["attempts"], shown["body"]) == ("sent", 2, "lead 0 needs you")
    assert shown["address"] == "http://127.0.0.1/…" and "path-secret" not in json.dumps(shown)
    history = shown["history"]
    assert [(a["outcome"], a["code"]) for a in history] == [("retry", "503"), ("sent", "200")]
    assert history[0]["detail"] == "HTTP 503 Service Unavailable: busy, try later"
    assert history[1]["detail"] == "HTTP 200 OK: accepted"
    assert sink.keys() == [shown["idempotency_key"]] * 2
    missing = client.get("/api/v1/outbox/999999")
    assert missing.status_code == 404 and "no outbox message 999999" in missing.text


def test_resend_requeues_dead_letters_with_their_keys(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    first, second, alive = add_messages(session_factory, 3, at=NOW - timedelta(days=2))
    _set(session_factory, [first, second], status="dead", dead_at=NOW - timedelta(days=1))
    keys = {i: _row(session_factory, i).idempotency_key for i in (first, second)}
    for body in ({}, {"all_dead": False}):
        refused = client.post("/api/v1/outbox/resend", json=body)
        assert refused.status_code == 422 and "all_dead" in refused.text
    assert client.post("/api/v1/outbox/resend", json={"ids": [alive]}).json() == {"requeued": 0}
    assert client.post("/api/v1/outbox/resend", json={"ids": [first]}).json() == {"requeued": 1}
    row = _row(session_factory, first)
    assert (row.status, row.dead_at, row.idempotency_key) == ("pending", None, keys[first])
    assert (row.next_attempt_at, row.expires_at) == (NOW, NOW + timedelta(hours=24))
    assert _row(session_factory, second).status == "dead"
    again = client.post("/api/v1/outbox/resend", json={"all_dead": True})
    assert again.json() == {"requeued": 1}
    assert _row(session_factory, second).idempotency_key == keys[second]
    assert client.get("/api/v1/outbox/summary").json() == {"pending": 3}
    pending = client.get("/api/v1/outbox", params={"status": "pending"}).json()
    assert {m["id"] for m in pending} == {first, second, alive}


def test_inbox_counts_filters_and_marks_read(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    add_messages(session_factory, 3, channel="in_app", address="dana")
    add_messages(session_factory, 1, channel="in_app", address="sam", recipient="sam")
    worker = Dispatcher(
        session_factory=session_factory,
        channels={"in_app": InAppChannel(session_factory)},
        clock=Clock(NOW),
        threads=1,  # one at a time: the inbox order follows the outbox order
    )
    try:
        assert worker.run_once().sent == 4
    finally:
        worker.close()

    def inbox(person: str, **params: str) -> Any:
        return _ok(client.get("/api/v1/notifications/inbox", params={"person": person, **params}))

    dana = inbox("dana")
    assert (dana["person"], dana["unread"]) == ("dana", 3)
    assert [i["title"] for i in dana["items"]] == [f"[HIGH] lead {n}" for n in (2, 1, 0)]
    assert [i["data"]["lead_id"] for i in dana["items"]] == [2, 1, 0]
    ids = [i["id"] for i in dana["items"]]
    sam_item = inbox("sam")["items"][0]["id"]

    def mark(body: dict[str, Any]) -> int:
        return int(_ok(client.post("/api/v1/notifications/inbox/read", json=body))["marked"])

    assert mark({"person": "dana", "ids": [ids[0], sam_item]}) == 1  # not Sam's item
    unread = inbox("dana", unread="true")
    assert unread["unread"] == 2 and [i["id"] for i in unread["items"]] == ids[1:]
    read = inbox("dana")["items"][0]
    assert datetime.fromisoformat(read["read_at"]) == NOW
    assert mark({"person": "dana"}) == 2
    assert inbox("dana", unread="true") == {"person": "dana", "unread": 0, "items": []}
    assert inbox("sam")["unread"] == 1
    assert client.get("/api/v1/notifications/inbox").status_code == 422


def test_channels_show_configuration_but_never_secrets(
    open_client: OpenClient, settings: Settings
) -> None:
    bare = open_client().get("/api/v1/notifications/channels").json()
    assert (bare["email"]["configured"], bare["email"]["password"]) == (False, None)
    assert (bare["sms"]["configured"], bare["sms"]["auth_token"]) == (False, None)
    configured = settings.model_copy(update=SMTP | TWILIO)
    response = open_client(configured).get("/api/v1/notifications/channels")
    shown = _ok(response)
    email, sms = shown["email"], shown["sms"]
    assert (email["configured"], email["host"], email["port"]) == (True, "smtp.example.com", 465)
    assert (email["security"], email["username"]) == ("tls", "alerts")
    assert (sms["configured"], sms["account_sid"], sms["from_number"]) == (True, "AC123", FROM)
    masked = (email["password"], sms["auth_token"], shown["webhook"]["signing_secret"])
    assert masked == ("********",) * 3
    for secret in ("smtp-password-123", TWILIO_TOKEN, webhook.signing_secret_hex(configured)):
        assert secret not in response.text


def test_webhook_test_sends_a_signed_event_the_receiver_can_verify(
    open_client: OpenClient, settings: Settings, sink: HttpSink
) -> None:
    lab = open_client(settings.model_copy(update=LAB))
    sent = _ok(lab.post("/api/v1/notifications/webhook-test", json={"url": f"{sink.url}/receiver"}))
    assert sent == {"outcome": "sent", "code": "200", "detail": "HTTP 200 OK: ok"}
    [received] = sink.received
    event = json.loads(received.body)
    assert (received.path, event["type"]) == ("/receiver", "test")
    assert received.headers["idempotency-key"] == event["id"]
    head = received.headers
    stamp, signed = head["x-leadwatch-timestamp"], head["x-leadwatch-signature"]
    for secret, valid in ((webhook.signing_secret(settings), True), (b"wrong", False)):
        ok = webhook.verify_signature(secret, stamp, received.body, signed, now=float(stamp))
        assert ok is valid
    # With the default settings a loopback receiver is refused before anything is sent.
    url = sink.url.replace("http://", "https://") + "/receiver"
    refused = open_client().post("/api/v1/notifications/webhook-test", json={"url": url}).json()
    assert (refused["outcome"], refused["code"]) == ("permanent", None)
    assert "(loopback)" in refused["detail"] and "ALLOW_PRIVATE_URLS" in refused["detail"]
    assert len(sink.received) == 1


def test_template_preview(client: TestClient) -> None:
    preview = "/api/v1/notifications/templates/preview"
    shown = _ok(client.get(preview, params={"channel": "email", "level": "critical"}))
    assert shown["subject"].startswith("[CRITICAL] Maria Gonzalez waiting 47 min")
    assert "https://leadwatch.example.com/claim/sample-token" in shown["text"]
    assert shown["html"].startswith("<!DOCTYPE html>") and shown["fallbacks"] == []
    for params in ({"channel": "fax"}, {"channel": "email", "level": "urgent"}, {}):
        bad = client.get(preview, params=params)
        assert bad.status_code == 422, params


# --- Twilio's status callback -----------------------------------------------------------------


def _receipt(status: str, **extra: str) -> tuple[dict[str, str], dict[str, str]]:
    form = {"MessageSid": SID, "MessageStatus": status, "To": "+15550100001"} | extra
    signature = twilio_signature(TWILIO_TOKEN, PUBLIC + STATUS_CALLBACK_PATH, form)
    return form, {"X-Twilio-Signature": signature}


def _receipts(client: TestClient, message_id: int) -> list[dict[str, Any]]:
    history = client.get(f"/api/v1/outbox/{message_id}").json()["history"]
    return [a for a in history if a["outcome"] == "receipt"]  # the dispatcher wrote none here


def test_a_signed_receipt_is_recorded_and_a_forged_one_refused(
    open_client: OpenClient, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    client = open_client(settings.model_copy(update=TWILIO))
    [message_id] = add_messages(session_factory, 1, channel="sms", address="+15550100001")
    _set(session_factory, [message_id], status="sent", sent_at=NOW, provider_id=SID)
    form, headers = _receipt("delivered")
    with TestClient(client.app) as twilio:  # Twilio has no API token
        forged = dict(form, MessageStatus="failed")
        for sent_form, sent_headers in (
            (forged, headers),
            (form, {"X-Twilio-Signature": twilio_signature("other", PUBLIC, form)}),
            (form, {}),
        ):
            refused = twilio.post(STATUS_CALLBACK_PATH, data=sent_form, headers=sent_headers)
            assert refused.status_code == 403 and "X-Twilio-Signature" in refused.text
        assert _row(session_factory, message_id).delivery_status is None
        no_sid, signed = _receipt("delivered", MessageSid="")  # signed, but no sid
        bad = twilio.post(STATUS_CALLBACK_PATH, data=no_sid, headers=signed)
        assert bad.status_code == 400 and "MessageSid and MessageStatus missing" in bad.text
        accepted = twilio.post(STATUS_CALLBACK_PATH, data=form, headers=headers)
    assert accepted.status_code == 204, accepted.text
    row = _row(session_factory, message_id)
    assert (row.status, row.delivery_status) == ("sent", "delivered")
    [receipt] = _receipts(client, message_id)
    assert receipt["detail"] == "delivery receipt: delivered"
    assert receipt["worker"] == "twilio-callback"


def test_a_failed_sms_receipt_kills_the_message_and_falls_back_once(
    open_client: OpenClient, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    configured = settings.model_copy(update=TWILIO)
    world = make_world(session_factory, configured, OPEN_TUESDAY)
    lead = world.add_lead("C-1", probability=0.05)  # critical: step 1 is written at once
    world.watch(lead)
    esc = world.escalation(lead)
    messages = world.messages(esc.id)
    [texted] = [m for m in messages if m.channel == "sms" and m.recipient == "dana"]
    others = [m.id for m in messages if m.id != texted.id]
    assert len(others) == 5 and {m.decision_id for m in messages} == {texted.decision_id}
    _set(session_factory, [texted.id], status="sent", sent_at=world.clock(), provider_id=SID)
    _set(session_factory, others, status="dead", dead_at=world.clock())
    assert [d.fallback for d in world.decisions(esc.id)] == [False, False]
    client = open_client(configured, clock=world.clock)
    form, headers = _receipt("failed", ErrorCode="30003")
    died_at = world.clock()
    with TestClient(client.app) as twilio:
        for _ in range(2):  # Twilio may repeat a callback: the fallback happens once
            response = twilio.post(STATUS_CALLBACK_PATH, data=form, headers=headers)
            assert response.status_code == 204, response.text
            world.clock.advance(minutes=1)
    row = _row(session_factory, texted.id)
    assert (row.status, row.delivery_status, row.dead_at) == ("dead", "failed", died_at)
    assert row.last_error == "carrier reported failed (30003)"
    after = world.decisions(esc.id)
    assert [d.fallback for d in after] == [False, False, True]
    assert "every delivery of step 1 failed permanently" in after[-1].reason
    assert [d.fell_back for d in after[:2]] == [False, True]
    fresh = [m for m in world.messages(esc.id) if m.status == "pending"]
    assert fresh and {m.recipient for m in fresh} == {"gina"}
    assert [r["code"] for r in _receipts(client, texted.id)] == ["30003", "30003"]


def test_receipts_are_checked_with_the_auth_token_saved_on_the_settings_page(
    open_client: OpenClient, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """The environment has no Twilio account; an admin saved one on the settings page, which
    the dispatcher sends with, so Twilio's receipts are signed with that token."""
    from leadwatch.notifications import credentials

    environment = settings.model_copy(update={"public_url": PUBLIC})
    with unit_of_work(session_factory) as db_session:
        credentials.save(
            db_session=db_session,
            settings=environment,
            channel="sms",
            values={
                "twilio_account_sid": "AC123",
                "twilio_auth_token": TWILIO_TOKEN,
                "twilio_from_number": FROM,
            },
            author="ada@riverside.example",
            now=NOW,
        )
    client = open_client(environment)
    [message_id] = add_messages(session_factory, 1, channel="sms", address="+15550100001")
    _set(session_factory, [message_id], status="sent", sent_at=NOW, provider_id=SID)
    form, headers = _receipt("delivered")
    with TestClient(client.app) as twilio:
        accepted = twilio.post(STATUS_CALLBACK_PATH, data=form, headers=headers)
    assert accepted.status_code == 204, accepted.text
    assert _row(session_factory, message_id).delivery_status == "delivered"
