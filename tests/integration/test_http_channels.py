"""Webhook, Slack and Twilio SMS against real HTTP servers on 127.0.0.1.

Each server records what it received and answers from a script (status, body, headers, or
"hang": answer nothing until the test ends), so the tests see the real bytes on the wire and
the channels meet real sockets, timeouts and refused connections.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from leadwatch import __version__
from leadwatch.config import Settings
from leadwatch.notifications.channels.base import (
    ChannelNotConfiguredError,
    Outcome,
    OutgoingMessage,
)
from leadwatch.notifications.channels.http import classify_response
from leadwatch.notifications.channels.slack import SlackChannel
from leadwatch.notifications.channels.sms import (
    TwilioSmsChannel,
    check_twilio_signature,
    parse_status_callback,
    twilio_signature,
)
from leadwatch.notifications.channels.webhook import (
    WebhookChannel,
    signing_secret_hex,
    verify_signature,
)

SECRET = b"whsec-test-secret"
TOKEN = "twilio-auth-token-123"
CLAIM_URL = "https://leadwatch.example.com/claim/abc.def"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # accept the request and answer nothing until the server stops


@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class ScriptedServer:
    """A threaded HTTP server on a free loopback port: records POSTs, answers from `replies`."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.replies: list[Reply] = []
        self._release = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = False  # server_close() then joins every handler thread
        # A short poll interval only makes shutdown() prompt; nothing waits on it for results.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,))
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                server.requests.append(Seen(self.path, headers, body))
                reply = server.replies.pop(0) if server.replies else Reply()
                if reply.hang:
                    server._release.wait()
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def webhook() -> Iterator[WebhookChannel]:
    with WebhookChannel(secret=SECRET, timeout=5, allow_private=True, allow_http=True) as channel:
        yield channel


@pytest.fixture
def slack() -> Iterator[SlackChannel]:
    with SlackChannel(timeout=5, allow_private=True, allow_http=True) as channel:
        yield channel


def sms_channel(server: ScriptedServer, **overrides: Any) -> TwilioSmsChannel:
    options: dict[str, Any] = {
        "account_sid": "AC0123",
        "auth_token": TOKEN,
        "from_number": "+13125550100",
        "base_url": server.url,
        "timeout": 5,
        "allow_private": True,
        "allow_http": True,
    }
    return TwilioSmsChannel(**(options | overrides))


def message(address: str, channel: str = "webhook", **overrides: Any) -> OutgoingMessage:
    data = {
        "lead_id": 42,
        "customer": "Jane Doe",
        "vehicle": "2024 Honda CR-V",
        "dealership": "Main Store",
        "source": "cars.com",
        "level": "critical",
        "probability": 0.084,
        "horizon_days": 30,
        "waited_minutes": 125.0,
        "factors": ["no reply after 2 h", "weekend lead"],
        "claim_url": CLAIM_URL,
    }
    values: dict[str, Any] = {
        "id": 7,
        "idempotency_key": "key-7f3a",
        "channel": channel,
        "recipient": "pat",
        "recipient_name": "Pat Lee",
        "address": address,
        "subject": "[CRITICAL] Jane Doe waiting 2.1 h for first contact",
        "text": "Jane Doe at Main Store, from cars.com.\nClaim it: " + CLAIM_URL,
        "data": data,
    }
    return OutgoingMessage(**(values | overrides))


# ---- webhook -------------------------------------------------------------------------------


