"""Slack: an escalation as a Block Kit message posted to an incoming-webhook URL.

The address is the webhook URL itself (https://hooks.slack.com/services/...), which is also
its credential, so it never appears in a delivery detail. Lead fields come from web forms and
portals, i.e. from strangers: they are escaped so that a customer named `<!channel>` or
`<https://evil|Claim>` cannot ping a whole channel or smuggle in a link.

Slack answers 200 "ok"; 400 invalid_payload, 403 invalid_token, 404 no_service and 410
channel_is_archived are permanent; 429 (with Retry-After) and 5xx are retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leadwatch.config import Settings
from leadwatch.notifications.channels.base import DeliveryResult, OutgoingMessage
from leadwatch.notifications.channels.http import HttpChannel
from leadwatch.notifications.templates import mrkdwn as escape

LEVEL_EMOJI = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
    "low": ":large_blue_circle:",
}
HEADER_CHARS = 150  # Slack's limit for header text
FIELD_CHARS = 2000  # ... and for one section field
FALLBACK_CHARS = 3000


class SlackChannel(HttpChannel):
    name = "slack"

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackChannel:
        return cls(
            timeout=settings.http_timeout_seconds,
            allow_private=settings.allow_private_urls,
            allow_http=settings.allow_http_urls,
        )

    def send(self, message: OutgoingMessage) -> DeliveryResult:
        return self._post(message.address, json=slack_payload(message))


def slack_payload(message: OutgoingMessage) -> dict[str, Any]:
    """The Block Kit body: header, lead fields, top factors, Claim button, plain-text fallback."""
    data = message.data
    emoji = LEVEL_EMOJI.get(str(data.get("level") or "").lower(), ":bell:")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{emoji} {message.subject}"[:HEADER_CHARS]},
        }
    ]
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"[:FIELD_CHARS]}
        for label, value in lead_fields(data)
    ]
    # The text is the rendered Slack template, already mrkdwn (its values escaped there).
    section = {"fields": fields} if fields else {"text": _mrkdwn(message.text)}
    blocks.append({"type": "section", **section})
    factors = [str(factor) for factor in data.get("factors") or ()][:5]
    if factors:
        why = "*Why:* " + " · ".join(escape(factor) for factor in factors)
        blocks.append({"type": "context", "elements": [_mrkdwn(why)]})
    claim_url = data.get("claim_url")
    if claim_url:
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Claim"},
            "url": str(claim_url),
            "style": "primary",
            "action_id": "claim",
        }
        blocks.append({"type": "actions", "elements": [button]})
    fallback = f"{escape(message.subject)}\n{message.text}"[:FALLBACK_CHARS]
    return {"text": fallback, "blocks": blocks}


def lead_fields(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (label, value) pairs shown for a lead, skipping what is unknown."""
    fields = [
        ("Customer", data.get("customer")),
        ("Vehicle", data.get("vehicle")),
        ("Dealership", data.get("dealership")),
        ("Source", data.get("source")),
        ("Waiting", _waiting(data.get("waited_minutes"))),
        ("Chance of sale", _chance(data.get("probability"), data.get("horizon_days"))),
    ]
    return [(label, str(value)) for label, value in fields if value not in (None, "")]


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text[:FALLBACK_CHARS]}


def _waiting(minutes: object) -> str | None:
    if not isinstance(minutes, int | float):
        return None
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _chance(probability: object, horizon_days: object) -> str | None:
    if not isinstance(probability, int | float):
        return None
    return f"{probability:.0%}" + (f" in {horizon_days} days" if horizon_days else "")
