"""Dealership working hours: whether a person can be reached at an instant, and when next.

Dealers state hours in wall-clock time of their own zone, while the rest of the system holds
aware instants, so everything here follows from one rule: an instant is open when its local
wall-clock time lies in an interval of its local date (open <= t < close) and that date is not
a holiday. DST falls out of the rule rather than being special-cased: an opening inside a
spring-forward gap happens as the clock lands after the gap, and in a fall-back hour the first
pass opens first while the second pass may reopen what the first closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Interval = tuple[time, time | None]
_DAY = 1440  # minutes
_HORIZON = timedelta(days=400)
# Offsets are taken to change at most once per probe step (tzdata never does more in a day),
# so a daily probe plus bisection finds every transition without zoneinfo internals.
_PROBE = timedelta(days=1)
_RUN = re.compile(rb"\x01+")
_SPEC = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*-\s*([0-9]{1,2}):([0-9]{2})\s*")


class CalendarError(ValueError):
    """A ValueError, so input validation can catch it as bad input; the message starts with
    the field path so a settings form can point at the offending entry."""


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Weekly hours plus closed dates; immutable so one instance can be shared by workers."""

    timezone: str
    weekly: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()
    # Derived once: is_open runs in hot loops and must be a conversion plus a byte lookup.
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _open: bytes = field(init=False, repr=False, compare=False)
    _runs: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The constructor is public, so it validates too; sorting here makes equality canonical.
        zone = _zone(self.timezone)
        if len(self.weekly) != 7:
            raise CalendarError(f"working_hours.weekly: expected 7 days, got {len(self.weekly)}")
        days = [_check_day(index, intervals) for index, intervals in enumerate(self.weekly)]
        holidays = frozenset(self.holidays)
        for holiday in holidays:
            if isinstance(holiday, datetime) or not isinstance(holiday, date):
                raise CalendarError(f"working_hours.holidays: {holiday!r} is not a date")
        flags = [bytearray(_DAY) for _ in days]
        for day_flags, day in zip(flags, days, strict=True):
            for start, end, _ in day:
                day_flags[start:end] = b"\x01" * (end - start)
        # Runs of open minutes: adjacent intervals merge, so a 12:00 hand-over is no closing.
        runs = tuple(tuple(run.span() for run in _RUN.finditer(day)) for day in flags)
        weekly = tuple(tuple(interval for _, _, interval in day) for day in days)
        object.__setattr__(self, "weekly", weekly)
        object.__setattr__(self, "holidays", holidays)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_open", b"".join(flags))
        object.__setattr__(self, "_runs", runs)

    @classmethod
    def from_spec(
        cls,
        timezone: str,
        weekly: Mapping[str, Sequence[str]],
        holidays: Iterable[str | date] = (),
    ) -> WorkingHours:
        """Build from the JSON-friendly form that settings files and forms carry."""
        for key in weekly:
            if key not in WEEKDAYS:
                raise CalendarError(
                    f"working_hours.{key}: unknown day {key!r}; days are {', '.join(WEEKDAYS)}"
                )
        days = []
        for day in WEEKDAYS:
            texts = weekly.get(day, ())
            if isinstance(texts, str):
                raise CalendarError(f"working_hours.{day}: expected a list such as [{texts!r}]")
            days.append(tuple(_parse(f"working_hours.{day}[{i}]", t) for i, t in enumerate(texts)))
        return cls(timezone, tuple(days), _parse_holidays(holidays))

    @classmethod
    def always_open(cls, timezone: str = "UTC") -> WorkingHours:
        """For dealerships that escalate around the clock, so callers need no special case."""
        return cls(timezone, (((time(0), None),),) * 7)

    def to_spec(self) -> dict[str, object]:
        """The from_spec form, listing all seven days so a stored spec shows closed days."""
        return {
            "timezone": self.timezone,
            "weekly": {
                day: [_text(i) for i in ivs] for day, ivs in zip(WEEKDAYS, self.weekly, strict=True)
            },
            "holidays": [day.isoformat() for day in sorted(self.holidays)],
        }

    def is_open(self, at: datetime) -> bool:
        """Naive datetimes are refused: guessing their zone is how leads get paged at 3 a.m.
        Inlined, and utcoffset() skipped for tzinfos that always answer it, because escalation
        sweeps call this in hot loops."""
        tz = at.tzinfo
        if tz is None or (tz is not UTC and type(tz) is not ZoneInfo and at.utcoffset() is None):
            raise ValueError(f"{at!r} is naive; working hours need an aware datetime")
        local = at.astimezone(self._zone)
        if self.holidays and local.date() in self.holidays:
            return False
        return self._open[local.weekday() * _DAY + local.hour * 60 + local.minute] == 1

    def next_opening(self, at: datetime) -> datetime | None:
        """The earliest open instant at or after `at`, in UTC (so callers can store it as is);
        None if there is none within the horizon."""
        now = _utc(at)
        if not any(self._runs):
            return None
        # Fast path: the next opening within a week, with the same UTC offset as now. Offset
        # changes are months apart, so an equal offset at both ends means none in between.
        local = now.astimezone(self._zone)
        wall = local.replace(tzinfo=None)
        found = self._next_open_wall(wall, wall + _FAST_SPAN)
        if found is not None:
            candidate = now + (found - wall)
            if candidate.astimezone(self._zone).utcoffset() == local.utcoffset():
                return candidate
        return self._walk(now, self._next_open_wall)

    def next_closing(self, at: datetime) -> datetime | None:
        """When the open period holding `at` ends, in UTC; None if closed at `at` or open past
        the horizon. Adjacent intervals, also across midnight, are one period: no hand-over."""
        now = _utc(at)
        return self._walk(now, self._run_end_wall) if self._open_wall(self._wall(now)) else None

    def _walk(
        self, now: datetime, search: Callable[[datetime, datetime], datetime | None]
    ) -> datetime | None:
        """Runs a wall-clock search span by span of constant UTC offset: inside a span wall time
        runs with real time, so the search is right unless a transition comes first."""
        limit = now + _HORIZON
        while True:
            wall = self._wall(now)
            found = search(wall, wall + (limit - now))
            candidate = None if found is None else now + (found - wall)
            shift = self._next_transition(
                now, limit if candidate is None else min(candidate, limit)
            )
            if shift is None:
                return candidate if candidate is not None and candidate <= limit else None
            now = shift

    def _open_wall(self, local: datetime) -> bool:
        if self.holidays and local.date() in self.holidays:
            return False
        return self._open[local.weekday() * _DAY + local.hour * 60 + local.minute] == 1

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self._zone).replace(tzinfo=None)

    def _next_open_wall(self, wall: datetime, until: datetime) -> datetime | None:
        midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
        into = (wall - midnight).total_seconds() / 60  # minutes into the first day
        weekday, days = midnight.weekday(), 0
        while True:
            day = midnight + timedelta(days=days) if days else midnight
            if day > until:
                return None
            if not self.holidays or day.date() not in self.holidays:
                for start, end in self._runs[(weekday + days) % 7]:
                    if days:
                        return day + timedelta(minutes=start)
                    if into < end:
                        return wall if into >= start else day + timedelta(minutes=start)
            days += 1

    def _run_end_wall(self, wall: datetime, until: datetime) -> datetime | None:
        if not self._open_wall(wall):
            return wall  # after a transition: the new wall time is outside the hours
        midnight = datetime.combine(wall.date(), time())
        minute = wall.hour * 60 + wall.minute
        end = next(end for start, end in self._runs[wall.weekday()] if start <= minute < end)
        while end == _DAY:
            following = midnight + timedelta(days=1)
            if following > until:
                return None
            runs = self._runs[following.weekday()]
            if following.date() in self.holidays or not runs or runs[0][0] != 0:
                return following
            midnight, end = following, runs[0][1]
        return midnight + timedelta(minutes=end)

    def _next_transition(self, start: datetime, bound: datetime) -> datetime | None:
        """First instant in (start, bound] whose UTC offset differs from start's."""
        offset = start.astimezone(self._zone).utcoffset()
        low = start
        while low < bound:
            high = min(low + _PROBE, bound)
            if high.astimezone(self._zone).utcoffset() != offset:
                while high - low > timedelta(seconds=1):
                    middle = low + (high - low) / 2
                    if middle.astimezone(self._zone).utcoffset() == offset:
                        low = middle
                    else:
                        high = middle
                # tzdata transitions fall on whole seconds: the first one after `low`.
                return low.replace(microsecond=0) + timedelta(seconds=1)
            low = high
        return None


