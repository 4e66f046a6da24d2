"""Signed JSON webhooks: an escalation as one POST to the customer's own system (CRM, BDC tool).

Every body is signed, `X-LeadWatch-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
so the receiver knows it came from this installation, and the timestamp inside the signature
lets it refuse replays. `Idempotency-Key` (and the body's `id`) is the same on every attempt of a
message, because a retry after a timeout may deliver twice. The secret is
LEADWATCH_WEBHOOK_SIGNING_SECRET, or one derived from the installation key; the receiver uses
`bytes.fromhex(signing_secret_hex(settings))` either way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from leadwatch.config import Settings
from leadwatch.notifications.channels.base import DeliveryResult, OutgoingMessage
from leadwatch.notifications.channels.http import HttpChannel
from leadwatch.prediction.artifacts import installation_key

EVENT_TYPE = "escalation.notify"


def verify_signature(
    secret: bytes, timestamp: str, body: bytes, header: str, *, now: float, tolerance: float = 300
) -> bool:
    """Receiver side: True if `header` (X-LeadWatch-Signature) signs `timestamp` + `body` with
    `secret` and the timestamp (X-LeadWatch-Timestamp) is within `tolerance` seconds of `now`.
    Use the raw request body, before any JSON parsing."""
    try:
        if abs(now - int(timestamp)) > tolerance:
            return False  # stale (or from the future): a replay, or a badly wrong clock
    except ValueError:
        return False
    return hmac.compare_digest(header.strip().encode(), sign(secret, timestamp, body).encode())


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-LeadWatch-Signature value for `body` sent at `timestamp`."""
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signing_secret(settings: Settings) -> bytes:
    """LEADWATCH_WEBHOOK_SIGNING_SECRET, or a key derived from the installation key (so every
    machine sharing LEADWATCH_SECRET_KEY signs alike, and the raw key itself never leaves)."""
    if settings.webhook_signing_secret is not None:
        return settings.webhook_signing_secret.get_secret_value().encode()
    key = installation_key(settings.home, settings.secret_key_value)
    return hmac.new(key, b"webhook-signing", hashlib.sha256).digest()


def signing_secret_hex(settings: Settings) -> str:
    """The secret as hex, for the person setting up the receiver (`bytes.fromhex` it there)."""
    return signing_secret(settings).hex()


class WebhookChannel(HttpChannel):
    name = "webhook"

    def __init__(
        self,
        *,
        secret: bytes,
        timeout: float,
        allow_private: bool,
        allow_http: bool,
    ) -> None:
        if not secret:
            raise ValueError("the webhook signing secret is empty")
        super().__init__(timeout=timeout, allow_private=allow_private, allow_http=allow_http)
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookChannel:
        return cls(
            secret=signing_secret(settings),
            timeout=settings.http_timeout_seconds,
            allow_private=settings.allow_private_urls,
            allow_http=settings.allow_http_urls,
        )

    def send(self, message: OutgoingMessage) -> DeliveryResult:
        event = {
            "id": message.idempotency_key,
            "type": EVENT_TYPE,
            "created_at": _now_iso(),
            "subject": message.subject,
            "text": message.text,
            "data": dict(message.data),
            "recipient": {"key": message.recipient, "name": message.recipient_name},
        }
        return self._send_event(message.address, event)

    def send_test_event(self, address: str) -> DeliveryResult:
        """Send a signed `test` event, so whoever sets up the receiver can check it end to end."""
        event = {
            "id": f"test-{uuid.uuid4().hex}",
            "type": "test",
            "created_at": _now_iso(),
            "text": "LeadWatch test event: if the signature verifies, the webhook is set up.",
        }
        return self._send_event(address, event)

    def _send_event(self, address: str, event: dict[str, Any]) -> DeliveryResult:
        # default=str: a date or Decimal in `data` must not turn a delivery into a crash.
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(event["id"]),
            "X-LeadWatch-Timestamp": timestamp,
            "X-LeadWatch-Signature": sign(self._secret, timestamp, body),
        }
        return self._post(address, content=body, headers=headers)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
