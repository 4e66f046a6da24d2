"""Streaming reader for CRM lead exports in CSV form.

``read_csv_leads`` reads the header eagerly (so a MappingError surfaces before any work starts)
and returns a generator that parses one row at a time: memory stays bounded whatever the file
size. Every row becomes either a ParsedRow or a RejectedRecord listing all of its problems.

The per-row work is the import's hot loop, so column positions and converters are worked out
once from the header (``_RowParser``) and the loop avoids per-row dicts and branching on which
columns exist.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, TextIO

from leadwatch.core.leads import (
    Customer,
    EventType,
    LeadEventIn,
    LeadIn,
    LeadStatus,
    RecordError,
    RejectedRecord,
    Vehicle,
    VehicleInterest,
    status_from_events,
)
from leadwatch.core.timeparse import parse_datetime
from leadwatch.intake.csv_mapping import (
    CANONICAL_FIELDS,
    ColumnMap,
    MappingError,
    resolve_header,
)

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

__all__ = [
    "STAGE_COLUMNS",
    "ParsedRow",
    "is_plausible_email",
    "parse_price",
    "parse_status",
    "read_csv_leads",
    "to_utc",
]


@dataclass(frozen=True, slots=True)
class ParsedRow:
    line: int  # line number in the file where the record starts (header is line 1)
    lead: LeadIn


# How much of the file the delimiter sniffer looks at.
_SNIFF_CHARS = 8192

STAGE_COLUMNS: tuple[tuple[str, EventType], ...] = (
    ("contacted_at", EventType.CONTACTED),
    ("appointment_at", EventType.APPOINTMENT),
    ("test_drive_at", EventType.TEST_DRIVE),
    ("offer_at", EventType.OFFER),
    ("sold_at", EventType.SOLD),
    ("delivered_at", EventType.DELIVERED),
    ("lost_at", EventType.LOST),
)

_DATE_HINT = "use ISO 8601 (2024-03-05 14:30) or US form (03/05/2024 2:30 PM)"


def read_csv_leads(
    stream: TextIO,
    *,
    source_system: str,
    local_tz_for: Callable[[str | None], tzinfo],
    default_dealership: str | None = None,
    user_mapping: dict[str, str] | None = None,
) -> Iterator[ParsedRow | RejectedRecord]:
    """Parse a CRM CSV export; raises MappingError only for an unusable header or empty file.

    Open files with ``newline=""`` so quoted fields keep their line breaks. Naive times are
    read in ``local_tz_for(dealership)``, called once per distinct dealership.
    """
    head = _read_head(stream)
    delimiter = _sniff_delimiter(head)
    reader = csv.reader(_without_nul(itertools.chain(head, stream)), delimiter=delimiter)
    header = _read_header(reader)
    columns = resolve_header(header, user_mapping)
    parser = _RowParser(columns, source_system, local_tz_for, default_dealership, delimiter)
    return _parse_rows(reader, parser, columns.width, delimiter)


def _without_nul(lines: Iterable[str]) -> Iterator[str]:
    """NUL, which no database text column accepts, becomes U+FFFD: one character lost, not
    the record."""
    for line in lines:
        yield line.replace("\x00", "\ufffd") if "\x00" in line else line


def _read_head(stream: TextIO) -> list[str]:
    """The first few KB as whole lines (the stream's own line splitting, so counts stay right)."""
    lines: list[str] = []
    size = 0
    while size < _SNIFF_CHARS:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
        size += len(line)
    if lines and lines[0].startswith("\ufeff"):  # UTF-8 BOM read as text (encoding="utf-8")
        lines[0] = lines[0][1:]
    return lines


def _sniff_delimiter(head: list[str]) -> str:
    """Comma unless the header has none; then ask csv.Sniffer, then count candidates."""
    first = next((line for line in head if line.strip()), "")
    if "," in first or not first:
        return ","
    try:
        sniffed = csv.Sniffer().sniff("".join(head), delimiters=";\t|").delimiter
    except csv.Error:
        sniffed = ""
    if sniffed and sniffed in first:
        return sniffed
    best = max(";\t|", key=first.count)
    return best if first.count(best) else ","


def _read_header(reader: CsvReader) -> list[str]:
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                return row
    except csv.Error as exc:
        raise MappingError(f"cannot read the header row: {exc}") from None
    raise MappingError("file is empty, expected a header row")


def _parse_rows(
    reader: CsvReader, parser: _RowParser, width: int, delimiter: str
) -> Iterator[ParsedRow | RejectedRecord]:
    # The csv reader counts physical lines, so a record starts one line after the previous
    # record ended, even when a quoted field spans several lines.
    last_line = reader.line_num
    while True:
        try:
            for row in reader:
                line = last_line + 1
                last_line = reader.line_num
                if not any(map(str.strip, row)):  # blank line, or only delimiters and spaces
                    continue
                if len(row) == width:
                    yield parser.parse(row, line)
                else:
                    yield _wrong_width(row, line, width, delimiter)
            return
        except csv.Error as exc:
            # The csv module resets after an error, so report the record and carry on.
            line = last_line + 1
            if reader.line_num == last_line:  # no progress: stop rather than loop
                return
            last_line = reader.line_num
            error = RecordError(line, "row", f"not readable as CSV ({exc}): check the quoting")
            yield RejectedRecord(line, "", (error,))


def _wrong_width(row: list[str], line: int, width: int, delimiter: str) -> RejectedRecord:
    message = (
        f"expected {width} columns, got {len(row)}: quote values that contain "
        f"'{_show(delimiter)}' or line breaks, and check for missing or extra columns"
    )
    return RejectedRecord(line, _raw(row, delimiter), (RecordError(line, "row", message),))


def _show(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter


def _raw(row: Iterable[str], delimiter: str) -> str:
    """The row as CSV text again, for the rejects report."""
    out = io.StringIO()
    # Keep the default "\r\n" terminator: the writer quotes fields holding its characters,
    # so values with line breaks come out quoted. Then drop the terminator itself.
    csv.writer(out, delimiter=delimiter).writerow(row)
    return out.getvalue()[:-2]


# --- dates ---------------------------------------------------------------------------------

# The US form CRMs export most ("3/5/2024 2:30 PM", "03/05/2024 14:30:00"): a strict subset of
# what timeparse accepts, parsed here without its general regex. Anything else goes to
# parse_datetime, so results are the same either way (a property test checks it).
_US_COMMON = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))? ?([AP]M)?)?"
)
_fromisoformat = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def to_utc(text: str, local_tz: tzinfo) -> datetime:
    """parse_datetime with fast paths for the common forms; raises ValueError or OverflowError."""
    if "/" in text:  # never ISO: skip fromisoformat's (costly) exception
        parsed = _parse_us_common(text)
        if parsed is None:
            return parse_datetime(text, local_tz)
    else:
        try:
            parsed = _fromisoformat(text)
        except ValueError:
            return parse_datetime(text, local_tz)
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    # Same result as parsed.replace(tzinfo=local_tz).astimezone(UTC) (fold=0 both ways), but
    # datetime.replace is slow enough to matter here; timedelta arithmetic is exact.
    offset = local_tz.utcoffset(parsed)
    if offset is None:
        return parse_datetime(text, local_tz)
    return _EPOCH_UTC + (parsed - _EPOCH - offset)