_FAST_SPAN = timedelta(days=7)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} is naive; working hours need an aware datetime")
    return at.astimezone(UTC)


def _zone(name: object) -> ZoneInfo:
    try:
        if isinstance(name, str) and name:
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    raise CalendarError(f"working_hours.timezone: unknown time zone {name!r}")


def _check_day(index: int, intervals: Sequence[Interval]) -> list[tuple[int, int, Interval]]:
    """Sorted (start, end, interval) in minutes, refusing what a dealer could not have meant."""
    day, checked = WEEKDAYS[index], []
    for position, (opens, closes) in enumerate(intervals):
        where = f"working_hours.{day}[{position}]"
        start, end = _minute(where, opens), _DAY if closes is None else _minute(where, closes)
        text = f"{_hhmm(start)}-{_hhmm(end)}"
        if end == 0:
            hint = f"write '{_hhmm(start)}-24:00' to close at the end of the day"
            raise CalendarError(f"{where}: {text!r} closes at 00:00; {hint}")
        if start == end:
            raise CalendarError(f"{where}: {text!r} opens and closes at the same time")
        if start > end:
            raise CalendarError(
                f"{where}: {text!r} closes before it opens; split overnight hours at midnight: "
                f"'{_hhmm(start)}-24:00' on {day} and '00:00-{_hhmm(end)}' on "
                f"{WEEKDAYS[(index + 1) % 7]}"
            )
        checked.append((start, end, position, (opens, closes)))
    checked.sort(key=lambda item: item[:3])
    for before, after in pairwise(checked):
        if after[0] < before[1]:
            raise CalendarError(
                f"working_hours.{day}[{after[2]}]: {_text(after[3])!r} overlaps "
                f"{_text(before[3])!r} (working_hours.{day}[{before[2]}])"
            )
    return [(start, end, interval) for start, end, _, interval in checked]