def test_webhook_posts_a_signed_json_event(server: ScriptedServer, webhook: WebhookChannel) -> None:
    result = webhook.send(message(server.url + "/hooks/leadwatch"))
    assert result.outcome is Outcome.SENT and result.code == "200"
    [seen] = server.requests
    assert seen.path == "/hooks/leadwatch"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == f"LeadWatch/{__version__}"
    assert seen.headers["idempotency-key"] == "key-7f3a"
    event = json.loads(seen.body)
    assert event["id"] == "key-7f3a" and event["type"] == "escalation.notify"
    assert datetime.fromisoformat(event["created_at"]).tzinfo is not None
    assert event["subject"].startswith("[CRITICAL] Jane Doe")
    assert event["data"]["claim_url"] == CLAIM_URL and event["data"]["lead_id"] == 42
    assert event["recipient"] == {"key": "pat", "name": "Pat Lee"}

    timestamp, signature = (
        seen.headers["x-leadwatch-timestamp"],
        seen.headers["x-leadwatch-signature"],
    )
    assert abs(int(timestamp) - time.time()) < 60 and signature.startswith("v1=")
    now = time.time()
    assert verify_signature(SECRET, timestamp, seen.body, signature, now=now)
    assert not verify_signature(SECRET, timestamp, seen.body + b" ", signature, now=now)
    assert not verify_signature(SECRET, str(int(timestamp) + 1), seen.body, signature, now=now)
    assert not verify_signature(b"other", timestamp, seen.body, signature, now=now)
    assert not verify_signature(SECRET, timestamp, seen.body, signature, now=int(timestamp) + 301)
    assert not verify_signature(SECRET, "not-a-time", seen.body, signature, now=now)


def test_webhook_repeats_carry_the_same_idempotency_key(
    server: ScriptedServer, webhook: WebhookChannel
) -> None:
    outgoing = message(server.url + "/hook")
    server.replies = [Reply(500, b"boom"), Reply(200)]
    assert webhook.send(outgoing).outcome is Outcome.RETRY
    assert webhook.send(outgoing).outcome is Outcome.SENT
    first, second = server.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "key-7f3a"
    assert json.loads(first.body)["id"] == json.loads(second.body)["id"] == "key-7f3a"


@pytest.mark.parametrize(
    ("reply", "outcome", "retry_after"),
    [
        (Reply(500, b"internal error"), Outcome.RETRY, None),
        (Reply(503, b"", {"Retry-After": "120"}), Outcome.RETRY, 120.0),
        (Reply(429, b"slow down", {"Retry-After": "7"}), Outcome.RETRY, 7.0),
        (Reply(429, b"", {"Retry-After": "86400"}), Outcome.RETRY, 3600.0),
        (Reply(408, b""), Outcome.RETRY, None),
        (Reply(410, b"gone for good"), Outcome.PERMANENT, None),
        (Reply(400, b"bad"), Outcome.PERMANENT, None),
        (Reply(302, b"", {"Location": "http://169.254.169.254/"}), Outcome.PERMANENT, None),
    ],
)
def test_webhook_statuses_map_to_outcomes(
    server: ScriptedServer,
    webhook: WebhookChannel,
    reply: Reply,
    outcome: Outcome,
    retry_after: float | None,
) -> None:
    server.replies = [reply]
    result = webhook.send(message(server.url + "/hook"))
    assert (result.outcome, result.retry_after, result.code) == (
        outcome,
        retry_after,
        str(reply.status),
    )
    assert result.detail.startswith(f"HTTP {reply.status}")
    assert len(server.requests) == 1  # redirects are not followed


def test_detail_is_the_status_and_the_start_of_the_body_without_credentials(
    server: ScriptedServer, webhook: WebhookChannel
) -> None:
    server.replies = [Reply(422, b"field missing\n" + b"x" * 1000)]
    result = webhook.send(message(server.url + "/hook"))
    assert result.outcome is Outcome.PERMANENT
    assert result.detail.startswith("HTTP 422 Unprocessable Entity: field missing xxx")
    assert len(result.detail) <= len("HTTP 422 Unprocessable Entity: ") + 300
    assert SECRET.decode() not in result.detail
    assert server.requests[0].headers["x-leadwatch-signature"] not in result.detail


