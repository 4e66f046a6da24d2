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
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx

from leadwatch import __version__
from leadwatch.notifications.channels.base import DeliveryResult, Outcome
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
    client: httpx.Client,
    url: str,
    *,
    allow_private: bool,
    allow_http: bool,
    timeout: float,
    provider_id: Callable[[bytes], str | None] | None = None,
    resolve: Resolver = socket.getaddrinfo,
    **kwargs: Any,
) -> DeliveryResult:
    """POST to `url` after the URL guard and say how it went; never raises for a failed send.

    `provider_id` reads the other side's id for the message (e.g. Twilio's SID) from a 2xx
    body. `kwargs` go to `httpx.Client.stream` (json=, content=, data=, headers=, auth=).
    """
    try:
        check_url(url, allow_private=allow_private, allow_http=allow_http, resolve=resolve)
    except UnsafeURLError as exc:
        outcome = Outcome.RETRY if exc.temporary else Outcome.PERMANENT
        return DeliveryResult(outcome, f"refused: {exc}")
    deadline = time.monotonic() + timeout
    try:
        with client.stream(
            "POST", url, timeout=timeout, follow_redirects=False, **kwargs
        ) as response:
            body = _read_some(response, deadline)
    except httpx.TimeoutException as exc:
        return DeliveryResult(Outcome.RETRY, f"timed out after {timeout:g}s ({_name(exc)})")
    except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors
        return DeliveryResult(Outcome.RETRY, f"connection failed: {_name(exc)}: {exc}"[:400])
    except httpx.InvalidURL:
        return DeliveryResult(Outcome.PERMANENT, "refused: the URL is not valid")
    status = response.status_code
    outcome, retry_after = classify_response(status, response.headers)
    detail = f"HTTP {status} {response.reason_phrase}".rstrip()
    text = " ".join(body.decode("utf-8", "replace").split())  # one line, whatever was sent
    if text:
        detail += f": {text[:DETAIL_CHARS]}"
    return DeliveryResult(
        outcome,
        detail,
        code=str(status),
        retry_after=retry_after,
        provider_id=provider_id(body) if provider_id and outcome is Outcome.SENT else None,
    )


class HttpChannel:
    """Holds the httpx client (its own, closed by `close`, or a borrowed one) and the guard."""

    name: str

    def __init__(
        self,
        *,
        timeout: float,
        allow_private: bool,
        allow_http: bool,
        client: httpx.Client | None = None,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.allow_http = allow_http
        self._owns_client = client is None
        self._client = client or httpx.Client(headers={"User-Agent": USER_AGENT})
        self._redact: tuple[str, ...] = ()  # credentials to scrub should a server echo them

    def _post(
        self, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> DeliveryResult:
        result = post(
            self._client,
            url,
            allow_private=self.allow_private,
            allow_http=self.allow_http,
            timeout=self.timeout,
            headers={"User-Agent": USER_AGENT, **(headers or {})},  # borrowed clients too
            **kwargs,
        )
        detail = result.detail
        for secret in filter(None, self._redact):
            detail = detail.replace(secret, "[redacted]")
        return result if detail == result.detail else replace(result, detail=detail)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _read_some(response: httpx.Response, deadline: float) -> bytes:
    """Up to READ_LIMIT bytes of the answer, stopping at the deadline: a hostile endpoint must
    not make us buffer gigabytes or trickle bytes forever once the status is known."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= READ_LIMIT or time.monotonic() > deadline:
                break
    except httpx.TransportError:
        pass  # the status line arrived; a broken body does not change what it said
    return b"".join(chunks)[:READ_LIMIT]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that works for httpx.Headers and plain dicts alike."""
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _name(exc: BaseException) -> str:
    return type(exc).__name__
