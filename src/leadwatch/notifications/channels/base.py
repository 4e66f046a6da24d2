"""The one protocol every channel implements, and the values that cross it.

A channel turns one `OutgoingMessage` into one attempt and says how it went: sent, worth
retrying (timeouts, 5xx, 429, SMTP 4xx), or failed for good (other 4xx, SMTP 5xx, an address
that cannot work). Channels never raise for a failed delivery and never log secrets; the
dispatcher records every attempt and decides what happens next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message for one recipient on one channel, rendered and ready to go."""

    id: int
    idempotency_key: str  # the same on every attempt: receivers drop repeats with it
    channel: str
    recipient: str  # the person's directory key
    recipient_name: str
    address: str  # email address, phone number, Slack webhook URL, webhook URL, or person key
    subject: str
    text: str
    html: str | None = None
    # Structured facts for channels that format their own (Slack blocks, webhook JSON):
    # lead_id, customer, vehicle, dealership, level, probability, factors, claim_url, ...
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Outcome
    detail: str  # what the other side said, or the error; never a credential
    code: str | None = None  # HTTP status or SMTP reply code
    retry_after: float | None = None  # seconds, when the other side asked (Retry-After)
    provider_id: str | None = None  # e.g. the Twilio message SID


class Channel(Protocol):
    """A way to send. A channel whose provider reports back (delivery receipts matched by
    `DeliveryResult.provider_id`) says so with a class attribute ``receipts = True``; the
    dispatcher then stores the provider id at once instead of with its batch's outcomes."""

    name: str

    def send(self, message: OutgoingMessage) -> DeliveryResult: ...


class ChannelNotConfiguredError(RuntimeError):
    """The channel has no credentials or server configured; the message says which setting."""
