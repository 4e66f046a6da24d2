"""What webhook, Slack and Twilio deliveries share: one guarded POST and one reading of the answer.

Sharing it keeps the channels agreeing on the rules that matter to the dispatcher: which
answers are worth retrying (timeouts, connection failures, 408/425/429/5xx), how long the other
side asked us to wait (Retry-After, capped at an hour), and what a failure detail may contain
(the status and the start of the answer; never request headers, which carry credentials, and
never the URL, which for Slack is itself the credential).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

from leadwatch import __version__
from leadwatch.notifications.channels.base import DeliveryResult, Outcome
from leadwatch.notifications.channels.transport import Transport, TransportError, encode
from leadwatch.notifications.urlguard import Resolver, UnsafeURLError, check_url

USER_AGENT = f"LeadWatch/{__version__}"
RETRY_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER = 3600.0  # a server asking for more than an hour gets an hour
DETAIL_CHARS = 300
READ_LIMIT = 64 * 1024  # the status decides; the body only explains, so read a little of it


def classify_response(
    status_code: int, headers: Mapping[str, str], *, now: datetime | None = None
) -> tuple[Outcome, float | None]:
    """The outcome of one HTTP answer, and the Retry-After delay in seconds when retrying."""
    if 200 <= status_code < 300:
        return Outcome.SENT, None
    if status_code in RETRY_STATUSES or 500 <= status_code < 600:
        return Outcome.RETRY, parse_retry_after(_header(headers, "retry-after"), now=now)
    return Outcome.PERMANENT, None  # other 4xx, and 3xx: redirects are never followed


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds ("7") or an HTTP date, clamped to [0, MAX_RETRY_AFTER]."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def post(
    transport: Transport,
    url: str,
    *,
    allow_private: bool,
    allow_http: bool,
    timeout: float,
    provider_id: Callable[[bytes], str | None] | None = None,
    resolve: Resolver = socket.getaddrinfo,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> DeliveryResult:
    """POST to `url` after the URL guard and say how it went; never raises for a failed send.

    `provider_id` reads the other side's id for the message (e.g. Twilio's SID) from a 2xx
    body. `kwargs` say what to send: `content=` bytes, `json=` a value or `data=` a form, and
    `auth=` (user, password) for basic authentication.
    """
    try:
        check_url(url, allow_private=allow_private, allow_http=allow_http, resolve=resolve)
    except UnsafeURLError as exc:
        outcome = Outcome.RETRY if exc.temporary else Outcome.PERMANENT
        return DeliveryResult(outcome, f"refused: {exc}")
    body, sent_headers = encode(headers=headers, **kwargs)
    try:
        answer = transport.post(url, body=body, headers=sent_headers, timeout=timeout)
    except TransportError as exc:
        if exc.timeout:
            return DeliveryResult(Outcome.RETRY, f"timed out after {timeout:g}s")
        return DeliveryResult(Outcome.RETRY, f"connection failed: {exc}"[:400])
    except ValueError:
        return DeliveryResult(Outcome.PERMANENT, "refused: the URL is not valid")
    status = answer.status
    outcome, retry_after = classify_response(status, answer.headers)
    detail = f"HTTP {status} {answer.reason}".rstrip()
    text = " ".join(answer.body.decode("utf-8", "replace").split())  # one line, whatever came
    if text:
        detail += f": {text[:DETAIL_CHARS]}"
    return DeliveryResult(
        outcome,
        detail,
        code=str(status),
        retry_after=retry_after,
        provider_id=provider_id(answer.body) if provider_id and outcome is Outcome.SENT else None,
    )


class HttpChannel:
    """Holds the connections (see `transport`) and the guard settings."""

    name: str

    def __init__(self, *, timeout: float, allow_private: bool, allow_http: bool) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.allow_http = allow_http
        self._transport = Transport(read_limit=READ_LIMIT)
        self._redact: tuple[str, ...] = ()  # credentials to scrub should a server echo them

    def _post(
        self, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> DeliveryResult:
        result = post(
            self._transport,
            url,
            allow_private=self.allow_private,
            allow_http=self.allow_http,
            timeout=self.timeout,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            **kwargs,
        )
        detail = result.detail
        for secret in filter(None, self._redact):
            detail = detail.replace(secret, "[redacted]")
        return result if detail == result.detail else replace(result, detail=detail)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup in a plain dict of headers."""
    return next((value for key, value in headers.items() if key.lower() == name), None)