def _parse_us_common(text: str) -> datetime | None:
    """Naive datetime for the common US form; None for anything else (timeparse decides)."""
    match = _US_COMMON.fullmatch(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, ampm = match.groups()
    hour_n = int(hour or 0)
    if ampm:
        if not 1 <= hour_n <= 12:
            return None
        hour_n = hour_n % 12 + (12 if ampm == "PM" else 0)
    return datetime(int(year), int(month), int(day), hour_n, int(minute or 0), int(second or 0))


# --- statuses ------------------------------------------------------------------------------

_STATUS_WORDS: dict[str, LeadStatus] = {
    **{status.value.replace("_", ""): status for status in LeadStatus},
    **dict.fromkeys(("open", "fresh", "unworked"), LeadStatus.NEW),
    **dict.fromkeys(
        ("inprogress", "working", "active", "engaged", "followup", "pending"), LeadStatus.CONTACTED
    ),
    **dict.fromkeys(("appt", "apptset", "appointmentset", "scheduled"), LeadStatus.APPOINTMENT),
    **dict.fromkeys(("demo", "demoed", "testdriven"), LeadStatus.TEST_DRIVE),
    **dict.fromkeys(("offered", "proposal", "quote", "quoted", "negotiating"), LeadStatus.OFFER),
    **dict.fromkeys(("won", "closedwon", "dealclosed"), LeadStatus.SOLD),
    **dict.fromkeys(("dead", "closedlost", "notinterested", "declined"), LeadStatus.LOST),
}
_STATUS_IGNORED = re.compile(r"[\s_\-]+")
_STATUS_HINT = (
    "use New, Contacted, Appointment, Test Drive, Offer, Sold, Delivered or Lost, "
    "or leave it empty to derive it from the stage dates"
)


def parse_status(text: str) -> LeadStatus | None:
    """A CRM status word as a LeadStatus ("In Progress" -> contacted); None if unknown."""
    return _STATUS_WORDS.get(_STATUS_IGNORED.sub("", text).casefold())


# --- vehicles and customers ----------------------------------------------------------------

_VEHICLE_PARTS = ("year", "make", "model", "trim", "stock", "vin", "price", "condition")
_CUSTOMER_PARTS = ("first_name", "last_name", "name", "email", "phone")
_YEAR = re.compile(r"\d{4}", re.ASCII)
_YEAR_RANGE = range(1900, 2101)
_PRICE = re.compile(r"\$? *(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?", re.ASCII)
_CONDITIONS = {
    **dict.fromkeys(("n", "new"), "new"),
    **dict.fromkeys(("u", "used", "pre-owned", "preowned", "cpo", "certified"), "used"),
}
_NO_CUSTOMER = Customer()  # frozen, so one instance can serve every row without customer data
_ONE_DAY = timedelta(days=1)


def parse_price(text: str) -> Decimal | None:
    """ "$32,500.00" or "32500" as a Decimal; None if it is not a price."""
    match = _PRICE.fullmatch(text)
    if match is None:
        return None
    return Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))


