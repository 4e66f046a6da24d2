"""Conversion rates that respect time, with Wilson intervals, overall and by group.

A lead is judged on its N-day conversion only once its N-day window has closed before the as-of
moment: a lead created five days ago has not failed to sell within 30 days, it is still open.
Counting it as a failure (the naive rate) biases every rate down, most for the groups with the
most recent leads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from leadwatch.analysis.timeline import Bools, Floats, Ints, Timeline, text_time

Z95 = 1.959963984540054  # two-sided 95 %
HORIZONS = (14, 30)
Side = Literal["above", "below", ""]


@dataclass(frozen=True)
class Rate:
    """``count`` of ``n`` leads, as a share with its 95 % Wilson interval (None when n = 0)."""

    n: int
    count: int
    rate: float | None
    low: float | None
    high: float | None

    def versus(self, value: float | None) -> Side:
        """Whether the interval lies wholly above or below ``value``: a difference that is not
        chance at the 95 % level."""
        if value is None or self.low is None or self.high is None:
            return ""
        if self.low > value:
            return "above"
        if self.high < value:
            return "below"
        return ""


def wilson(count: Floats, n: Floats, z: float = Z95) -> tuple[Floats, Floats]:
    """Wilson score interval per element; NaN where n = 0. Unlike the normal approximation it
    stays inside [0, 1] and is honest for small groups and rates near 0 or 1."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.asarray(count, dtype=np.float64) / n
        denominator = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def rate_of(count: int, n: int, z: float = Z95) -> Rate:
    return rates(np.array([count]), np.array([n]), z)[0]


def rates(counts: Floats | Ints, ns: Floats | Ints, z: float = Z95) -> list[Rate]:
    low, high = wilson(np.asarray(counts, dtype=np.float64), np.asarray(ns, dtype=np.float64), z)
    out = []
    for count, n, lo, hi in zip(counts, ns, low, high, strict=True):
        share = float(count) / float(n) if n else None
        out.append(
            Rate(int(n), int(count), _round(share), _round(float(lo)), _round(float(hi)))
            if n
            else Rate(0, 0, None, None, None)
        )
    return out


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


@dataclass(frozen=True)
class Judged:
    """Per lead, for each horizon: whether its window closed, and whether it sold within it."""

    closed: dict[int, Bools]
    sold: dict[int, Bools]

    @classmethod
    def of(cls, timeline: Timeline) -> Judged:
        closed = {days: timeline.window_closed(days) for days in HORIZONS}
        sold = {days: closed[days] & timeline.sold_within(days) for days in HORIZONS}
        return cls(closed, sold)


@dataclass(frozen=True)
class Overall:
    leads: int
    open: int  # neither sold, delivered nor lost by the as-of
    first_created: str
    last_created: str
    d14: Rate
    d30: Rate
    # Sold within 30 days over all leads, the young ones counted as failures: the biased
    # figure a plain count gives, shown so the difference can be seen.
    naive_30d: float | None


@dataclass(frozen=True)
class GroupRow:
    name: str
    leads: int
    d14: Rate
    d30: Rate
    small: bool  # fewer than the minimum judged on 30 days: listed, not ranked
    rank: int | None  # 1 = best 30-day rate among the groups that are not small
    versus_overall: Side  # the 30-day interval wholly above / below the overall rate


@dataclass(frozen=True)
class Breakdown:
    dimension: str
    title: str
    rows: list[GroupRow]


def overall(timeline: Timeline, judged: Judged, z: float = Z95) -> Overall:
    sold30 = timeline.sold_within(30)
    return Overall(
        leads=len(timeline),
        open=int(timeline.still_open().sum()),
        first_created=text_time(float(timeline.created.min())),
        last_created=text_time(float(timeline.created.max())),
        d14=rate_of(int(judged.sold[14].sum()), int(judged.closed[14].sum()), z),
        d30=rate_of(int(judged.sold[30].sum()), int(judged.closed[30].sum()), z),
        naive_30d=_round(float(sold30.mean())) if len(timeline) else None,
    )


def breakdown(
    dimension: str,
    title: str,
    grouping: tuple[Ints, list[str]],
    judged: Judged,
    *,
    overall_30d: float | None,
    min_group: int,
    ordered: bool = False,
    z: float = Z95,
) -> Breakdown:
    """Rates per group. Groups judged on fewer than ``min_group`` leads are flagged small:
    listed (after the others unless ``ordered``) but given no rank and no verdict."""
    codes, names = grouping
    size = len(names)
    leads = np.bincount(codes, minlength=size)
    per_horizon = {
        days: rates(
            np.bincount(codes, weights=judged.sold[days], minlength=size),
            np.bincount(codes, weights=judged.closed[days], minlength=size),
            z,
        )
        for days in HORIZONS
    }
    d30 = per_horizon[30]
    small = [rate.n < min_group for rate in d30]
    ranked = sorted(
        (i for i in range(size) if not small[i]), key=lambda i: (-(d30[i].rate or 0.0), names[i])
    )
    rank = {index: position for position, index in enumerate(ranked, start=1)}
    rows = [
        GroupRow(
            name=names[i],
            leads=int(leads[i]),
            d14=per_horizon[14][i],
            d30=d30[i],
            small=small[i],
            rank=rank.get(i),
            versus_overall="" if small[i] else d30[i].versus(overall_30d),
        )
        for i in range(size)
        if leads[i]
    ]
    if not ordered:
        rows.sort(key=lambda row: (row.rank is None, row.rank or 0, -row.leads, row.name))
    return Breakdown(dimension, title, rows)
