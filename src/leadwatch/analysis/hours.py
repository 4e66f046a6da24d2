"""Business hours as masks: was the showroom open when each lead arrived?

Lead times are already on each dealership's own clock, so "open" is a lookup of the local
minute of the week in a 7 x 1440 table built from the dealership's ``WorkingHours``, plus its
holidays: no per-lead call to ``WorkingHours.is_open`` and no time zone arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np

from leadwatch.analysis.timeline import DAY, WEEKDAY_NAMES, Bools, Floats, Ints
from leadwatch.core.calendar import WEEKDAYS, WorkingHours

_EPOCH = date(1970, 1, 1)
_EPOCH_WEEKDAY = _EPOCH.weekday()  # a Thursday
DEFAULT_WEEKLY = {day: ["09:00-20:00"] for day in WEEKDAYS[:6]}  # Mon-Sat 9-20, Sunday closed


def default_hours(timezone: str = "UTC") -> WorkingHours:
    return WorkingHours.from_spec(timezone, DEFAULT_WEEKLY)


@dataclass(frozen=True)
class HoursUsed:
    dealership: str
    hours: str  # e.g. "Mon-Sat 09:00-20:00, Sun closed"
    source: str  # where they came from: "escalation settings", "default", ...


def week_mask(hours: WorkingHours) -> Bools:
    """Open flags by local minute of the week, Monday 00:00 first."""
    mask = np.zeros(7 * int(DAY), dtype=np.bool_)
    for day, intervals in enumerate(hours.weekly):
        for opens, closes in intervals:
            start = opens.hour * 60 + opens.minute
            end = int(DAY) if closes is None else closes.hour * 60 + closes.minute
            mask[day * int(DAY) + start : day * int(DAY) + end] = True
    return mask


def weekday(local_minutes: Floats) -> Ints:
    """0 = Monday, from minutes since 1970 on a local clock."""
    days = np.floor(local_minutes / DAY).astype(np.int64)
    return (days + _EPOCH_WEEKDAY) % 7


def hour(local_minutes: Floats) -> Ints:
    return (np.floor(local_minutes % DAY) // 60).astype(np.int64)


def open_at(local_minutes: Floats, hours: WorkingHours) -> Bools:
    """Whether each local moment falls in ``hours`` (and not on one of its holidays)."""
    days = np.floor(local_minutes / DAY).astype(np.int64)
    slot = ((days + _EPOCH_WEEKDAY) % 7) * int(DAY) + np.floor(local_minutes % DAY).astype(int)
    result: Bools = week_mask(hours)[slot]
    if hours.holidays:
        closed = np.array([(h - _EPOCH).days for h in hours.holidays], dtype=np.int64)
        result &= ~np.isin(days, closed)
    return result


def business_hours(
    created: Floats,
    dealerships: tuple[Ints, list[str]],
    known: Mapping[str, WorkingHours],
    default: WorkingHours,
    source: str,
    default_source: str = "default",
) -> tuple[Bools, list[HoursUsed]]:
    """Per lead, whether it arrived in business hours, judged with its dealership's hours
    (``known``, looked up regardless of case) or ``default``; and which hours were used."""
    codes, names = dealerships
    by_name = {name.casefold(): hours for name, hours in known.items()}
    result = np.zeros(len(created), dtype=np.bool_)
    used = []
    for index, name in enumerate(names):
        hours = by_name.get(name.casefold())
        rows = codes == index
        result[rows] = open_at(created[rows], hours or default)
        used.append(
            HoursUsed(name, describe(hours or default), source if hours else default_source)
        )
    return result, used


def describe(hours: WorkingHours) -> str:
    """Days with the same hours run together: 'Mon-Fri 09:00-20:00, Sat 09:00-18:00, Sun
    closed'; holidays counted at the end."""
    spec = hours.to_spec()["weekly"]
    assert isinstance(spec, dict)
    texts = [", ".join(spec[day]) or "closed" for day in WEEKDAYS]
    parts, start = [], 0
    for index in range(1, 8):
        if index == 7 or texts[index] != texts[start]:
            days = WEEKDAY_NAMES[start]
            if index - 1 > start:
                days += f"-{WEEKDAY_NAMES[index - 1]}"
            parts.append(f"{days} {texts[start]}")
            start = index
    holidays = f", {len(hours.holidays)} holiday(s)" if hours.holidays else ""
    return ", ".join(parts) + holidays
