"""Email over SMTP with nothing but the standard library.

One connection per message: escalation mail is a trickle, and a fresh connection per send means
no shared state between threads, no stale sessions to detect, and a failure never leaks into the
next message. SMTP reply codes map onto outcomes the way RFC 5321 means them: 4xx is "try again
later" (RETRY), 5xx is "this will not work" (PERMANENT). The password is held only to log in and
is scrubbed from every detail string in case a server echoes it back.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from contextlib import suppress
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING, Literal

from leadwatch.notifications.channels.base import (
    ChannelNotConfiguredError,
    DeliveryResult,
    Outcome,
    OutgoingMessage,
)

if TYPE_CHECKING:
    from leadwatch.config import Settings

Security = Literal["starttls", "tls", "none"]
# RFC 5322 dot-atom-text: what may stand left of the @ in a Message-ID without quoting.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# CRLF line ends, and 7-bit bodies (quoted-printable/base64 for non-ASCII text) so the message
# is valid on servers that do not offer 8BITMIME.
# 998 is RFC 5322's hard line limit; folding at 78 makes the stdlib fold some subjects
# right after "Subject:" (a leading "[" then a long line), which mail clients show with a
# leading space.
_POLICY = email_policy.SMTP.clone(cte_type="7bit", max_line_length=998)


def _plain_address(value: str) -> str | None:
    """The bare address if `value` can be one (one @, both sides present, no whitespace).

    Deliberately simple: the server has the last word; this only stops values that cannot
    possibly work (a phone number, a name, header injection) before a connection is spent.
    """
    _, addr = parseaddr(value)
    if not addr or addr != value.strip() or addr.count("@") != 1 or any(c.isspace() for c in addr):
        return None
    local, domain = addr.split("@")
    return addr if local and domain and not domain.startswith(".") else None


def _message_id(key: str) -> str:
    """`<key@leadwatch>`, so a receiver (or a person) sees a retry is the same message."""
    local = key if _DOT_ATOM.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()
    return f"<{local}@leadwatch>"


class EmailChannel:
    """Sends an `OutgoingMessage` as a text (+HTML) email; thread-safe because it shares nothing
    mutable: every `send` opens, uses and closes its own SMTP connection."""

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security,
        username: str | None = None,
        password: str | None = None,
        sender: str,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        envelope_from = _plain_address(parseaddr(sender)[1])
        if envelope_from is None:  # fail at start-up, not on the first escalation
            raise ValueError(f"not a usable From address: {sender!r}")
        self._host = host
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._sender = sender
        self._envelope_from = envelope_from
        self._timeout = timeout
        self._ssl_context = ssl_context or ssl.create_default_context()

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailChannel:
        if not settings.smtp_host:
            raise ChannelNotConfiguredError(
                "email is not configured: set LEADWATCH_SMTP_HOST (and LEADWATCH_SMTP_PORT, "
                "LEADWATCH_SMTP_SECURITY, LEADWATCH_SMTP_USERNAME/PASSWORD as the server needs)"
            )
        password = settings.smtp_password
        try:
            return cls(
                host=settings.smtp_host,
                port=settings.smtp_port,
                security=settings.smtp_security,
                username=settings.smtp_username,
                password=password.get_secret_value() if password is not None else None,
                sender=settings.smtp_from,
                timeout=settings.http_timeout_seconds,
            )
        except ValueError as exc:
            raise ChannelNotConfiguredError(f"email: LEADWATCH_SMTP_FROM is wrong: {exc}") from exc

    def send(self, message: OutgoingMessage) -> DeliveryResult:
        address = _plain_address(message.address)
        if address is None:
            return self._result(Outcome.PERMANENT, f"not an email address: {message.address!r}")
        try:
            mail = self._build(message, address)
        except (ValueError, TypeError) as exc:  # e.g. a header the email package refuses
            return self._result(Outcome.PERMANENT, f"cannot build the email: {exc}")
        try:
            code, reply = self._deliver(mail, address)
        except smtplib.SMTPAuthenticationError as exc:  # 535 is setup; 454 "temporary" retries
            hint = "; check LEADWATCH_SMTP_USERNAME and LEADWATCH_SMTP_PASSWORD"
            return self._reply(exc.smtp_code, exc.smtp_error, "login refused: ", hint)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return self._reply(code, reply, "recipient refused: ")
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, HELO, ...
            return self._reply(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPServerDisconnected as exc:
            return self._result(Outcome.RETRY, f"server disconnected: {exc}")
        except smtplib.SMTPNotSupportedError as exc:  # e.g. no STARTTLS/AUTH: a setup problem
            return self._result(Outcome.PERMANENT, f"server lacks a needed feature: {exc}")
        except smtplib.SMTPException as exc:  # e.g. no AUTH mechanism in common
            return self._result(Outcome.PERMANENT, f"SMTP error: {exc}")
        except ssl.SSLError as exc:  # before OSError: say it was TLS (bad cert, wrong port)
            return self._result(Outcome.RETRY, f"TLS failed with {self._host}:{self._port}: {exc}")
        except ValueError as exc:  # after SSLError (a bad cert is both); e.g. non-ASCII password
            return self._result(Outcome.PERMANENT, f"cannot send: {exc}")
        except OSError as exc:  # refused, timeout, DNS: the server may be back later
            return self._result(Outcome.RETRY, f"cannot reach {self._host}:{self._port}: {exc}")
        return self._result(Outcome.SENT, reply.decode(errors="replace"), str(code))

    def _build(self, message: OutgoingMessage, address: str) -> EmailMessage:
        # A non-ASCII address can only travel as SMTPUTF8, with raw UTF-8 headers.
        utf8 = not (address + self._envelope_from).isascii()
        mail = EmailMessage(policy=_POLICY.clone(utf8=True) if utf8 else _POLICY)
        # Templates may render a subject over several lines; headers cannot hold line breaks.
        mail["Subject"] = " ".join(message.subject.split())
        mail["From"] = self._sender
        local, domain = address.split("@")  # not addr_spec=: it refuses non-ASCII local parts
        mail["To"] = Address(display_name=message.recipient_name, username=local, domain=domain)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = _message_id(message.idempotency_key)
        mail["X-LeadWatch-Idempotency-Key"] = message.idempotency_key
        mail.set_content(message.text)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        return mail

    def _deliver(self, mail: EmailMessage, address: str) -> tuple[int, bytes]:
        """MAIL/RCPT/DATA by hand (not `send_message`) to keep the server's final reply."""
        smtp: smtplib.SMTP
        if self._security == "tls":
            smtp = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self._ssl_context
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if self._security == "starttls":
                smtp.starttls(context=self._ssl_context)
                smtp.ehlo_or_helo_if_needed()  # capabilities (AUTH in particular) change
            if self._username:
                smtp.login(self._username, self._password or "")
            options: list[str] = []
            if not (address + self._envelope_from).isascii():
                if not smtp.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError("SMTPUTF8 needed for a non-ASCII address")
                options = ["SMTPUTF8", "BODY=8BITMIME"]
            code, reply = smtp.mail(self._envelope_from, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, self._envelope_from)
            code, reply = smtp.rcpt(address)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({address: (code, reply)})
            code, reply = smtp.data(mail.as_bytes())
            if code != 250:  # smtplib raises only when DATA itself is refused, not the message
                raise smtplib.SMTPDataError(code, reply)
            with suppress(smtplib.SMTPException, OSError):  # accepted is accepted; QUIT is manners
                smtp.quit()
            return code, reply
        finally:
            smtp.close()

    def _reply(
        self, code: int, reply: bytes | str, prefix: str = "", suffix: str = ""
    ) -> DeliveryResult:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
        outcome = Outcome.RETRY if 400 <= code < 500 else Outcome.PERMANENT
        return self._result(outcome, f"{prefix}{code} {text}{suffix}", str(code))

    def _result(self, outcome: Outcome, detail: str, code: str | None = None) -> DeliveryResult:
        if self._password:  # a server that echoes credentials must not put them in our records
            detail = detail.replace(self._password, "***")
        return DeliveryResult(outcome=outcome, detail=detail, code=code)
