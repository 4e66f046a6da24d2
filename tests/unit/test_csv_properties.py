"""Property tests for the CSV lead reader: round trips, rejections, and never crashing."""

from __future__ import annotations

import csv
import io
import re
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from leadwatch.core.leads import EventType, RejectedRecord
from leadwatch.core.timeparse import parse_datetime
from leadwatch.intake.csv_mapping import MappingError, resolve_header
from leadwatch.intake.csv_reader import ParsedRow, read_csv_leads, to_utc

ZONES: dict[str, tzinfo] = {
    "Chicago Motors": ZoneInfo("America/Chicago"),
    "Mumbai Motors": ZoneInfo("Asia/Kolkata"),  # a half-hour offset
    "Fixed Motors": timezone(timedelta(hours=-7)),
    "": UTC,  # no dealership column value: default_dealership is None
}


def zone_for(dealership: str | None) -> tzinfo:
    return ZONES[dealership or ""]


HEADER = [
    "LeadID",
    "Dealer",
    "CreatedDate",
    "FirstContactDate",
    "SoldDate",
    "SalesRep",
    "Notes",
    "Make",
    "Year",
    "VehiclePrice",
    "Email",
    "Status",
]

# Date formats a CRM might use, with the precision each keeps.
DATE_FORMATS = [
    ("%Y-%m-%d %H:%M:%S", "second"),
    ("%Y-%m-%dT%H:%M", "minute"),
    ("%m/%d/%Y %I:%M %p", "minute"),
    ("%m/%d/%Y %H:%M:%S", "second"),
    ("%m/%d/%Y", "day"),
    ("%Y-%m-%d", "day"),
]

# Any text, including what CSV must quote: delimiters, quotes and line breaks.
csv_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(",;\t\"'\r\n \x00"), st.characters(exclude_categories=["Cs"])
    )
)
naive_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31))


def truncate(value: datetime, precision: str) -> datetime:
    if precision == "day":
        return value.replace(hour=0, minute=0, second=0, microsecond=0)
    if precision == "minute":
        return value.replace(second=0, microsecond=0)
    return value.replace(microsecond=0)


@dataclass
class Row:
    cells: list[str]
    created: datetime  # expected UTC
    stages: list[tuple[EventType, datetime, bool]]  # (type, expected UTC, bare date?)
    bad_field: str | None = None
    expected: dict[str, object] = field(default_factory=dict)


@st.composite
def stamp(draw: st.DrawFn, earliest: datetime, zone: tzinfo) -> tuple[str, datetime, bool]:
    """A time no earlier than ``earliest`` (naive local), as text and as expected UTC."""
    when = earliest + draw(st.timedeltas(timedelta(0), timedelta(days=60)))
    fmt, precision = draw(st.sampled_from(DATE_FORMATS))
    text = when.strftime(fmt)
    local = truncate(when, precision)
    return text, local.replace(tzinfo=zone).astimezone(UTC), precision == "day"


@st.composite
def rows(draw: st.DrawFn) -> Row:
    dealer = draw(st.sampled_from(sorted(ZONES)))
    zone = ZONES[dealer]
    created_naive = draw(naive_times)
    fmt, precision = draw(st.sampled_from(DATE_FORMATS))
    created_text = created_naive.strftime(fmt)
    created = truncate(created_naive, precision).replace(tzinfo=zone).astimezone(UTC)

    stages: list[tuple[EventType, datetime, bool]] = []
    stage_texts = []
    for event in (EventType.CONTACTED, EventType.SOLD):
        if draw(st.booleans()):
            text, when, bare = draw(stamp(created_naive, zone))
            stages.append((event, when, bare))
            stage_texts.append(text)
        else:
            stage_texts.append("")

    lead_id = "L" + draw(csv_text).strip()
    rep, notes, make = draw(csv_text), draw(csv_text), draw(csv_text)
    year = draw(st.integers(1900, 2100))
    cents = draw(st.integers(0, 10**9))
    price = Decimal(cents) / 100
    price_text = draw(st.sampled_from([f"{price:.2f}", f"${price:,.2f}", f"{price:,.2f}"]))
    local_part = draw(st.text(string.ascii_letters + string.digits + "._+", min_size=1))
    email = f"{local_part}@{draw(st.text(string.ascii_lowercase, min_size=1))}.com"
    cells = [
        lead_id,
        dealer,
        created_text,
        *stage_texts,
        rep,
        notes,
        make,
        str(year),
        price_text,
        email,
        "",  # status: derived
    ]
    expected: dict[str, object] = {
        "external_id": lead_id,
        "dealership": dealer or None,
        "rep": rep.strip() or None,
        "comments": notes.strip() or None,
        "make": make.strip() or None,
        "year": year,
        "price": price,
        "email": email,
    }
    return Row(cells, created, stages, expected=expected)


