"""The stage funnel per cohort, the time each stage takes, bottlenecks against targets, and the
open leads by age.

A lead reaches a stage when it has that stage's time or any later one: a shopper who buys
without a recorded test drive passed the test drive stage. So the count at each stage is never
above the one before it and no rate exceeds 100 %.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from leadwatch.analysis.timeline import DAY, STAGES, Bools, Floats, Ints, Timeline

# Default targets, in minutes from the stage reached before: first contact within 15 minutes,
# an appointment within 2 days of it, and so on.
DEFAULT_TARGETS: dict[str, float] = {
    "contacted": 15.0,
    "appointment": 2 * DAY,
    "test_drive": 3 * DAY,
    "offer": 2 * DAY,
    "sold": 7 * DAY,
    "delivered": 4 * DAY,
}
AGE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("< 1 day", 0.0, 1.0),
    ("1-3 days", 1.0, 3.0),
    ("3-7 days", 3.0, 7.0),
    ("7-14 days", 7.0, 14.0),
    ("14-30 days", 14.0, 30.0),
    ("30-90 days", 30.0, 90.0),
    ("> 90 days", 90.0, math.inf),
)
Cohort = Literal["month", "week"]
Status = Literal["ok", "bottleneck", "slow tail", "no target", "no data"]


@dataclass(frozen=True)
class FunnelRow:
    cohort: str
    leads: int
    complete: bool  # every lead's 30-day window has closed: the figures are final
    reached: list[int]  # per stage of STAGES
    share: list[float | None]  # reached / leads
    step: list[float | None]  # reached / reached at the stage before (None for the first)


@dataclass(frozen=True)
class StageTime:
    stage: str
    reached: int  # leads with a time for this stage (in the basis)
    median_minutes: float | None  # from the last stage reached before it
    p90_minutes: float | None
    target_minutes: float | None
    status: Status  # bottleneck: the median misses the target; slow tail: only the p90 does
    out_of_order: int  # recorded before the stage before it: left out of the figures


@dataclass(frozen=True)
class AgeBucket:
    age: str
    open: int
    uncontacted: int


@dataclass(frozen=True)
class Funnel:
    stages: list[str]
    basis: str  # which leads the overall row and the stage times use
    overall: FunnelRow
    cohorts: list[FunnelRow]
    stage_times: list[StageTime]
    aged_open: list[AgeBucket]


def reached(stages: Floats) -> Bools:
    """(leads, stages): True where the lead has that stage's time or a later one."""
    seen = ~np.isnan(stages)
    out: Bools = np.logical_or.accumulate(seen[:, ::-1], axis=1)[:, ::-1]
    return out


def funnel(
    timeline: Timeline,
    settled: Bools,
    basis: str,
    *,
    cohort: Cohort = "month",
    targets: Mapping[str, float] = DEFAULT_TARGETS,
) -> Funnel:
    passed = reached(timeline.stages)
    closed = timeline.window_closed(30)
    codes, names = cohorts(timeline.created, cohort)
    size = len(names)
    counts = np.stack(
        [np.bincount(codes, weights=passed[:, k], minlength=size) for k in range(len(STAGES))],
        axis=1,
    ).astype(np.int64)
    still_young = np.bincount(codes, weights=~closed, minlength=size)
    rows = [_row(names[i], counts[i], complete=bool(still_young[i] == 0)) for i in range(size)]
    overall = _row("overall", passed[settled].sum(axis=0), complete=bool(closed[settled].all()))
    return Funnel(
        stages=list(STAGES),
        basis=basis,
        overall=overall,
        cohorts=rows,
        stage_times=stage_times(timeline.stages[settled], targets),
        aged_open=aged_open(timeline),
    )


def cohorts(created: Floats, cohort: Cohort) -> tuple[Ints, list[str]]:
    """Cohort codes by creation month ('2025-03') or week (its Monday, '2025-03-03')."""
    stamps = (created * 60.0).astype("datetime64[s]")
    if cohort == "month":
        periods = stamps.astype("datetime64[M]")
    else:
        days = stamps.astype("datetime64[D]")
        monday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
        periods = days - monday.astype("timedelta64[D]")
    unique, codes = np.unique(periods, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), [str(period) for period in unique]


def _row(name: str, counts: Ints, *, complete: bool) -> FunnelRow:
    total = int(counts[0])
    share = [round(int(c) / total, 4) if total else None for c in counts]
    step: list[float | None] = [None]
    for before, after in zip(counts[:-1], counts[1:], strict=True):
        step.append(round(int(after) / int(before), 4) if before else None)
    return FunnelRow(name, total, complete, [int(c) for c in counts], share, step)


def stage_times(stages: Floats, targets: Mapping[str, float]) -> list[StageTime]:
    """Per stage after creation, the time from the last stage reached before it."""
    out = []
    previous = stages[:, 0].copy()
    for index, stage in enumerate(STAGES[1:], start=1):
        current = stages[:, index]
        has = ~np.isnan(current)
        gap = current - previous
        valid = gap[has & (gap >= 0)]
        target = targets.get(stage)
        median = p90 = None
        if len(valid):
            median, p90 = (round(float(v), 1) for v in np.percentile(valid, [50, 90]))
        out.append(
            StageTime(
                stage=stage,
                reached=int(has.sum()),
                median_minutes=median,
                p90_minutes=p90,
                target_minutes=target,
                status=_status(median, p90, target),
                out_of_order=int((has & (gap < 0)).sum()),
            )
        )
        previous = np.where(has, current, previous)
    return out


def _status(median: float | None, p90: float | None, target: float | None) -> Status:
    if median is None or p90 is None:
        return "no data"
    if target is None:
        return "no target"
    if median > target:
        return "bottleneck"
    return "slow tail" if p90 > target else "ok"


def aged_open(timeline: Timeline) -> list[AgeBucket]:
    """Leads neither sold nor lost by the as-of, by age, with how many were never contacted."""
    still_open = timeline.still_open()
    age = (timeline.as_of - timeline.created) / DAY
    uncontacted = np.isnan(timeline.first_contact)
    out = []
    for name, low, high in AGE_BUCKETS:
        rows = still_open & (age >= low) & (age < high)
        out.append(AgeBucket(name, int(rows.sum()), int((rows & uncontacted).sum())))
    return out