def _minute(where: str, value: object) -> int:
    if not isinstance(value, time) or value.tzinfo is not None or value.second or value.microsecond:
        raise CalendarError(f"{where}: {value!r} is not a whole-minute local time")
    return value.hour * 60 + value.minute


def _parse(where: str, text: object) -> Interval:
    match = _SPEC.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise CalendarError(f"{where}: {text!r} is not 'HH:MM-HH:MM'")
    open_h, open_m, close_h, close_m = (int(part) for part in match.groups())
    if (open_h, open_m) == (24, 0):
        raise CalendarError(f"{where}: {text!r} opens at 24:00; 24:00 can only close an interval")
    if open_h > 23 or open_m > 59 or close_m > 59 or close_h > 24 or (close_h == 24 and close_m):
        raise CalendarError(f"{where}: {text!r} has a time outside 00:00-24:00")
    return time(open_h, open_m), None if close_h == 24 else time(close_h, close_m)


def _parse_holidays(values: Iterable[str | date]) -> frozenset[date]:
    if isinstance(values, str):
        raise CalendarError(f"working_hours.holidays: expected a list such as [{values!r}]")
    days = set()
    for index, value in enumerate(values):
        try:
            days.add(date.fromisoformat(value) if isinstance(value, str) else value)
        except ValueError:
            raise CalendarError(
                f"working_hours.holidays[{index}]: {value!r} is not a date 'YYYY-MM-DD'"
            ) from None
    return frozenset(days)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _text(interval: Interval) -> str:
    opens, closes = interval
    return f"{opens:%H:%M}-{'24:00' if closes is None else f'{closes:%H:%M}'}"