# How to spoil each checked field, and what the reader must then blame.
BAD_VALUES: dict[str, tuple[int, st.SearchStrategy[str]]] = {
    "created_at": (2, st.sampled_from(["13/45/2024", "2024-02-30", "yesterday", "3/5/2024 25:00"])),
    "vehicle_year": (
        8,
        st.one_of(
            st.integers(-5000, 1899).map(str),
            st.integers(2101, 99999).map(str),
            st.text(string.ascii_letters, min_size=1),
        ),
    ),
    "vehicle_price": (
        9,
        st.one_of(
            st.text(string.ascii_letters, min_size=1),
            st.sampled_from(["1.2.3", "12,34", "-5", "$", "1e5", "NaN"]),
        ),
    ),
    "customer_email": (
        10,
        st.one_of(
            st.text(string.ascii_letters, min_size=1),
            st.sampled_from(["a@b", "a@@b.com", "@b.com", "a b@c.com"]),
        ),
    ),
    "status": (11, st.text(string.ascii_letters, min_size=1).map(lambda s: f"x{s}?")),
}


@st.composite
def maybe_spoiled_rows(draw: st.DrawFn) -> Row:
    row = draw(rows())
    if draw(st.integers(0, 2)) == 0:  # a third of the rows get one bad value
        row.bad_field = draw(st.sampled_from(sorted(BAD_VALUES)))
        index, values = BAD_VALUES[row.bad_field]
        row.cells[index] = draw(values)
    return row


def line_breaks(text: str) -> int:
    return len(re.findall(r"\r\n|\r|\n", text))


STAGE_FIELDS = {EventType.CONTACTED: "contacted_at", EventType.SOLD: "sold_at"}


def expected_outcome(row: Row) -> tuple[list[tuple[EventType, datetime]], set[str]]:
    """The events the reader should produce, and the fields it should blame."""
    if row.bad_field == "created_at":  # no creation time: stages cannot be checked against it
        return [], {"created_at"}
    bad = {row.bad_field} if row.bad_field else set()
    events = [(EventType.CREATED, row.created)]
    for event, when, bare in row.stages:
        if when < row.created:
            # Formatting dropped precision (or a DST gap reordered times): a bare date on
            # the creation day counts as the creation time, anything else is an error.
            if bare and when + timedelta(days=1) > row.created:
                when = row.created
            else:
                bad.add(STAGE_FIELDS[event])
                continue
        events.append((event, when))
    return events, bad


