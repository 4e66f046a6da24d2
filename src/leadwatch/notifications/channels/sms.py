"""Twilio SMS: an escalation as one text message, plus the pieces of Twilio's status callbacks.

A message is a form POST to Twilio's Messages resource with HTTP basic auth (account SID, auth
token). 201 with a `sid` means Twilio queued it (delivery to the handset is reported later, to
the status callback); 400 with a Twilio error code (21211: invalid To, 21610: recipient opted
out, ...) will not get better by retrying; 429 and 5xx will. Twilio has no idempotency key for
sending, so a retry after a timeout that Twilio did act on sends the text twice: better than a
lost escalation. Phone numbers are checked before any request, so a typo costs nothing.

Twilio signs its callbacks with X-Twilio-Signature (HMAC-SHA1 of the URL plus the sorted form
fields, keyed with the auth token); `check_twilio_signature` lets the callback route refuse
forgeries. The URL must be exactly the public one Twilio called, query string included.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit

from leadwatch.config import Settings
from leadwatch.notifications.channels.base import (
    ChannelNotConfiguredError,
    DeliveryResult,
    Outcome,
    OutgoingMessage,
)
from leadwatch.notifications.channels.http import HttpChannel

E164 = re.compile(r"\+[1-9]\d{6,14}")
BODY_CHARS = 1600  # Twilio's limit for one message (it splits into segments itself)
STATUS_CALLBACK_PATH = "/api/v1/notifications/sms/status"

Params = Mapping[str, str] | Iterable[tuple[str, str]]


def normalize_phone(address: str) -> str | None:
    """The E.164 form of `address` ("+1 (312) 555-0100" -> "+13125550100"), or None."""
    number = re.sub(r"[\s()\-]", "", address)
    return number if E164.fullmatch(number) else None


class TwilioSmsChannel(HttpChannel):
    name = "sms"
    receipts = True  # Twilio's status callbacks name the message by its SID

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str = "https://api.twilio.com",
        status_callback_url: str | None = None,
        timeout: float,
        allow_private: bool,
        allow_http: bool,
    ) -> None:
        super().__init__(timeout=timeout, allow_private=allow_private, allow_http=allow_http)
        self._auth = (account_sid, auth_token)
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._redact = (auth_token, basic)
        self._from = from_number
        self._status_callback_url = status_callback_url
        sid = quote(account_sid, safe="")
        self.messages_url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"

    @classmethod
    def from_settings(
        cls, settings: Settings, *, status_callbacks: bool = False
    ) -> TwilioSmsChannel:
        """The channel the settings describe. `status_callbacks` asks Twilio to report delivery
        to PUBLIC_URL + STATUS_CALLBACK_PATH (only with LEADWATCH_PUBLIC_URL set: Twilio cannot
        reach the default http://127.0.0.1 address)."""
        sid, token, number = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from_number,
        )
        if not (sid and token and number):
            missing = [
                f"LEADWATCH_TWILIO_{name}"
                for name, value in (
                    ("ACCOUNT_SID", sid),
                    ("AUTH_TOKEN", token),
                    ("FROM_NUMBER", number),
                )
                if not value
            ]
            raise ChannelNotConfiguredError(f"SMS is not configured: set {', '.join(missing)}")
        callback = None
        if status_callbacks and settings.public_url:
            callback = settings.public_base_url + STATUS_CALLBACK_PATH
        return cls(
            account_sid=sid,
            auth_token=token.get_secret_value(),
            from_number=number,
            base_url=settings.twilio_base_url,
            status_callback_url=callback,
            timeout=settings.http_timeout_seconds,
            allow_private=settings.allow_private_urls,
            allow_http=settings.allow_http_urls,
        )

    def send(self, message: OutgoingMessage) -> DeliveryResult:
        to = normalize_phone(message.address)
        if to is None:
            return DeliveryResult(
                Outcome.PERMANENT,
                "the address is not a phone number in E.164 form (+, country code, number: "
                "e.g. +13125550100); fix it in the directory",
            )
        text = (
            message.text
            if len(message.text) <= BODY_CHARS
            else message.text[: BODY_CHARS - 1] + "…"
        )
        form = {"To": to, "From": self._from, "Body": text}
        if self._status_callback_url:
            form["StatusCallback"] = self._status_callback_url
        return self._post(self.messages_url, data=form, auth=self._auth, provider_id=_message_sid)


def parse_status_callback(form: Mapping[str, str]) -> dict[str, str | None]:
    """The facts of one Twilio status callback: message sid, status (queued, sent, delivered,
    undelivered, failed, ...), Twilio error code if any, and the recipient number."""
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not status:
        raise ValueError("not a Twilio status callback: MessageSid and MessageStatus missing")
    return {
        "sid": sid,
        "status": status,
        "error_code": form.get("ErrorCode") or None,
        "to": form.get("To") or None,
    }


def twilio_signature(auth_token: str, url: str, params: Params) -> str:
    """X-Twilio-Signature for a request to `url` with form fields `params` (pairs allowed, for
    repeated fields): base64 HMAC-SHA1 of the URL followed by each name+value, sorted."""
    pairs = params.items() if isinstance(params, Mapping) else params
    payload = url + "".join(name + value for name, value in sorted(set(pairs)))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def check_twilio_signature(auth_token: str, url: str, params: Params, signature: str) -> bool:
    """True if `signature` is Twilio's for this request. Like Twilio's own validator, accepts
    the URL with and without its port (proxies add or drop the default one)."""
    pairs = list(params.items() if isinstance(params, Mapping) else params)
    given = signature.encode()
    return any(
        hmac.compare_digest(twilio_signature(auth_token, candidate, pairs).encode(), given)
        for candidate in _with_and_without_port(url)
    )


def _with_and_without_port(url: str) -> list[str]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is None:
        default = 443 if parts.scheme == "https" else 80
        return [url, parts._replace(netloc=f"{parts.netloc}:{default}").geturl()]
    return [url, parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]).geturl()]


def _message_sid(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    sid = payload.get("sid") if isinstance(payload, dict) else None
    return sid if isinstance(sid, str) else None
