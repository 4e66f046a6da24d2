"""The delivery CLI on a real database (SQLite and PostgreSQL): `outbox list|show|resend` and
`notifications preview|webhook-secret|test-webhook`, the last against a real loopback server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from leadwatch.cli import app
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work
from leadwatch.notifications.channels import webhook
from leadwatch.notifications.dispatcher import Dispatcher
from leadwatch.notifications.models import OutboxMessage
from leadwatch.notifications.templates import TemplateSet, sample_context
from tests.integration.escalation_support import Clock
from tests.integration.sinks import HttpSink
from tests.integration.test_dispatcher import NOW, add_messages

runner = CliRunner()
SLACK = "https://hooks.slack.com/services/T/B/secret"
LAB = {"LEADWATCH_ALLOW_PRIVATE_URLS": "true", "LEADWATCH_ALLOW_HTTP_URLS": "true"}


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "LEADWATCH_HOME": str(settings.home),
        "LEADWATCH_DATABASE_URL": settings.resolved_database_url,
        "LEADWATCH_DEFAULT_DEALERSHIP": settings.default_dealership,
        "LEADWATCH_DEFAULT_TIMEZONE": settings.default_timezone,
        "COLUMNS": "200",  # rich tables: no wrapping inside the checked words
    }


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    server = HttpSink()
    yield server
    server.close()


def cli(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok(env: dict[str, str], *args: str) -> str:
    result = cli(env, *args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def refused(env: dict[str, str], *args: str, code: int = 2) -> str:
    result = cli(env, *args)
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result.stderr


def _set(factory: sessionmaker[Session], ids: list[int], **values: Any) -> None:
    with unit_of_work(factory) as db_session:
        db_session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(values))


def _row(factory: sessionmaker[Session], message_id: int) -> OutboxMessage:
    with unit_of_work(factory) as db_session:
        row = db_session.get(OutboxMessage, message_id)
        assert row is not None
        return row


# --- outbox ----------------------------------------------------------------------------------


def test_outbox_list_table_json_and_status_filter(
    env: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    older, newer = add_messages(session_factory, 2, address="dana@example.com")
    [slack] = add_messages(session_factory, 1, channel="slack", address=SLACK)
    _set(session_factory, [slack], status="dead", dead_at=NOW, last_error="HTTP 404: no_service")
    table = ok(env, "outbox", "list")
    assert table.splitlines()[0] == "dead 1, pending 2"
    assert "Dana Reyes <dana@example.com>" in table and "HTTP 404: no_service" in table
    assert "hooks.slack.com" in table and "T/B/secret" not in table
    shown = json.loads(ok(env, "outbox", "list", "--json"))
    assert shown["counts"] == {"dead": 1, "pending": 2}
    assert [m["id"] for m in shown["messages"]] == [slack, newer, older]  # newest first
    assert [m["address"] for m in shown["messages"]] == [
        "https://hooks.slack.com/…",
        "dana@example.com",
        "dana@example.com",
    ]
    dead = json.loads(ok(env, "outbox", "list", "--status", "dead", "--json"))
    assert [(m["id"], m["status"]) for m in dead["messages"]] == [(slack, "dead")]
    assert dead["counts"] == {"dead": 1, "pending": 2}  # the counts cover everything
    mail = json.loads(ok(env, "outbox", "list", "--channel", "email", "--json"))
    assert [m["id"] for m in mail["messages"]] == [newer, older]
    assert "unknown status 'lost'" in refused(env, "outbox", "list", "--status", "lost")
    assert ok(env, "outbox", "list", "--status", "sent", "--json").count('"id"') == 0


def test_outbox_show_lists_the_attempts_of_a_real_delivery(
    env: dict[str, str], settings: Settings, session_factory: sessionmaker[Session], sink: HttpSink
) -> None:
    sink.answer = lambda _r: (410, {}, b"gone for good")
    address = f"{sink.url}/hooks/path-secret"
    [message_id] = add_messages(session_factory, 1, channel="webhook", address=address)
    lab = settings.model_copy(update={"allow_private_urls": True, "allow_http_urls": True})
    channel = webhook.WebhookChannel.from_settings(lab)
    worker = Dispatcher(
        session_factory=session_factory, channels={"webhook": channel}, clock=Clock(NOW)
    )
    try:
        assert worker.run_once().dead == 1
    finally:
        worker.close()
    key = _row(session_factory, message_id).idempotency_key
    shown = ok(env, "outbox", "show", str(message_id))
    lines = shown.splitlines()
    assert lines[0] == (
        f"#{message_id} webhook to Dana Reyes <http://127.0.0.1/…>: dead after 1 attempts "
        f"(key {key})"
    )
    assert lines[1] == "subject: [HIGH] lead 0"
    [attempt] = [line for line in lines if "HTTP 410" in line]
    assert attempt.startswith(f"│ {NOW:%Y-%m-%d %H:%M:%S} │ permanent │ 410")
    assert "HTTP 410 Gone: gone for good" in attempt and "path-secret" not in shown
    assert sink.keys() == [key]
    assert "no outbox message 999999" in refused(env, "outbox", "show", "999999")


def test_outbox_resend_by_id_and_all_dead_keeps_the_keys(
    env: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    first, second, alive = add_messages(session_factory, 3)
    _set(session_factory, [first, second], status="dead", dead_at=NOW)
    keys = {i: _row(session_factory, i).idempotency_key for i in (first, second, alive)}
    assert "give message ids or --all-dead" in refused(env, "outbox", "resend")
    assert ok(env, "outbox", "resend", str(alive)) == "0 dead letters queued again\n"
    assert ok(env, "outbox", "resend", str(first)) == "1 dead letters queued again\n"
    row = _row(session_factory, first)
    assert (row.status, row.dead_at, row.idempotency_key) == ("pending", None, keys[first])
    assert row.expires_at is not None
    assert row.expires_at - row.next_attempt_at == timedelta(hours=24)  # a fresh expiry
    assert _row(session_factory, second).status == "dead"
    assert ok(env, "outbox", "resend", "--all-dead") == "1 dead letters queued again\n"
    rows = {i: _row(session_factory, i) for i in keys}
    assert {i: (r.status, r.idempotency_key) for i, r in rows.items()} == {
        i: ("pending", key) for i, key in keys.items()
    }
    assert ok(env, "outbox", "resend", "--all-dead") == "0 dead letters queued again\n"


# --- notifications ---------------------------------------------------------------------------


def test_preview_prints_the_short_sms_with_its_claim_link(
    env: dict[str, str], settings: Settings
) -> None:
    shown = ok(env, "notifications", "preview", "--channel", "sms", "--level", "high")
    expected = TemplateSet(settings.home / "templates").render(
        channel="sms", level="high", context=sample_context("high")
    )
    assert shown == f"subject: {expected.subject}\n\n{expected.text}\n"
    text = shown.split("\n\n", 1)[1]
    assert text.startswith("[HIGH] Maria Gonzalez") and len(text) <= 320
    assert text.rstrip().endswith("https://leadwatch.example.com/claim/sample-token")
    assert "unknown channel 'fax'" in refused(env, "notifications", "preview", "--channel", "fax")
    wrong_level = refused(env, "notifications", "preview", "--channel", "sms", "--level", "hot")
    assert "unknown level 'hot'" in wrong_level


def test_webhook_secret_is_the_hex_receivers_verify_with(
    env: dict[str, str], settings: Settings
) -> None:
    printed = ok(env, "notifications", "webhook-secret").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", printed)
    assert printed == webhook.signing_secret_hex(settings)
    own = ok(env | {"LEADWATCH_WEBHOOK_SIGNING_SECRET": "shh"}, "notifications", "webhook-secret")
    assert own == "736868\n"  # b"shh".hex(): a configured secret is used as it is


def test_test_webhook_sends_a_signed_event_and_fails_on_a_bad_answer(
    env: dict[str, str], settings: Settings, sink: HttpSink
) -> None:
    url = f"{sink.url}/receiver"
    assert ok(env | LAB, "notifications", "test-webhook", url) == "sent (200): HTTP 200 OK: ok\n"
    [received] = sink.received
    assert (received.path, json.loads(received.body)["type"]) == ("/receiver", "test")
    stamp = received.headers["x-leadwatch-timestamp"]
    signed = received.headers["x-leadwatch-signature"]
    secret = webhook.signing_secret(settings)
    assert webhook.verify_signature(secret, stamp, received.body, signed, now=float(stamp))
    sink.answer = lambda _r: (500, {}, b"receiver crashed")
    failed = cli(env | LAB, "notifications", "test-webhook", url)
    assert failed.exit_code == 1
    assert failed.stdout == "retry (500): HTTP 500 Internal Server Error: receiver crashed\n"
    blocked = cli(env, "notifications", "test-webhook", url)  # default settings: no http
    assert blocked.exit_code == 1 and "refused: plain http://" in blocked.stdout
    assert len(sink.received) == 2