def is_plausible_email(text: str) -> bool:
    """One @, something before it, a dot inside the domain, no spaces."""
    local, _, domain = text.partition("@")
    return bool(local) and "@" not in domain and "." in domain[1:-1] and len(text.split()) == 1


class _RowParser:
    """Turns one CSV row into a lead; column positions are resolved once, at construction.

    Columns the file lacks point at a sentinel empty cell appended to each row, so the hot
    path fetches cells with prebuilt itemgetters instead of checking which columns exist.
    """

    __slots__ = (
        "texts", "vehicle_cells", "customer_cells", "has_vehicle", "has_customer", "stages",
        "extras", "label", "default_source", "default_dealer", "local_tz_for", "tz_cache",
        "delimiter",
    )  # fmt: skip

    def __init__(
        self,
        columns: ColumnMap,
        source_system: str,
        local_tz_for: Callable[[str | None], tzinfo],
        default_dealership: str | None,
        delimiter: str,
    ) -> None:
        absent = columns.width  # index of the sentinel cell

        def at(*fields: str) -> list[int]:
            return [absent if (i := columns.index(f)) is None else i for f in fields]

        self.texts = itemgetter(
            *at("lead_id", "source_system", "dealership", "created_at", "rep", "lead_source")
            + at("status", "comments")
        )
        vehicle = at(*(f"vehicle_{name}" for name in _VEHICLE_PARTS))
        self.vehicle_cells = itemgetter(*vehicle)
        self.has_vehicle = any(i != absent for i in vehicle)
        customer = at(*(f"customer_{name}" for name in _CUSTOMER_PARTS))
        self.customer_cells = itemgetter(*customer)
        self.has_customer = any(i != absent for i in customer)
        # Only the stage columns this file has: (column index, event type, field name).
        stages = [(at(field)[0], event, field) for field, event in STAGE_COLUMNS]
        self.stages = tuple(stage for stage in stages if stage[0] != absent)
        self.extras = columns.extras
        self.label = {field: columns.label(field) for field in CANONICAL_FIELDS}
        self.default_source = source_system
        self.default_dealer = default_dealership
        self.local_tz_for = local_tz_for
        self.tz_cache: dict[str | None, tzinfo] = {}
        self.delimiter = delimiter

    def parse(self, row: list[str], line: int) -> ParsedRow | RejectedRecord:
        """One row of the header's width; every problem found goes into the rejection."""
        row.append("")  # the sentinel cell for absent columns
        lead_id, source, dealer, created_text, rep, lead_source, status_text, comments = map(
            str.strip, self.texts(row)
        )
        errors: list[tuple[str, str]] = []
        if not lead_id:
            errors.append(("lead_id", f"{self.label['lead_id']} is empty: every lead needs its id"))
        dealership = dealer or self.default_dealer
        tz = self.tz_cache.get(dealership)
        if tz is None:
            tz = self.tz_cache[dealership] = self.local_tz_for(dealership)

        created, events = self._events(row, created_text, tz, errors)
        status = parse_status(status_text) if status_text else status_from_events(events)
        if status is None:
            self._problem(errors, "status", status_text, f"is unknown: {_STATUS_HINT}")
        vehicles = self._vehicles(row, errors) if self.has_vehicle else ()
        customer = self._customer(row, errors) if self.has_customer else _NO_CUSTOMER

        if errors or created is None or status is None:
            del row[-1]
            found = tuple(RecordError(line, field, message) for field, message in errors)
            return RejectedRecord(line, _raw(row, self.delimiter), found)
        extra = {key: v for i, key in self.extras if (v := row[i].strip())} if self.extras else {}
        # Positional arguments: measurably cheaper than keywords here, and mypy checks the types.
        lead = LeadIn(
            source or self.default_source,
            lead_id,
            created,
            dealership,
            rep or None,
            lead_source or None,
            vehicles,
            customer,
            status,
            comments or None,
            tuple(events),
            extra,
        )
        return ParsedRow(line, lead)

    def _time(
        self, text: str, tz: tzinfo, field: str, errors: list[tuple[str, str]]
    ) -> datetime | None:
        try:
            return to_utc(text, tz)
        except (ValueError, OverflowError):  # OverflowError: years 1 and 9999 near the edges
            self._problem(errors, field, text, f"is not a date: {_DATE_HINT}")
            return None

    def _problem(self, errors: list[tuple[str, str]], field: str, value: str, what: str) -> None:
        errors.append((field, f"{self.label[field]} '{value}' {what}"))

    def _events(
        self, row: list[str], created_text: str, tz: tzinfo, errors: list[tuple[str, str]]
    ) -> tuple[datetime | None, list[LeadEventIn]]:
        """created_at, and the events: CREATED plus one per filled stage column."""
        if created_text:
            created = self._time(created_text, tz, "created_at", errors)
        else:
            created = None
            errors.append(("created_at", f"{self.label['created_at']} is empty: {_DATE_HINT}"))
        events = [] if created is None else [LeadEventIn(EventType.CREATED, created)]
        for index, event, field in self.stages:
            text = row[index].strip()
            if not text:
                continue
            when = self._time(text, tz, field, errors)
            if when is None or created is None:
                continue
            if when < created:
                # A bare date ("03/05/2024", <= 10 chars in every accepted form) means "that
                # day": on the day the lead came in it is not earlier, so use created_at.
                if len(text) <= 10 and when + _ONE_DAY > created:
                    when = created
                else:
                    what = f"is before created_at '{created_text}': check both dates"
                    self._problem(errors, field, text, what)
                    continue
            events.append(LeadEventIn(event, when))
        return created, events

    def _vehicles(self, row: list[str], errors: list[tuple[str, str]]) -> tuple[Vehicle, ...]:
        year_text, make, model, trim, stock, vin, price_text, condition = map(
            str.strip, self.vehicle_cells(row)
        )
        if not (year_text or make or model or trim or stock or vin or price_text or condition):
            return ()
        year = int(year_text) if _YEAR.fullmatch(year_text) else None
        if year_text and year not in _YEAR_RANGE:
            self._problem(errors, "vehicle_year", year_text, "is not a model year (1900-2100)")
        price = parse_price(price_text) if price_text else None
        if price_text and price is None:
            self._problem(errors, "vehicle_price", price_text, "is not a price: use $32,500.00")
        condition = condition.lower()
        vehicle = Vehicle(
            VehicleInterest.BUY,
            year,
            make or None,
            model or None,
            trim or None,
            stock or None,
            vin or None,
            price,
            _CONDITIONS.get(condition, condition) or None,
        )
        return (vehicle,)

    def _customer(self, row: list[str], errors: list[tuple[str, str]]) -> Customer:
        first, last, name, email, phone = map(str.strip, self.customer_cells(row))
        if not (first or last or name or email or phone):
            return _NO_CUSTOMER
        if email and not is_plausible_email(email):
            what = "is not an email address: expected name@example.com"
            self._problem(errors, "customer_email", email, what)
        return Customer(
            first or None,
            last or None,
            name or None,
            (email,) if email else (),
            (phone,) if phone else (),
        )
