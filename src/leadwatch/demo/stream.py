"""A stream of simulated incoming leads for `leadwatch demo`, so the pages show a live system.

The leads look like the demo history (its stores, reps, vehicles and sources) but are created
now and nobody has called them yet. They go in exactly as a CRM's would: posted to the
server's own JSON API with an API token, so intake, scoring, escalation and delivery all run
for real. Some time later most of them are "called" by their rep (a contacted event through
the API), which stops their escalation the way a showroom would; the rest keep escalating.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from leadwatch.demo.generator import GeneratorConfig, generate_rows

log = logging.getLogger(__name__)
SOURCE_SYSTEM = "demo-stream"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class DemoLeadStream:
    """Posts a simulated lead about every ``every`` seconds (jittered) to ``base_url``.

    ``contact_share`` of the leads are contacted after ``contact_minutes`` (a range);
    ``limit`` stops after that many leads (None: until stopped)."""

    base_url: str
    token: str
    every: float = 20.0
    contact_share: float = 0.6
    contact_minutes: tuple[float, float] = (2.0, 25.0)
    limit: int | None = None
    seed: int | None = None
    clock: Callable[[], datetime] = _utcnow
    posted: list[int] = field(default_factory=list)
    contacted: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._rows = self._shapes()
        self._due: list[tuple[float, int, str | None]] = []  # (monotonic time, lead, rep)
        self._number = 0

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set (or ``limit`` leads were posted and called)."""
        if not self._wait_for_server(stop):
            log.warning("demo stream: the server did not come up; no simulated leads")
            return
        next_lead = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if (self.limit is None or len(self.posted) < self.limit) and now >= next_lead:
                self._post_lead()
                next_lead = now + self.every * self._random.uniform(0.5, 1.5)
            for item in [d for d in self._due if d[0] <= now]:
                self._due.remove(item)
                self._contact(item[1], item[2])
            if self.limit is not None and len(self.posted) >= self.limit and not self._due:
                return
            stop.wait(min(0.5, max(0.01, self.every / 4)))

    def lead(self) -> dict[str, Any]:
        """The next simulated lead, as the JSON API takes it."""
        row = next(self._rows)
        self._number += 1
        price = row.get("vehicle_price")
        return {
            "source_system": SOURCE_SYSTEM,
            "external_id": f"LIVE-{self.clock():%Y%m%d%H%M%S}-{self._number:05d}",
            "dealership": row["dealership"],
            "created_at": self.clock().isoformat(),
            "rep": row["rep"] or None,
            "lead_source": row["lead_source"] or None,
            "vehicle": {
                "year": int(row["vehicle_year"]) if row.get("vehicle_year") else None,
                "make": row["vehicle_make"] or None,
                "model": row["vehicle_model"] or None,
                "trim": row.get("vehicle_trim") or None,
                "price": price or None,
            },
            "customer": {
                "first_name": row["customer_first_name"] or None,
                "last_name": row["customer_last_name"] or None,
                "email": row["customer_email"] or None,
                "phone": row["customer_phone"] or None,
            },
        }

    def _post_lead(self) -> None:
        lead = self.lead()
        answer = self._post("/api/v1/leads", lead)
        if answer is None:
            return
        for stored in answer.get("leads", []):
            if stored.get("outcome") != "imported":
                continue
            lead_id = int(stored["id"])
            self.posted.append(lead_id)
            if self._random.random() < self.contact_share:
                wait = self._random.uniform(*self.contact_minutes) * 60
                self._due.append((time.monotonic() + wait, lead_id, lead["rep"]))

    def _contact(self, lead_id: int, rep: str | None) -> None:
        event = {"type": "contacted", "actor": rep or "demo rep", "note": "called back (demo)"}
        if self._post(f"/api/v1/leads/{lead_id}/events", event) is not None:
            self.contacted.append(lead_id)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        status, body = self._request("POST", path, json.dumps(payload).encode())
        if status >= 300:
            log.warning("demo stream: POST %s answered %s: %s", path, status, body[:200])
            return None
        answer: dict[str, Any] = json.loads(body or b"{}")
        return answer

    def _request(
        self, method: str, path: str, body: bytes | None = None, *, quiet: bool = False
    ) -> tuple[int, bytes]:
        parts = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except OSError as exc:
            if not quiet:
                log.warning("demo stream: %s %s failed: %s", method, path, exc)
            return 599, str(exc).encode()
        finally:
            connection.close()

    def _wait_for_server(self, stop: threading.Event, seconds: float = 60.0) -> bool:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            if self._request("GET", "/health", quiet=True)[0] == 200:
                return True
            stop.wait(0.25)
        return False

    def _shapes(self) -> Iterator[dict[str, str]]:
        """Rows of freshly generated history, used for their shape only (store, rep,
        vehicle, source, customer), over and over."""
        seed = self._random.randrange(1_000_000)
        config = GeneratorConfig(leads=400, seed=seed, end=self.clock())
        rows = [row for row, _truth in generate_rows(config)]
        self._random.shuffle(rows)
        while True:
            yield from rows