@settings(max_examples=300, deadline=None)
@given(st.lists(maybe_spoiled_rows(), min_size=1, max_size=5))
def test_written_rows_parse_back(generated: list[Row]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    line = 2
    starts = []
    for row in generated:
        before = out.tell()
        writer.writerow(row.cells)
        starts.append(line)
        line += line_breaks(out.getvalue()[before:])

    results = list(
        read_csv_leads(
            io.StringIO(out.getvalue(), newline=""),
            source_system="prop",
            local_tz_for=zone_for,
        )
    )
    assert len(results) == len(generated)
    for row, start, result in zip(generated, starts, results, strict=True):
        events, bad = expected_outcome(row)
        if bad:
            assert isinstance(result, RejectedRecord), (bad, result)
            assert result.row == start
            assert {e.field for e in result.errors} == bad
            assert next(csv.reader(io.StringIO(result.raw, newline=""))) == [
                _nul_free(cell) for cell in row.cells
            ]
            continue
        assert isinstance(result, ParsedRow), result
        assert result.line == start
        lead = result.lead
        assert [(e.type, e.occurred_at) for e in lead.events] == events
        assert lead.created_at == row.created
        assert lead.external_id == _nul_free(row.expected["external_id"])
        assert lead.dealership == _nul_free(row.expected["dealership"])
        assert lead.rep == _nul_free(row.expected["rep"])
        assert lead.comments == _nul_free(row.expected["comments"])
        assert lead.source_system == "prop"
        vehicle = lead.vehicle
        assert vehicle is not None
        assert vehicle.make == _nul_free(row.expected["make"])
        assert vehicle.year == row.expected["year"]
        assert vehicle.price == row.expected["price"]
        assert lead.customer.email == _nul_free(row.expected["email"])


READER_HEADER = "LeadID,CreatedDate,contacted_date,Year,VehiclePrice,Email,Status,Notes\n"


@settings(max_examples=300, deadline=None)
@given(csv_text, st.sampled_from(["", READER_HEADER, "LeadID;Created;Notes\r\n", "\ufeff"]))
def test_arbitrary_text_only_ever_raises_mapping_error(text: str, prefix: str) -> None:
    try:
        results = list(
            read_csv_leads(
                io.StringIO(prefix + text, newline=""),
                source_system="fuzz",
                local_tz_for=lambda _: ZoneInfo("America/Chicago"),
            )
        )
    except MappingError:
        return
    for result in results:
        assert isinstance(result, ParsedRow | RejectedRecord)
        if isinstance(result, RejectedRecord):
            assert result.errors and all(e.row == result.row for e in result.errors)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(csv_text, max_size=8),
    st.dictionaries(
        csv_text, st.sampled_from(["lead_id", "created_at", "rep", "extra", "nope"]), max_size=3
    ),
)
def test_any_header_resolves_or_raises_mapping_error(
    header: list[str], mapping: dict[str, str]
) -> None:
    try:
        columns = resolve_header(header, mapping)
    except MappingError:
        return
    assert columns.index("lead_id") is not None and columns.index("created_at") is not None
    mapped = set(columns.fields.values())
    extras = {index for index, _ in columns.extras}
    assert mapped.isdisjoint(extras)
    assert mapped | extras == set(range(len(header)))


# The reader's fast date paths must agree with timeparse exactly, errors included.
us_dates = st.builds(
    "{}/{}/{}{}".format,
    st.integers(0, 13).map(str),
    st.integers(0, 32).map(lambda d: f"{d:02d}"),
    st.sampled_from(["2024", "1999", "24", "0001", "9999"]),
    st.one_of(
        st.just(""),
        st.builds(
            " {}:{}{}{}".format,
            st.integers(0, 25),
            st.sampled_from(["00", "05", "30", "59", "60"]),
            st.sampled_from(["", ":07", ":61"]),
            st.sampled_from(["", " AM", " PM", "PM", " pm", " EST"]),
        ),
    ),
)
iso_dates = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda d: d.isoformat(sep=" ")
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(us_dates, iso_dates, csv_text),
    st.sampled_from([ZoneInfo("America/Chicago"), ZoneInfo("Asia/Kolkata"), UTC]),
)
def test_fast_date_paths_agree_with_timeparse(text: str, zone: tzinfo) -> None:
    try:
        expected: datetime | type[Exception] = parse_datetime(text, zone)
    except (ValueError, OverflowError):
        expected = ValueError
    try:
        got: datetime | type[Exception] = to_utc(text, zone)
    except (ValueError, OverflowError):
        got = ValueError
    assert got == expected


def _nul_free(value: object) -> object:
    """The reader turns NUL (which no database text column takes) into U+FFFD."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value
