"""Working-hours calendar: worked examples a dealer would recognise, DST in Chicago, validation
messages, and properties checked against a brute-force scan on random calendars and instants."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadwatch.core.calendar import WEEKDAYS, CalendarError, WorkingHours

CHICAGO = ZoneInfo("America/Chicago")
TICK = timedelta(microseconds=1)
DEALER = {
    **{day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    "sat": ["09:00-13:00", "14:00-17:00"],
}


def chicago(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=CHICAGO, fold=fold)  # type: ignore[misc]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def dealer(holidays: tuple[str, ...] = ("2026-12-25",)) -> WorkingHours:
    return WorkingHours.from_spec("America/Chicago", DEALER, holidays)


def chicago_sundays(spec: str) -> WorkingHours:
    return WorkingHours.from_spec("America/Chicago", {"sun": [spec]})


# Worked examples -------------------------------------------------------------------------------


def test_friday_evening_is_closed_until_saturday_morning() -> None:
    opening = dealer().next_opening(chicago(2026, 1, 16, 18, 30))
    assert opening == chicago(2026, 1, 17, 9, 0)
    assert opening is not None and opening.tzinfo is UTC


def test_intervals_include_the_opening_minute_and_exclude_the_closing_one() -> None:
    hours = dealer()
    assert not hours.is_open(chicago(2026, 1, 16, 8, 59, 59))
    assert hours.is_open(chicago(2026, 1, 16, 9, 0))
    assert hours.is_open(chicago(2026, 1, 16, 17, 59, 59, 999999))
    assert not hours.is_open(chicago(2026, 1, 16, 18, 0))


def test_sunday_is_closed_and_saturday_evening_waits_for_monday() -> None:
    hours = dealer()
    assert not hours.is_open(chicago(2026, 1, 18, 12, 0))
    assert hours.next_opening(chicago(2026, 1, 17, 17, 0)) == chicago(2026, 1, 19, 9, 0)


def test_lunch_break_and_closing_before_it() -> None:
    hours = dealer()
    assert hours.next_opening(chicago(2026, 1, 17, 13, 30)) == chicago(2026, 1, 17, 14, 0)
    assert hours.next_closing(chicago(2026, 1, 17, 10, 0)) == chicago(2026, 1, 17, 13, 0)


def test_christmas_is_skipped() -> None:
    assert dealer().next_opening(chicago(2026, 12, 24, 18, 30)) == chicago(2026, 12, 26, 9, 0)
    assert not dealer().is_open(chicago(2026, 12, 25, 10, 0))


def test_holidays_are_local_dates() -> None:
    hours = dataclasses.replace(
        WorkingHours.always_open("America/Chicago"), holidays={date(2026, 12, 25)}
    )
    assert hours.is_open(utc(2026, 12, 25, 3, 0))  # still 21:00 on the 24th in Chicago
    assert not hours.is_open(utc(2026, 12, 25, 7, 0))
    assert hours.next_opening(utc(2026, 12, 25, 7, 0)) == chicago(2026, 12, 26, 0, 0)
    assert hours.next_closing(utc(2026, 12, 24, 12, 0)) == chicago(2026, 12, 25, 0, 0)


def test_adjacent_intervals_are_one_open_period_also_across_midnight() -> None:
    split = WorkingHours.from_spec("UTC", {"mon": ["09:00-12:00", "12:00-18:00"]})
    assert split.next_closing(utc(2026, 1, 19, 10, 0)) == utc(2026, 1, 19, 18, 0)
    late = WorkingHours.from_spec("UTC", {"fri": ["18:00-24:00"], "sat": ["00:00-02:00"]})
    assert late.next_closing(utc(2026, 1, 16, 20, 0)) == utc(2026, 1, 17, 2, 0)
    assert late.is_open(utc(2026, 1, 17, 0, 0))


def test_always_open_never_closes() -> None:
    hours = WorkingHours.always_open("America/Chicago")
    assert hours == WorkingHours.from_spec(
        "America/Chicago", dict.fromkeys(WEEKDAYS, ["00:00-24:00"])
    )
    for at in (chicago(2026, 3, 8, 3, 0), chicago(2026, 11, 1, 1, 30, fold=1), utc(2026, 6, 1)):
        assert hours.is_open(at)
        # Compared in UTC: Python never equates instants across zones in a repeated hour.
        assert hours.next_opening(at) == at.astimezone(UTC)
        assert hours.next_closing(at) is None


def test_no_hours_or_only_holidays_never_opens() -> None:
    assert WorkingHours.from_spec("UTC", {}).next_opening(utc(2026, 1, 1)) is None
    mondays = [date(2026, 1, 5) + timedelta(weeks=k) for k in range(60)]
    blocked = WorkingHours.from_spec("UTC", {"mon": ["09:00-10:00"]}, mondays)
    assert blocked.next_opening(utc(2026, 1, 1)) is None
    assert blocked.next_closing(utc(2026, 1, 1)) is None


@pytest.mark.parametrize("method", ["is_open", "next_opening", "next_closing"])
def test_naive_instants_are_refused(method: str) -> None:
    with pytest.raises(ValueError, match="naive"):
        getattr(dealer(), method)(datetime(2026, 1, 16, 12, 0))


# DST in Chicago: 2026-03-08 02:00 -> 03:00 and 2026-11-01 02:00 -> 01:00, both Sundays -------


def test_opening_inside_the_spring_gap_happens_when_the_clock_lands_after_it() -> None:
    opening = chicago_sundays("02:30-18:00").next_opening(chicago(2026, 3, 8, 0, 0))
    assert opening == utc(2026, 3, 8, 8, 0) == chicago(2026, 3, 8, 3, 0)


def test_an_interval_wholly_inside_the_spring_gap_does_not_open_that_day() -> None:
    opening = chicago_sundays("02:00-02:45").next_opening(chicago(2026, 3, 8, 0, 0))
    assert opening == chicago(2026, 3, 15, 2, 0)


def test_closing_inside_the_spring_gap_happens_at_the_gap() -> None:
    closing = chicago_sundays("00:00-02:30").next_closing(chicago(2026, 3, 8, 1, 0))
    assert closing == utc(2026, 3, 8, 8, 0)


def test_an_opening_in_the_repeated_fall_hour_uses_the_first_pass() -> None:
    opening = chicago_sundays("01:30-18:00").next_opening(chicago(2026, 11, 1, 0, 0))
    assert opening == utc(2026, 11, 1, 6, 30) == chicago(2026, 11, 1, 1, 30).astimezone(UTC)


def test_the_second_pass_of_the_fall_hour_reopens_what_the_first_closed() -> None:
    hours = chicago_sundays("00:00-01:30")
    assert hours.next_closing(chicago(2026, 11, 1, 0, 30)) == utc(2026, 11, 1, 6, 30)
    assert not hours.is_open(utc(2026, 11, 1, 6, 45))
    assert hours.next_opening(utc(2026, 11, 1, 6, 45)) == utc(2026, 11, 1, 7, 0)
    assert hours.next_closing(utc(2026, 11, 1, 7, 0)) == utc(2026, 11, 1, 7, 30)


def test_weekend_over_the_spring_change_opens_monday_in_daylight_time() -> None:
    assert dealer().next_opening(chicago(2026, 3, 7, 17, 0)) == utc(2026, 3, 9, 14, 0)


# Specs and validation --------------------------------------------------------------------------


def test_to_spec_lists_every_day_and_sorted_holidays() -> None:
    hours = WorkingHours.from_spec(
        "America/Chicago",
        {"sat": ["14:00-17:00", "9:00-13:00"], "sun": ["18:00-24:00"]},
        [date(2026, 12, 25), "2026-01-01"],
    )
    assert hours.to_spec() == {
        "timezone": "America/Chicago",
        "weekly": {
            **{day: [] for day in WEEKDAYS},
            "sat": ["09:00-13:00", "14:00-17:00"],
            "sun": ["18:00-24:00"],
        },
        "holidays": ["2026-01-01", "2026-12-25"],
    }
    assert WorkingHours.from_spec(**hours.to_spec()) == hours  # type: ignore[arg-type]


OVERNIGHT = (
    "working_hours.tue[1]: '18:00-09:00' closes before it opens; split overnight hours at "
    "midnight: '18:00-24:00' on tue and '00:00-09:00' on wed"
)


@pytest.mark.parametrize(
    ("weekly", "holidays", "message"),
    [
        ({"tue": ["08:00-09:00", "18:00-09:00"]}, (), OVERNIGHT),
        ({"sun": ["22:00-02:00"]}, (), "'00:00-02:00' on mon"),
        ({"funday": ["09:00-18:00"]}, (), "working_hours.funday: unknown day 'funday'"),
        ({"mon": ["9-5"]}, (), "working_hours.mon[0]: '9-5' is not 'HH:MM-HH:MM'"),
        ({"mon": [900]}, (), "working_hours.mon[0]: 900 is not 'HH:MM-HH:MM'"),
        ({"mon": "09:00-18:00"}, (), "working_hours.mon: expected a list"),
        ({"mon": ["24:00-24:00"]}, (), "working_hours.mon[0]: '24:00-24:00' opens at 24:00"),
        ({"mon": ["09:00-24:30"]}, (), "working_hours.mon[0]: '09:00-24:30' has a time outside"),
        ({"mon": ["08:60-09:00"]}, (), "working_hours.mon[0]: '08:60-09:00' has a time outside"),
        ({"wed": ["09:00-09:00"]}, (), "working_hours.wed[0]: '09:00-09:00' opens and closes"),
        ({"thu": ["18:00-00:00"]}, (), "working_hours.thu[0]: '18:00-00:00' closes at 00:00"),
        (
            {"sat": ["12:00-17:00", "09:00-13:00"]},
            (),
            "working_hours.sat[0]: '12:00-17:00' overlaps '09:00-13:00' (working_hours.sat[1])",
        ),
        ({}, ["2026-12-25", "2026-13-01"], "working_hours.holidays[1]: '2026-13-01' is not a date"),
        ({}, "2026-12-25", "working_hours.holidays: expected a list"),
    ],
)
def test_errors_name_the_field(weekly: object, holidays: object, message: str) -> None:
    with pytest.raises(CalendarError) as caught:
        WorkingHours.from_spec("America/Chicago", weekly, holidays)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("zone", ["Mars/Base", "", "America", "../etc/passwd", "america/chicago"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(CalendarError, match=r"^working_hours\.timezone: unknown time zone"):
        WorkingHours.from_spec(zone, DEALER)


def test_the_constructor_validates_and_sorts_too() -> None:
    noon, two = time(12), time(14)
    week = (((two, None), (noon, two)),) + ((),) * 6
    assert WorkingHours("UTC", week).weekly[0] == ((noon, two), (two, None))
    with pytest.raises(CalendarError, match=r"^working_hours\.weekly: expected 7 days"):
        WorkingHours("UTC", week[:6])
    with pytest.raises(CalendarError, match=r"^working_hours\.mon\[0\]: .* whole-minute"):
        WorkingHours("UTC", (((time(9, 0, 30), None),),) + ((),) * 6)
    with pytest.raises(CalendarError, match=r"^working_hours\.holidays: .* is not a date"):
        WorkingHours("UTC", ((),) * 7, frozenset({datetime(2026, 12, 25)}))


# Properties ------------------------------------------------------------------------------------

ZONES = (
    "America/Chicago",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",  # changes at midnight: some local dates start at 01:00
    "America/Havana",
    "Europe/London",
    "Europe/Dublin",  # negative DST in tzdata
    "Australia/Lord_Howe",  # 30-minute DST
    "Pacific/Chatham",  # +12:45 / +13:45
    "Asia/Kolkata",
    "UTC",
)
START, END = utc(2025, 1, 1), utc(2027, 12, 31)
WINDOW = timedelta(days=2)  # how far the brute-force minute scan looks


@lru_cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """Hours (UTC) in which the zone's offset changes: where the interesting cases are."""
    tz, found = ZoneInfo(zone), []
    hours = (START + timedelta(hours=k) for k in range(int((END - START) / timedelta(hours=1))))
    for before, after in pairwise(hours):
        if before.astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset():
            found.append(before)
    return tuple(found) or (START,)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def as_intervals(points: list[int]) -> list[str]:
    """Pairs of sorted boundaries never overlap; equal neighbours make adjacent intervals."""
    ordered = sorted(points)
    pairs = zip(ordered[::2], ordered[1::2], strict=False)  # an odd last boundary is dropped
    return [f"{hhmm(a)}-{hhmm(b)}" for a, b in pairs if a < b]


