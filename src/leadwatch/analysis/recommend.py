"""Recommendations in plain words, each carrying the figures that back it.

Only what passes the checks is said: a group must be judged on at least the minimum number of
leads and its 95 % interval must lie wholly above or below the overall rate; a speed or
timing finding needs the minimum number of leads behind it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from leadwatch.analysis.conversion import Breakdown, GroupRow, Overall, Rate
from leadwatch.analysis.funnel import Funnel
from leadwatch.analysis.speed import SpeedToLead

Figure = float | int | str

STAGE_WORDS = {
    "created": "creation",
    "contacted": "first contact",
    "appointment": "appointment",
    "test_drive": "test drive",
    "offer": "offer",
    "sold": "sale",
    "delivered": "delivery",
}
_SUBJECT: dict[str, Callable[[str], str]] = {
    "source": lambda name: f"{name} leads",
    "rep": lambda name: f"Leads worked by {name}",
    "vehicle": lambda name: f"Leads for the {name}",
    "dealership": lambda name: f"Leads at {name}",
    "hour": lambda name: f"Leads arriving at {name}-{int(name[:2]) + 1:02d}:00",
    "weekday": lambda name: f"Leads arriving on {name}",
}
_ADVICE = {
    ("source", "below"): "weigh what this source costs per sale and how its leads are worked",
    ("source", "above"): "a source worth more budget and the fastest follow-up",
    ("rep", "below"): "review how these leads are followed up, with a top converter",
    ("rep", "above"): "ask what works here and share it with the team",
    ("vehicle", "below"): "check price, stock and the answers shoppers get on it",
    ("vehicle", "above"): "keep it in stock and in the ads",
    ("dealership", "below"): "compare its follow-up with the other stores",
    ("dealership", "above"): "a store whose way of working is worth copying",
    ("hour", "below"): "check who answers leads at that time",
    ("hour", "above"): "make sure these leads are answered at once",
    ("weekday", "below"): "check the staffing for leads on that day",
    ("weekday", "above"): "make sure these leads are answered at once",
}


@dataclass(frozen=True)
class Recommendation:
    kind: str  # after hours, speed, bottleneck, group, funnel, aged, slow tail
    text: str
    figures: dict[str, Figure]


def percent(value: float | None) -> str:
    """0.043 -> '4.3 %', 0.11 -> '11 %'."""
    if value is None:
        return "-"
    return f"{value * 100:.1f}".removesuffix(".0") + " %"


def duration(minutes: float | None) -> str:
    if minutes is None:
        return "-"
    if minutes < 60:
        return f"{minutes:.0f} min"
    if minutes < 72 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def recommend(
    overall: Overall,
    breakdowns: list[Breakdown],
    speed: SpeedToLead,
    funnel: Funnel,
    *,
    min_group: int,
    limit: int = 10,
) -> list[Recommendation]:
    found = [
        *_speed(speed, min_group),
        *_timings(funnel, min_group, "bottleneck"),
        *_groups(overall, breakdowns, limit=6),
        *_funnel_drop(funnel, min_group),
        *_aged(funnel),
        *_timings(funnel, min_group, "slow tail"),
    ]
    return found[:limit]


def _speed(speed: SpeedToLead, min_group: int) -> list[Recommendation]:
    out = []
    after, business = speed.wait_after_hours, speed.wait_business_hours
    if (
        after.contacted >= min_group
        and after.median_minutes is not None
        and after.median_minutes > 60
    ):
        within15 = next(s for s in speed.contacted_within if s.within_minutes == 15).after_hours
        out.append(
            Recommendation(
                "after hours",
                f"After-hours leads wait a median {duration(after.median_minutes)} for first "
                f"contact (n = {after.contacted:,}), against "
                f"{duration(business.median_minutes)} in business hours; "
                f"{percent(within15.rate)} of them are reached within 15 minutes. Answer them "
                "at once (an evening BDC shift or an instant reply) and call at opening.",
                {
                    "median_minutes_after_hours": after.median_minutes,
                    "n_after_hours": after.contacted,
                    "median_minutes_business_hours": business.median_minutes or "-",
                    "n_business_hours": business.contacted,
                    "share_within_15_min_after_hours": within15.rate or 0.0,
                },
            )
        )
    fast, slow = speed.buckets[0].d30, _slowest(speed, min_group)
    if slow is not None and fast.n >= min_group and _apart(fast, slow[1]):
        name, rate = slow
        out.append(
            Recommendation(
                "speed",
                f"Leads first contacted within 5 minutes convert at {percent(fast.rate)} within "
                f"30 days versus {percent(rate.rate)} when first contact takes {name} "
                f"(n = {fast.n:,} and {rate.n:,}): call new leads at once.",
                {
                    "rate_under_5_min": fast.rate or 0.0,
                    "n_under_5_min": fast.n,
                    "slow_bucket": name,
                    "rate_slow": rate.rate or 0.0,
                    "n_slow": rate.n,
                },
            )
        )
    return out


def _slowest(speed: SpeedToLead, min_group: int) -> tuple[str, Rate] | None:
    """The slowest contacted bucket judged on enough leads."""
    for bucket in reversed(speed.buckets[:-1]):
        if bucket.d30.n >= min_group:
            return bucket.name, bucket.d30
    return None


def _apart(high: Rate, low: Rate) -> bool:
    return high.low is not None and low.high is not None and high.low > low.high


def _timings(funnel: Funnel, min_group: int, status: str) -> list[Recommendation]:
    """Stages whose median (``bottleneck``) or only p90 (``slow tail``) misses the target."""
    out = []
    stages = funnel.stages
    for timing in funnel.stage_times:
        if timing.status != status or timing.reached < min_group:
            continue
        index = stages.index(timing.stage)
        since = (
            "after the lead arrives"
            if index == 1
            else f"after {STAGE_WORDS[stages[index - 1]]} (or the last stage before it)"
        )
        words = STAGE_WORDS[timing.stage]
        target = duration(timing.target_minutes)
        if status == "bottleneck":
            text = (
                f"{words.capitalize()} comes a median {duration(timing.median_minutes)} {since}, "
                f"against a target of {target} (n = {timing.reached:,}; one in ten takes over "
                f"{duration(timing.p90_minutes)})."
            )
        else:
            text = (
                f"One {words} in ten comes over {duration(timing.p90_minutes)} {since}, against "
                f"a target of {target} (median {duration(timing.median_minutes)}, "
                f"n = {timing.reached:,})."
            )
        out.append(
            Recommendation(
                status,
                text,
                {
                    "stage": timing.stage,
                    "median_minutes": timing.median_minutes or 0.0,
                    "p90_minutes": timing.p90_minutes or 0.0,
                    "target_minutes": timing.target_minutes or 0.0,
                    "n": timing.reached,
                },
            )
        )
    return out


def _groups(overall: Overall, breakdowns: list[Breakdown], *, limit: int) -> list[Recommendation]:
    base = overall.d30.rate
    if base is None:
        return []
    found: list[tuple[float, str, GroupRow]] = []
    for table in breakdowns:
        for row in table.rows:
            if row.versus_overall and row.d30.rate is not None:
                weight = row.d30.n * abs(row.d30.rate - base)  # sales more or fewer than usual
                found.append((weight, table.dimension, row))
    found.sort(key=lambda item: -item[0])
    out = []
    for _, dimension, row in found[:limit]:
        rate = row.d30
        subject = _SUBJECT[dimension](row.name) if dimension in _SUBJECT else f"{row.name} leads"
        advice = _ADVICE.get((dimension, row.versus_overall), "")
        out.append(
            Recommendation(
                "group",
                f"{subject} convert at {percent(rate.rate)} within 30 days versus "
                f"{percent(base)} overall (n = {rate.n:,}, 95 % interval "
                f"{percent(rate.low)} to {percent(rate.high)}): {advice}.",
                {
                    "dimension": dimension,
                    "group": row.name,
                    "rate_30d": rate.rate or 0.0,
                    "overall_30d": base,
                    "n": rate.n,
                    "low": rate.low or 0.0,
                    "high": rate.high or 0.0,
                },
            )
        )
    return out


def _funnel_drop(funnel: Funnel, min_group: int) -> list[Recommendation]:
    """The weakest step on the way to a sale, among the mature leads."""
    row = funnel.overall
    last = funnel.stages.index("sold")
    steps = [
        (row.step[k], k)
        for k in range(1, last + 1)
        if row.step[k] is not None and row.reached[k - 1] >= min_group
    ]
    if not steps:
        return []
    rate, k = min(steps, key=lambda item: item[0] or 0.0)
    before, after = STAGE_WORDS[funnel.stages[k - 1]], STAGE_WORDS[funnel.stages[k]]
    return [
        Recommendation(
            "funnel",
            f"The biggest drop on the way to a sale is from {before} to {after}: "
            f"{percent(rate)} of the leads that reach {before} get to {after} "
            f"(n = {row.reached[k - 1]:,}).",
            {
                "from": funnel.stages[k - 1],
                "to": funnel.stages[k],
                "rate": rate or 0.0,
                "n": row.reached[k - 1],
            },
        )
    ]


def _aged(funnel: Funnel) -> list[Recommendation]:
    past_day = funnel.aged_open[1:]
    uncontacted = sum(bucket.uncontacted for bucket in past_day)
    if not uncontacted:
        return []
    past_week = sum(bucket.uncontacted for bucket in funnel.aged_open[3:])
    return [
        Recommendation(
            "aged",
            f"{uncontacted:,} open leads older than a day were never contacted "
            f"({past_week:,} of them older than a week): call them or close them as lost.",
            {"uncontacted_over_1_day": uncontacted, "uncontacted_over_7_days": past_week},
        )
    ]
