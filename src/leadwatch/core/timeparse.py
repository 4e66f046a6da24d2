"""Parsing the date and time forms that CRM exports and ADF documents contain.

Accepted: ISO 8601 (date, date and time, with or without seconds, fractions and offset),
US forms (M/D/YYYY, M/D/YY, M-D-YYYY, with 24-hour or AM/PM times), and the odd offsets seen
in ADF feeds in the wild ("-0500", "-05", "-5:00", " -05:00", "EST", "GMT-05:00", "UTC").
A time without an offset is the dealership's local time. The result is always aware UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_ABBREVIATIONS = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
    "AKST": -9,
    "AKDT": -8,
    "HST": -10,
}

_TIME = (
    r"(?:[T\s]+(?P<hour>\d{1,2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<frac>\d{1,9}))?)?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?"
)
_OFFSET = (
    r"\s*(?:(?P<abbr>UTC|GMT|Z|[ECMP][SD]T|AK[SD]T|HST)?\s*"
    r"(?P<sign>[+-])(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?|(?P<abbr_only>UTC|GMT|Z|[ECMP][SD]T|AK[SD]T|HST))?"
)
_ISO = re.compile(
    r"^\s*(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})" + _TIME + _OFFSET + r"\s*$"
)
_ISO_BASIC = re.compile(
    r"^\s*(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})"
    r"(?:T?(?P<hour>\d{2})(?P<minute>\d{2})(?P<second>\d{2})?(?:[.,](?P<frac>\d{1,9}))?)?"
    r"(?P<ampm>)" + _OFFSET + r"\s*$"
)
_US = re.compile(
    r"^\s*(?P<month>\d{1,2})[/-](?P<day>\d{1,2})[/-](?P<year>\d{4}|\d{2})"
    + _TIME
    + _OFFSET
    + r"\s*$"
)


class DateParseError(ValueError):
    """The text is not a date this parser understands."""


def parse_datetime(text: str, local_tz: tzinfo) -> datetime:
    """Parse ``text`` into an aware UTC datetime; naive values are read in ``local_tz``."""
    value = text.strip()
    if not value:
        raise DateParseError("empty date")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_general(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=local_tz)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise DateParseError(f"date {value!r} is out of range") from None


def _parse_general(value: str) -> datetime:
    for pattern in (_ISO, _US, _ISO_BASIC):
        match = pattern.match(value)
        if match:
            return _build(match, value)
    raise DateParseError(
        f"unrecognised date {value!r}: use ISO 8601 (2024-03-05 14:30) "
        "or US form (03/05/2024 2:30 PM)"
    )


def _build(match: re.Match[str], value: str) -> datetime:
    groups = match.groupdict()
    year = int(groups["year"])
    if len(groups["year"]) == 2:
        year += 2000 if year < 70 else 1900
    hour = int(groups["hour"] or 0)
    minute = int(groups["minute"] or 0)
    second = int(groups["second"] or 0)
    micro = int((groups["frac"] or "0")[:6].ljust(6, "0"))
    ampm = (groups.get("ampm") or "").replace(".", "").upper()
    if ampm:
        if not 1 <= hour <= 12:
            raise DateParseError(f"hour {hour} is not valid with {ampm} in {value!r}")
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    try:
        naive = datetime(
            year, int(groups["month"]), int(groups["day"]), hour, minute, second, micro
        )
    except ValueError as exc:
        raise DateParseError(f"impossible date {value!r}: {exc}") from None
    offset = _offset(groups, value)
    return naive if offset is None else naive.replace(tzinfo=offset)


def _offset(groups: dict[str, str | None], value: str) -> timezone | None:
    if groups.get("sign"):
        hours = int(groups["oh"] or 0)
        minutes = int(groups["om"] or 0)
        if hours > 14 or minutes > 59:
            raise DateParseError(f"offset out of range in {value!r}")
        delta = timedelta(hours=hours, minutes=minutes)
        base = _ABBREVIATIONS.get((groups.get("abbr") or "UTC").upper(), 0)
        sign = -1 if groups["sign"] == "-" else 1
        total = timedelta(hours=base) + sign * delta
        if abs(total) >= timedelta(hours=24):
            raise DateParseError(f"offset out of range in {value!r}")
        return timezone(total)
    abbr = groups.get("abbr_only")
    if abbr:
        return timezone(timedelta(hours=_ABBREVIATIONS[abbr.upper()]))
    return None