def test_a_server_that_never_answers_is_retried(server: ScriptedServer) -> None:
    server.replies = [Reply(hang=True)]
    with WebhookChannel(secret=SECRET, timeout=0.3, allow_private=True, allow_http=True) as hook:
        result = hook.send(message(server.url + "/slow"))
    assert result.outcome is Outcome.RETRY and "timed out" in result.detail
    assert len(server.requests) == 1


def test_a_refused_connection_is_retried(webhook: WebhookChannel) -> None:
    with socket.socket() as bound:  # bound but not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        result = webhook.send(message(f"http://127.0.0.1:{port}/hook"))
    assert result.outcome is Outcome.RETRY and "ConnectionRefusedError" in result.detail


def test_the_url_guard_runs_before_any_request(server: ScriptedServer) -> None:
    with WebhookChannel(secret=SECRET, timeout=5, allow_private=False, allow_http=True) as hook:
        result = hook.send(message(server.url + "/hook"))
    assert result.outcome is Outcome.PERMANENT
    assert "loopback" in result.detail and "LEADWATCH_ALLOW_PRIVATE_URLS=true" in result.detail
    with WebhookChannel(secret=SECRET, timeout=5, allow_private=True, allow_http=False) as hook:
        result = hook.send(message(server.url + "/hook"))
    assert result.outcome is Outcome.PERMANENT and "LEADWATCH_ALLOW_HTTP_URLS" in result.detail
    assert server.requests == []


def test_the_test_event_is_signed_like_the_real_ones(
    server: ScriptedServer, webhook: WebhookChannel
) -> None:
    assert webhook.send_test_event(server.url + "/hook").outcome is Outcome.SENT
    [seen] = server.requests
    event = json.loads(seen.body)
    assert event["type"] == "test" and event["id"] == seen.headers["idempotency-key"]
    timestamp, signature = (
        seen.headers["x-leadwatch-timestamp"],
        seen.headers["x-leadwatch-signature"],
    )
    assert verify_signature(SECRET, timestamp, seen.body, signature, now=time.time())


def test_the_signing_secret_comes_from_settings_or_the_installation_key(
    server: ScriptedServer, tmp_path: Path
) -> None:
    configured = Settings(_env_file=None, home=tmp_path, webhook_signing_secret="s3cret")
    assert bytes.fromhex(signing_secret_hex(configured)) == b"s3cret"
    keyed = Settings(_env_file=None, home=tmp_path, secret_key="install-key")
    expected = hmac.new(b"install-key", b"webhook-signing", hashlib.sha256).hexdigest()
    assert signing_secret_hex(keyed) == expected
    generated = Settings(
        _env_file=None, home=tmp_path / "home", allow_private_urls=True, allow_http_urls=True
    )
    secret = bytes.fromhex(signing_secret_hex(generated))
    assert secret == bytes.fromhex(signing_secret_hex(generated))  # the key file is kept
    with WebhookChannel.from_settings(generated) as hook:
        assert hook.send(message(server.url + "/hook")).outcome is Outcome.SENT
    [seen] = server.requests
    timestamp, signature = (
        seen.headers["x-leadwatch-timestamp"],
        seen.headers["x-leadwatch-signature"],
    )
    assert verify_signature(secret, timestamp, seen.body, signature, now=time.time())


def test_retry_after_may_be_an_http_date() -> None:
    now = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
    in_90s = {"Retry-After": "Tue, 03 Jun 2025 15:01:30 GMT"}
    assert classify_response(503, in_90s, now=now) == (Outcome.RETRY, 90.0)
    past = {"retry-after": "Tue, 03 Jun 2025 14:00:00 GMT"}
    assert classify_response(429, past, now=now) == (Outcome.RETRY, 0.0)
    assert classify_response(429, {"Retry-After": "soon"}, now=now) == (Outcome.RETRY, None)
    assert classify_response(425, {}) == (Outcome.RETRY, None)
    assert classify_response(204, {"Retry-After": "5"}) == (Outcome.SENT, None)
    assert classify_response(404, {"Retry-After": "5"}) == (Outcome.PERMANENT, None)