boundary = st.integers(0, 48).map(lambda half_hours: half_hours * 30) | st.integers(0, 1440)
day_hours = st.lists(boundary, max_size=6).map(as_intervals)
weekly_specs = st.fixed_dictionaries({}, optional=dict.fromkeys(WEEKDAYS, day_hours)) | st.just(
    dict.fromkeys(WEEKDAYS, ["00:00-24:00"])
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[WorkingHours, datetime]:
    zone = draw(st.sampled_from(ZONES))
    near = st.sampled_from(transitions(zone)).map(lambda hour: hour - timedelta(hours=4))
    base = draw(near | st.datetimes(START.replace(tzinfo=None), END.replace(tzinfo=None)))
    at = base.replace(tzinfo=UTC) + draw(st.timedeltas(timedelta(0), timedelta(hours=8)))
    local_day = at.astimezone(ZoneInfo(zone)).date()
    holidays = draw(st.lists(st.integers(-3, 10).map(lambda k: local_day + timedelta(days=k))))
    return WorkingHours.from_spec(zone, draw(weekly_specs), holidays), at


def minute_steps(start: datetime, stop: datetime) -> Iterator[datetime]:
    """Whole UTC minutes strictly after start and before stop, at most WINDOW of them."""
    step = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while step < min(stop, start + WINDOW):
        yield step
        step += timedelta(minutes=1)


def boundaries(hours: WorkingHours, start: datetime, stop: datetime) -> Iterator[datetime]:
    """Every instant whose wall clock shows an interval boundary (both passes of repeated
    times), strictly between start and stop: an independent sample of where mistakes hide."""
    zone = ZoneInfo(hours.timezone)
    day = start.astimezone(zone).date() - timedelta(days=1)
    while datetime.combine(day, time(), UTC) < min(stop, start + timedelta(days=420)) + WINDOW:
        for opens, closes in hours.weekly[day.weekday()]:
            for wall in (opens, closes or time()):
                for fold in (0, 1):
                    instant = datetime.combine(day, wall, zone).replace(fold=fold).astimezone(UTC)
                    if start < instant < stop:
                        yield instant
        day += timedelta(days=1)


@settings(deadline=None)
@given(scenarios())
def test_next_opening_is_the_first_open_instant(case: tuple[WorkingHours, datetime]) -> None:
    hours, at = case
    opening = hours.next_opening(at)
    if hours.is_open(at):
        assert opening == at
    limit = at + timedelta(days=400) if opening is None else opening
    assert not any(hours.is_open(step) for step in minute_steps(at, limit))
    assert not any(hours.is_open(step) for step in boundaries(hours, at, limit))
    if opening is not None:
        assert opening.tzinfo is UTC and opening >= at
        assert hours.is_open(opening)
        assert opening == at or not hours.is_open(opening - TICK)


@settings(deadline=None)
@given(scenarios())
def test_next_closing_ends_the_current_open_period(case: tuple[WorkingHours, datetime]) -> None:
    hours, at = case
    closing = hours.next_closing(at)
    if not hours.is_open(at):
        assert closing is None
        return
    limit = at + timedelta(days=400) if closing is None else closing
    assert all(hours.is_open(step) for step in minute_steps(at, limit))
    assert all(hours.is_open(step) for step in boundaries(hours, at, limit))
    if closing is not None:
        assert closing.tzinfo is UTC and closing > at
        assert not hours.is_open(closing)
        assert hours.is_open(closing - TICK)
        opening = hours.next_opening(closing)
        assert opening is None or opening > closing


@given(st.sampled_from(ZONES), weekly_specs, st.lists(st.dates(), max_size=4))
def test_specs_round_trip(zone: str, weekly: dict[str, list[str]], holidays: list[date]) -> None:
    hours = WorkingHours.from_spec(zone, weekly, holidays)
    spec = hours.to_spec()
    again = WorkingHours.from_spec(**spec)  # type: ignore[arg-type]
    assert again == hours and hash(again) == hash(hours)
    assert again.to_spec() == spec
