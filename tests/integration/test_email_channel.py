"""EmailChannel against real SMTP servers (aiosmtpd on 127.0.0.1), plain, AUTH, STARTTLS and TLS.

The certificate is made at test time with the `openssl` command line (neither `trustme` nor
`cryptography` is a dependency); the TLS tests skip when openssl is missing.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from leadwatch.config import Settings
from leadwatch.notifications.channels.base import (
    ChannelNotConfiguredError,
    Outcome,
    OutgoingMessage,
)
from leadwatch.notifications.channels.email import EmailChannel

SENDER = "LeadWatch <leadwatch@example.com>"
USER, PASSWORD = "sales", "correct-horse-battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def outgoing(
    address: str = "jose@example.com", html: str | None = "<p>Call <b>now</b></p>"
) -> OutgoingMessage:
    return OutgoingMessage(
        id=7,
        idempotency_key="esc-42-step-1-jose",
        channel="email",
        recipient="jose",
        recipient_name="José Núñez",
        address=address,
        subject="Hot lead: Ana Pérez (2024 RAV4)",
        text="Ana Pérez is waiting. Claim: https://lw.example/c/abc",
        html=html,
    )


class Recorder:
    """aiosmtpd handler that keeps every accepted envelope, or answers with a canned refusal."""

    def __init__(self, rcpt_reply: str | None = None, data_reply: str | None = None) -> None:
        self.rcpt_reply, self.data_reply = rcpt_reply, data_reply
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, _srv: Any, _ses: Any, envelope: Envelope, address: str, _: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _srv: Any, _ses: Any, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 2.0.0 Ok: queued as TEST1"

    def received(self) -> EmailMessage:
        (envelope,) = self.envelopes
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=email_policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Server:
    port: int
    handler: Recorder


StartServer = Callable[..., Server]


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """Starts aiosmtpd servers on free ports (keyword arguments go to Controller/SMTP)."""
    controllers: list[Controller] = []

    def start(handler: Recorder | None = None, **kwargs: Any) -> Server:
        handler = handler or Recorder()
        port = free_port()
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, server_hostname="mx.test", **kwargs
        )
        controller.start()
        controllers.append(controller)
        return Server(port, handler)

    yield start
    for controller in controllers:
        controller.stop()


@dataclass
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1/localhost, made for this test run."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


def channel(port: int, security: Any = "none", **kwargs: Any) -> EmailChannel:
    return EmailChannel(
        host="127.0.0.1", port=port, security=security, sender=SENDER, timeout=5.0, **kwargs
    )


class Authenticator:
    """Accepts USER/PASSWORD; on a wrong password it echoes it back, as careless servers do."""

    def __init__(self) -> None:
        self.mechanisms: list[str] = []

    def __call__(self, _srv: Any, _ses: Any, _env: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.mechanisms.append(mechanism)
        if data.login == USER.encode() and data.password == PASSWORD.encode():
            return AuthResult(success=True, auth_data=data)
        echoed = data.password.decode()
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {echoed}")


def test_plain_delivery_of_text_and_html(smtp_server: StartServer) -> None:
    server = smtp_server()
    result = channel(server.port).send(outgoing())

    assert result.outcome is Outcome.SENT
    assert (result.code, result.detail) == ("250", "2.0.0 Ok: queued as TEST1")
    (envelope,) = server.handler.envelopes
    assert envelope.mail_from == "leadwatch@example.com"
    assert envelope.rcpt_tos == ["jose@example.com"]
    assert isinstance(envelope.content, bytes) and envelope.content.isascii()  # 7-bit safe
    mail = server.handler.received()
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "Hot lead: Ana Pérez (2024 RAV4)"
    assert mail["From"] == SENDER
    (to,) = mail["To"].addresses
    assert (to.display_name, to.addr_spec) == ("José Núñez", "jose@example.com")
    assert mail["Message-ID"] == "<esc-42-step-1-jose@leadwatch>"
    assert mail["X-LeadWatch-Idempotency-Key"] == "esc-42-step-1-jose"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().strip() == "Ana Pérez is waiting. Claim: https://lw.example/c/abc"
    assert html.get_content().strip() == "<p>Call <b>now</b></p>"


def test_text_only_and_repeats_carry_the_same_message_id(smtp_server: StartServer) -> None:
    server = smtp_server()
    email = channel(server.port)
    first, second = email.send(outgoing(html=None)), email.send(outgoing(html=None))

    assert first.outcome is second.outcome is Outcome.SENT
    ids = set()
    for envelope in server.handler.envelopes:
        assert isinstance(envelope.content, bytes)
        mail = message_from_bytes(envelope.content, policy=email_policy.default)
        assert mail.get_content_type() == "text/plain"
        ids.add(mail["Message-ID"])
    assert ids == {"<esc-42-step-1-jose@leadwatch>"}


def test_non_ascii_address_uses_smtputf8(smtp_server: StartServer) -> None:
    server = smtp_server()
    result = channel(server.port).send(outgoing(address="josé@example.com"))

    assert result.outcome is Outcome.SENT, result.detail
    (envelope,) = server.handler.envelopes
    assert envelope.rcpt_tos == ["josé@example.com"]
    assert "SMTPUTF8" in envelope.mail_options


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_auth_with_right_credentials(smtp_server: StartServer, mechanism: str) -> None:
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    auth = Authenticator()
    server = smtp_server(authenticator=auth, auth_require_tls=False, auth_exclude_mechanism=[other])
    result = channel(server.port, username=USER, password=PASSWORD).send(outgoing())

    assert result.outcome is Outcome.SENT, result.detail
    assert auth.mechanisms == [mechanism]
    (envelope,) = server.handler.envelopes
    assert envelope.rcpt_tos == ["jose@example.com"]


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_auth_with_wrong_password_is_permanent_and_secret(
    smtp_server: StartServer, mechanism: str
) -> None:
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    auth = Authenticator()
    server = smtp_server(authenticator=auth, auth_require_tls=False, auth_exclude_mechanism=[other])
    wrong = "hunter2-wrong"
    result = channel(server.port, username=USER, password=wrong).send(outgoing())

    assert auth.mechanisms == [mechanism]
    assert result.outcome is Outcome.PERMANENT
    assert result.code == "535"
    assert "LEADWATCH_SMTP_USERNAME" in result.detail
    assert "LEADWATCH_SMTP_PASSWORD" in result.detail
    assert wrong not in result.detail and wrong not in repr(result)
    assert server.handler.envelopes == []


def test_non_ascii_password_is_permanent_not_an_exception(smtp_server: StartServer) -> None:
    server = smtp_server(authenticator=Authenticator(), auth_require_tls=False)
    result = channel(server.port, username=USER, password="contraseña").send(outgoing())

    assert result.outcome is Outcome.PERMANENT
    assert "contraseña" not in result.detail


def test_starttls_with_auth(smtp_server: StartServer, certificate: Certificate) -> None:
    # AUTH is only offered after STARTTLS here, so this also proves the second EHLO.
    auth = Authenticator()
    server = smtp_server(
        tls_context=certificate.server_context(), require_starttls=True, authenticator=auth
    )
    email = channel(
        server.port,
        "starttls",
        username=USER,
        password=PASSWORD,
        ssl_context=certificate.client_context(),
    )
    result = email.send(outgoing())

    assert result.outcome is Outcome.SENT, result.detail
    assert auth.mechanisms == ["PLAIN"]  # smtplib prefers PLAIN over LOGIN
    assert server.handler.received()["Message-ID"] == "<esc-42-step-1-jose@leadwatch>"


def test_starttls_with_an_untrusted_certificate_is_retry(
    smtp_server: StartServer, certificate: Certificate
) -> None:
    server = smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    result = channel(server.port, "starttls").send(outgoing())  # default trust store

    assert result.outcome is Outcome.RETRY
    assert "TLS" in result.detail
    assert server.handler.envelopes == []


def test_implicit_tls(smtp_server: StartServer, certificate: Certificate) -> None:
    server = smtp_server(ssl_context=certificate.server_context())
    email = channel(server.port, "tls", ssl_context=certificate.client_context())
    result = email.send(outgoing())

    assert result.outcome is Outcome.SENT, result.detail
    assert server.handler.received()["To"].addresses[0].display_name == "José Núñez"


@pytest.mark.parametrize(
    ("refusal", "outcome", "code"),
    [
        ({"rcpt_reply": "451 4.7.1 Greylisted, try later"}, Outcome.RETRY, "451"),
        ({"rcpt_reply": "550 5.1.1 No such user"}, Outcome.PERMANENT, "550"),
        ({"data_reply": "451 4.3.0 Queue full"}, Outcome.RETRY, "451"),
        ({"data_reply": "554 5.7.1 Message rejected as spam"}, Outcome.PERMANENT, "554"),
    ],
    ids=["rcpt-451", "rcpt-550", "data-451", "data-554"],
)
def test_refusals_map_by_reply_code(
    smtp_server: StartServer, refusal: dict[str, str], outcome: Outcome, code: str
) -> None:
    server = smtp_server(Recorder(**refusal))
    result = channel(server.port).send(outgoing())

    assert (result.outcome, result.code) == (outcome, code)
    (reply,) = refusal.values()
    assert reply in result.detail  # code and the server's words
    assert server.handler.envelopes == []


def test_server_down_is_retry() -> None:
    result = channel(free_port()).send(outgoing())

    assert result.outcome is Outcome.RETRY
    assert "127.0.0.1" in result.detail


@pytest.mark.parametrize(
    "address",
    [
        "+15551234567",
        "José Núñez",
        "a@b@example.com",
        "bob @example.com",
        "bob@example.com\r\nBcc: victim@example.com",
        "Bob <bob@example.com>",
        "@example.com",
        "",
    ],
)
def test_invalid_address_is_permanent_without_connecting(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    def no_connect(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("connected for an invalid address")

    monkeypatch.setattr(smtplib.SMTP, "connect", no_connect)
    result = channel(free_port()).send(outgoing(address=address))

    assert result.outcome is Outcome.PERMANENT
    assert "not an email address" in result.detail


def test_from_settings_without_host() -> None:
    with pytest.raises(ChannelNotConfiguredError, match="LEADWATCH_SMTP_HOST"):
        EmailChannel.from_settings(Settings(_env_file=None, smtp_host=None))


def test_from_settings_with_host_sends(smtp_server: StartServer) -> None:
    server = smtp_server()
    settings = Settings(
        _env_file=None,
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_security="none",
        smtp_from=SENDER,
    )
    email = EmailChannel.from_settings(settings)

    assert email.name == "email"
    assert email.send(outgoing()).outcome is Outcome.SENT


def test_from_settings_with_an_unusable_sender() -> None:
    settings = Settings(_env_file=None, smtp_host="127.0.0.1", smtp_from="LeadWatch")
    with pytest.raises(ChannelNotConfiguredError, match="LEADWATCH_SMTP_FROM"):
        EmailChannel.from_settings(settings)