# ---- Slack ---------------------------------------------------------------------------------


def test_slack_posts_block_kit_and_reads_ok(server: ScriptedServer, slack: SlackChannel) -> None:
    server.replies = [Reply(200, b"ok")]
    result = slack.send(message(server.url + "/services/T0/B0/xyz", channel="slack"))
    assert result.outcome is Outcome.SENT and result.detail == "HTTP 200 OK: ok"
    [seen] = server.requests
    assert seen.path == "/services/T0/B0/xyz" and seen.headers["content-type"] == "application/json"
    payload = json.loads(seen.body)
    assert payload["text"].startswith("[CRITICAL] Jane Doe")
    header, section, context, actions = payload["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith(":rotating_light: [CRITICAL] Jane Doe")
    fields = [item["text"] for item in section["fields"]]
    assert fields == [
        "*Customer*\nJane Doe",
        "*Vehicle*\n2024 Honda CR-V",
        "*Dealership*\nMain Store",
        "*Source*\ncars.com",
        "*Waiting*\n2.1 h",
        "*Chance of sale*\n8% in 30 days",
    ]
    assert context["type"] == "context"
    assert "no reply after 2 h" in context["elements"][0]["text"]
    assert "weekend lead" in context["elements"][0]["text"]
    [button] = actions["elements"]
    assert actions["type"] == "actions" and button["type"] == "button"
    assert (button["url"], button["style"], button["text"]["text"]) == (
        CLAIM_URL,
        "primary",
        "Claim",
    )


def test_slack_escapes_lead_fields_and_leaves_out_what_is_missing(
    server: ScriptedServer, slack: SlackChannel
) -> None:
    data = {"customer": "<!channel> & <https://evil.example|Claim>", "level": "medium"}
    assert slack.send(message(server.url + "/s", data=data)).outcome is Outcome.SENT
    payload = json.loads(server.requests[0].body)
    types = [block["type"] for block in payload["blocks"]]
    assert types == ["header", "section"]  # no factors, no claim link
    assert payload["blocks"][0]["text"]["text"].startswith(":large_orange_circle:")
    assert payload["blocks"][1]["fields"] == [
        {
            "type": "mrkdwn",
            "text": "*Customer*\n&lt;!channel&gt; &amp; &lt;https://evil.example|Claim&gt;",
        }
    ]


@pytest.mark.parametrize(
    ("reply", "outcome", "retry_after"),
    [
        (Reply(404, b"no_service"), Outcome.PERMANENT, None),
        (Reply(403, b"invalid_token"), Outcome.PERMANENT, None),
        (Reply(410, b"channel_is_archived"), Outcome.PERMANENT, None),
        (Reply(429, b"rate_limited", {"Retry-After": "30"}), Outcome.RETRY, 30.0),
        (Reply(500, b"rollup_error"), Outcome.RETRY, None),
    ],
)
def test_slack_errors(
    server: ScriptedServer,
    slack: SlackChannel,
    reply: Reply,
    outcome: Outcome,
    retry_after: float | None,
) -> None:
    server.replies = [reply]
    result = slack.send(message(server.url + "/services/T0/B0/secretpath", channel="slack"))
    assert (result.outcome, result.retry_after) == (outcome, retry_after)
    assert reply.body.decode() in result.detail and "secretpath" not in result.detail


# ---- Twilio SMS ----------------------------------------------------------------------------


def test_sms_posts_the_form_with_basic_auth_and_reads_the_sid(server: ScriptedServer) -> None:
    server.replies = [Reply(201, b'{"sid": "SM0123abcd", "status": "queued"}')]
    callback = "https://lw.example.com/api/v1/notifications/sms/status"
    with sms_channel(server, status_callback_url=callback) as sms:
        result = sms.send(message("+1 (312) 555-0199", channel="sms"))
    assert result.outcome is Outcome.SENT and result.provider_id == "SM0123abcd"
    assert result.code == "201" and TOKEN not in result.detail
    [seen] = server.requests
    assert seen.path == "/2010-04-01/Accounts/AC0123/Messages.json"
    expected_auth = base64.b64encode(f"AC0123:{TOKEN}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {expected_auth}"
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {name: values[0] for name, values in parse_qs(seen.body.decode()).items()}
    assert form == {
        "To": "+13125550199",
        "From": "+13125550100",
        "Body": message("x").text,
        "StatusCallback": callback,
    }


def test_sms_bodies_are_cut_to_1600_characters(server: ScriptedServer) -> None:
    server.replies = [Reply(201, b'{"sid": "SM1"}')]
    with sms_channel(server) as sms:
        assert sms.send(message("+13125550199", text="é" * 2000)).outcome is Outcome.SENT
    form = parse_qs(server.requests[0].body.decode())
    assert len(form["Body"][0]) == 1600 and form["Body"][0].endswith("…")
    assert "StatusCallback" not in form


def test_sms_twilio_errors(server: ScriptedServer) -> None:
    invalid_to = {"code": 21211, "message": "The 'To' number +1555 is not a valid phone number."}
    server.replies = [
        Reply(400, json.dumps(invalid_to).encode()),
        Reply(401, f'{{"message": "Authenticate: {TOKEN}"}}'.encode()),  # a server echoing it
        Reply(429, b"{}", {"Retry-After": "3"}),
        Reply(503, b"unavailable"),
    ]
    with sms_channel(server) as sms:
        results = [sms.send(message("+13125550199", channel="sms")) for _ in range(4)]
    rejected, unauthorized, limited, down = results
    assert rejected.outcome is Outcome.PERMANENT and "21211" in rejected.detail
    assert rejected.code == "400" and rejected.provider_id is None
    assert unauthorized.outcome is Outcome.PERMANENT
    assert TOKEN not in unauthorized.detail and "[redacted]" in unauthorized.detail
    assert (limited.outcome, limited.retry_after) == (Outcome.RETRY, 3.0)
    assert down.outcome is Outcome.RETRY


@pytest.mark.parametrize("address", ["3125550199", "+0123456789", "+1 555", "pat@example.com", ""])
def test_sms_refuses_non_e164_numbers_without_a_request(
    server: ScriptedServer, address: str
) -> None:
    with sms_channel(server) as sms:
        result = sms.send(message(address, channel="sms"))
    assert result.outcome is Outcome.PERMANENT and "E.164" in result.detail
    assert server.requests == []


def test_sms_base_url_goes_through_the_guard(server: ScriptedServer) -> None:
    with sms_channel(server, allow_private=False) as sms:
        result = sms.send(message("+13125550199", channel="sms"))
    assert result.outcome is Outcome.PERMANENT and "loopback" in result.detail
    assert server.requests == []


def test_sms_from_settings_names_the_missing_settings() -> None:
    with pytest.raises(ChannelNotConfiguredError) as caught:
        TwilioSmsChannel.from_settings(Settings(_env_file=None, twilio_account_sid="AC1"))
    assert "LEADWATCH_TWILIO_AUTH_TOKEN" in str(caught.value)
    assert "LEADWATCH_TWILIO_FROM_NUMBER" in str(caught.value)
    assert "ACCOUNT_SID" not in str(caught.value)
    with pytest.raises(ChannelNotConfiguredError, match="LEADWATCH_TWILIO_ACCOUNT_SID"):
        TwilioSmsChannel.from_settings(Settings(_env_file=None))


def test_sms_from_settings_builds_the_callback_from_the_public_url(server: ScriptedServer) -> None:
    settings = Settings(
        _env_file=None,
        twilio_account_sid="AC9",
        twilio_auth_token=TOKEN,
        twilio_from_number="+13125550100",
        twilio_base_url=server.url,
        public_url="https://lw.example.com/",
        allow_private_urls=True,
        allow_http_urls=True,
    )
    server.replies = [Reply(201, b'{"sid": "SM9"}')]
    with TwilioSmsChannel.from_settings(settings, status_callbacks=True) as sms:
        assert sms.send(message("+13125550199", channel="sms")).provider_id == "SM9"
    form = parse_qs(server.requests[0].body.decode())
    assert form["StatusCallback"] == ["https://lw.example.com/api/v1/notifications/sms/status"]
    assert server.requests[0].path == "/2010-04-01/Accounts/AC9/Messages.json"


def test_status_callbacks_parse() -> None:
    form = {
        "MessageSid": "SM0123",
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "To": "+13125550199",
        "AccountSid": "AC0123",
    }
    assert parse_status_callback(form) == {
        "sid": "SM0123",
        "status": "undelivered",
        "error_code": "30003",
        "to": "+13125550199",
    }
    legacy = {"SmsSid": "SM1", "SmsStatus": "delivered", "ErrorCode": ""}
    assert parse_status_callback(legacy) == {
        "sid": "SM1",
        "status": "delivered",
        "error_code": None,
        "to": None,
    }
    with pytest.raises(ValueError, match="MessageSid"):
        parse_status_callback({"To": "+13125550199"})


def test_twilio_signatures() -> None:
    # Twilio's documented example (twilio-python's validator tests use the same vector).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="

    callback = "https://lw.example.com/api/v1/notifications/sms/status"
    form = {"MessageSid": "SM0123", "MessageStatus": "delivered", "To": "+13125550199"}
    signature = twilio_signature(TOKEN, callback, form)
    assert check_twilio_signature(TOKEN, callback, form, signature)
    assert check_twilio_signature(TOKEN, callback.replace(".com/", ".com:443/"), form, signature)
    assert not check_twilio_signature(
        TOKEN, callback, form | {"MessageStatus": "failed"}, signature
    )
    assert not check_twilio_signature(TOKEN, callback + "?x=1", form, signature)
    assert not check_twilio_signature("other-token", callback, form, signature)
    assert not check_twilio_signature(TOKEN, callback, form, "ünicode-garbage")


def test_connections_are_kept_alive_and_the_user_agent_is_sent(server: ScriptedServer) -> None:
    with SlackChannel(timeout=5, allow_private=True, allow_http=True) as slack:
        for _ in range(3):
            assert slack.send(message(server.url + "/s")).outcome is Outcome.SENT
    assert len(server.requests) == 3
    assert server.requests[0].headers["user-agent"] == f"LeadWatch/{__version__}"


def test_slack_text_from_the_template_is_escaped_once_and_keeps_its_claim_link() -> None:
    """The Slack template escapes each value itself; the payload must not escape it again
    (which turned "&" into "&amp;amp;" and the <url|Claim> link into text)."""
    from leadwatch.notifications.channels.slack import slack_payload
    from leadwatch.notifications.templates import TemplateSet, sample_context

    context = sample_context("critical") | {"customer": "Tom & Jerry"}
    rendered = TemplateSet().render(channel="slack", level="critical", context=context)
    link = f"<{context['claim_url']}|Claim this lead>"
    assert "Tom &amp; Jerry" in rendered.text and link in rendered.text
    subject = "[CRITICAL] Tom & Jerry <waiting>"
    payload = slack_payload(
        message("https://hooks.slack.test/x", "slack", subject=subject, text=rendered.text, data={})
    )
    assert payload["text"].startswith("[CRITICAL] Tom &amp; Jerry &lt;waiting&gt;\n")
    assert link in payload["text"] and "&amp;amp;" not in payload["text"]
    section = payload["blocks"][1]["text"]["text"]  # no lead fields: the text itself
    assert link in section and "Tom &amp; Jerry" in section and "&amp;amp;" not in section
