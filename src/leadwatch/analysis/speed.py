"""Speed to lead: 30-day conversion by time to first contact, and how many leads are reached
within 5, 15 and 60 minutes, in business hours and after hours.

Each figure judges only leads old enough for it: the share reached within 15 minutes counts
leads at least 15 minutes old, the conversion curve leads whose 30-day window has closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leadwatch.analysis.conversion import Z95, Judged, Rate, rates
from leadwatch.analysis.hours import HoursUsed
from leadwatch.analysis.timeline import Bools, Floats, Timeline

# (name, from, to) in minutes to first contact, [from, to).
BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("< 5 min", 0.0, 5.0),
    ("5-15 min", 5.0, 15.0),
    ("15-60 min", 15.0, 60.0),
    ("1-4 h", 60.0, 240.0),
    ("4-24 h", 240.0, 1440.0),
    ("> 24 h", 1440.0, math.inf),
)
NEVER = "never contacted"
WITHIN = (5, 15, 60)


@dataclass(frozen=True)
class SpeedBucket:
    name: str
    leads: int
    d30: Rate  # of the leads whose 30-day window has closed


@dataclass(frozen=True)
class ContactShare:
    within_minutes: int
    business_hours: Rate  # leads created in business hours, reached within the time
    after_hours: Rate


@dataclass(frozen=True)
class Wait:
    """Time to first contact of the contacted leads; how many were never contacted."""

    contacted: int
    uncontacted: int
    median_minutes: float | None
    p90_minutes: float | None


@dataclass(frozen=True)
class SpeedToLead:
    buckets: list[SpeedBucket]
    contacted_within: list[ContactShare]
    wait_business_hours: Wait
    wait_after_hours: Wait
    hours: list[HoursUsed]


def delay_minutes(timeline: Timeline) -> Floats:
    """Minutes from creation to first contact; NaN if none by the as-of. A contact logged a
    little before the lead (clock skew between systems) counts as immediate."""
    delay: Floats = np.maximum(timeline.first_contact - timeline.created, 0.0)
    return delay


def speed_to_lead(
    timeline: Timeline,
    judged: Judged,
    in_hours: Bools,
    hours_used: list[HoursUsed],
    settled: Bools,
    z: float = Z95,
) -> SpeedToLead:
    delay = delay_minutes(timeline)
    bucket = np.full(len(timeline), len(BUCKETS), dtype=np.int64)  # NEVER unless a contact
    for index, (_, low, high) in enumerate(BUCKETS):
        bucket[(delay >= low) & (delay < high)] = index
    size = len(BUCKETS) + 1
    leads = np.bincount(bucket, minlength=size)
    d30 = rates(
        np.bincount(bucket, weights=judged.sold[30], minlength=size),
        np.bincount(bucket, weights=judged.closed[30], minlength=size),
        z,
    )
    names = [name for name, _, _ in BUCKETS] + [NEVER]
    buckets = [SpeedBucket(names[i], int(leads[i]), d30[i]) for i in range(size)]
    age = timeline.as_of - timeline.created
    shares = []
    for within in WITHIN:
        old_enough = age >= within
        reached = old_enough & (delay <= within)
        counts = [int((reached & side).sum()) for side in (in_hours, ~in_hours)]
        totals = [int((old_enough & side).sum()) for side in (in_hours, ~in_hours)]
        business, after = rates(np.array(counts), np.array(totals), z)
        shares.append(ContactShare(within, business, after))
    return SpeedToLead(
        buckets=buckets,
        contacted_within=shares,
        wait_business_hours=_wait(delay[settled & in_hours]),
        wait_after_hours=_wait(delay[settled & ~in_hours]),
        hours=hours_used,
    )


def _wait(delay: Floats) -> Wait:
    contacted = delay[~np.isnan(delay)]
    if not len(contacted):
        return Wait(0, len(delay), None, None)
    median, p90 = (round(float(v), 1) for v in np.percentile(contacted, [50, 90]))
    return Wait(len(contacted), len(delay) - len(contacted), median, p90)
