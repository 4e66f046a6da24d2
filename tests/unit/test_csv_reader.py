"""The streaming CSV lead reader and its column mapping."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leadwatch.core.leads import EventType, LeadStatus, RejectedRecord
from leadwatch.intake.csv_mapping import (
    CANONICAL_FIELDS,
    MappingError,
    load_mapping_file,
    resolve_header,
)
from leadwatch.intake.csv_reader import ParsedRow, parse_status, read_csv_leads, to_utc

FIXTURES = Path(__file__).parent.parent / "fixtures" / "csv"
CHICAGO = ZoneInfo("America/Chicago")


def chicago_for_windy_city(dealership: str | None) -> tzinfo:
    return CHICAGO if dealership == "Windy City Honda" else UTC


def read(
    text: str, *, mapping: dict[str, str] | None = None, dealer: str | None = None
) -> list[ParsedRow | RejectedRecord]:
    stream = io.StringIO(text, newline="")
    return list(
        read_csv_leads(
            stream,
            source_system="testcrm",
            local_tz_for=chicago_for_windy_city,
            default_dealership=dealer,
            user_mapping=mapping,
        )
    )


def read_fixture(
    name: str, user_mapping: dict[str, str] | None = None
) -> list[ParsedRow | RejectedRecord]:
    with open(FIXTURES / name, newline="", encoding="utf-8") as stream:
        return list(
            read_csv_leads(
                stream,
                source_system="testcrm",
                local_tz_for=chicago_for_windy_city,
                user_mapping=user_mapping,
            )
        )


def parsed(results: list[ParsedRow | RejectedRecord]) -> list[ParsedRow]:
    return [r for r in results if isinstance(r, ParsedRow)]


def line_of(result: ParsedRow | RejectedRecord) -> int:
    return result.line if isinstance(result, ParsedRow) else result.row


def only_lead(text: str, dealer: str | None = None) -> ParsedRow:
    results = read(text, dealer=dealer)
    assert len(results) == 1
    assert isinstance(results[0], ParsedRow), results[0]
    return results[0]


def only_reject(text: str) -> RejectedRecord:
    results = read(text)
    assert len(results) == 1
    assert isinstance(results[0], RejectedRecord), results[0]
    return results[0]


# --- header mapping ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "field"),
    [
        ("LeadID", "lead_id"),
        ("Lead Id", "lead_id"),
        ("lead_number", "lead_id"),
        ("ID", "lead_id"),
        ("LeadSource", "lead_source"),
        ("Lead Source", "lead_source"),
        ("Provider", "lead_source"),
        ("SalesRep", "rep"),
        ("Sales Rep", "rep"),
        ("Salesperson", "rep"),
        ("Assigned To", "rep"),
        ("rep_name", "rep"),
        ("Model", "vehicle_model"),
        ("VehicleModel", "vehicle_model"),
        ("Make", "vehicle_make"),
        ("VehicleYear", "vehicle_year"),
        ("Stock #", "vehicle_stock"),
        ("StockNumber", "vehicle_stock"),
        ("VIN", "vehicle_vin"),
        ("VehiclePrice", "vehicle_price"),
        ("MSRP", "vehicle_price"),
        ("created_date", "created_at"),
        ("CreatedDate", "created_at"),
        ("Date Created", "created_at"),
        ("Lead Date", "created_at"),
        ("contacted_date", "contacted_at"),
        ("FirstContactDate", "contacted_at"),
        ("First Contact", "contacted_at"),
        ("sold_date", "sold_at"),
        ("SoldDate", "sold_at"),
        ("Sold Date", "sold_at"),
        ("Appointment Date", "appointment_at"),
        ("Test Drive Date", "test_drive_at"),
        ("Offer Date", "offer_at"),
        ("Delivered Date", "delivered_at"),
        ("Lost Date", "lost_at"),
        ("Cell", "customer_phone"),
        ("Rooftop", "dealership"),
        ("Lead Status", "status"),
        ("Notes", "comments"),
        ("CRM", "source_system"),
        ("  LEAD-SOURCE ", "lead_source"),  # case, spaces and hyphens do not matter
    ],
)
def test_crm_headings_map_to_canonical_fields(heading: str, field: str) -> None:
    header = [heading]
    if field != "lead_id":
        header.append("LeadID")
    if field != "created_at":
        header.append("CreatedDate")
    assert resolve_header(header, None).index(field) == 0


def test_every_canonical_name_is_its_own_alias() -> None:
    columns = resolve_header(list(CANONICAL_FIELDS), None)
    assert {f: columns.index(f) for f in CANONICAL_FIELDS} == {
        f: i for i, f in enumerate(CANONICAL_FIELDS)
    }
    assert columns.extras == ()


def test_unknown_columns_become_extras_with_unique_keys() -> None:
    columns = resolve_header(["LeadID", "Zip", "CreatedDate", "Zip", ""], None)
    assert columns.extras == ((1, "Zip"), (3, "Zip (column 4)"), (4, "column 5"))


def test_user_mapping_wins_over_aliases() -> None:
    # "ID" is a lead_id alias, but the user says the lead id is in "Ref"; ID becomes an extra.
    columns = resolve_header(["ID", "Ref", "Created"], {"ref": "lead_id"})
    assert columns.index("lead_id") == 1
    assert columns.extras == ((0, "ID"),)


def test_two_columns_for_one_field_name_both() -> None:
    with pytest.raises(MappingError) as caught:
        resolve_header(["LeadID", "Created", "Phone", "Cell"], None)
    message = str(caught.value)
    assert "'Phone'" in message and "'Cell'" in message and "customer_phone" in message


def test_missing_required_columns_list_headings_and_suggest_mapping() -> None:
    with pytest.raises(MappingError) as caught:
        resolve_header(["Ref No", "Entered", "Consultant"], None)
    message = str(caught.value)
    assert "lead_id" in message and "created_at" in message
    assert "'Ref No', 'Entered', 'Consultant'" in message
    assert "--mapping FILE" in message


@pytest.mark.parametrize("name", ["mapping.json", "mapping.toml", "mapping.txt"])
def test_mapping_files_in_every_form(name: str) -> None:
    mapping = load_mapping_file(FIXTURES / name)
    assert mapping == {
        "Ref No": "lead_id",
        "Entered": "created_at",
        "Consultant": "rep",
        "Cell": "extra",
    }
    (row,) = read_fixture("custom_headings.csv", user_mapping=mapping)
    assert isinstance(row, ParsedRow)
    assert row.lead.external_id == "C-1"
    assert row.lead.rep == "Bob"
    assert row.lead.customer.phones == ("555-0100",)
    assert row.lead.extra == {"Cell": "555-0199"}


def test_mapping_file_with_unknown_target_names_file_key_and_fields() -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping_file(FIXTURES / "bad_target.json")
    message = str(caught.value)
    assert "bad_target.json" in message
    assert "'Entered'" in message and "'creation_time'" in message
    assert "created_at" in message and "vehicle_price" in message  # the list of valid fields


def test_mapping_file_errors(tmp_path: Path) -> None:
    bad_line = tmp_path / "map.txt"
    bad_line.write_text("Ref No lead_id\n")
    with pytest.raises(MappingError, match="line 1"):
        load_mapping_file(bad_line)
    not_json = tmp_path / "map.json"
    not_json.write_text(json.dumps(["Ref No", "lead_id"]))
    with pytest.raises(MappingError, match="JSON object"):
        load_mapping_file(not_json)
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping_file(tmp_path / "missing.toml")


def test_user_mapping_argument_is_validated_too() -> None:
    with pytest.raises(MappingError, match="unknown field 'leadid'"):
        read("Ref,Created\n1,2024-03-05\n", mapping={"Ref": "leadid"})


def test_empty_file_is_a_mapping_error() -> None:
    for text in ("", "\n\n", "\r\n ,\r\n"):
        with pytest.raises(MappingError, match="file is empty, expected a header row"):
            read(text)


def test_header_errors_raise_before_iteration() -> None:
    stream = io.StringIO("Foo,Bar\n1,2\n")
    with pytest.raises(MappingError):
        read_csv_leads(stream, source_system="x", local_tz_for=lambda _: UTC)


# --- a realistic export --------------------------------------------------------------------


def test_crm_export_fixture() -> None:
    results = read_fixture("crm_export.csv")
    assert [line_of(r) for r in results] == [2, 3, 4]
    first, second, third = parsed(results)

    lead = first.lead
    assert lead.external_id == "A-100"
    assert lead.source_system == "testcrm"
    assert lead.dealership == "Windy City Honda"
    assert lead.rep == "Bob Smith"
    assert lead.lead_source == "AutoTrader"
    # Chicago dealer, naive US time: 2:30 PM CST is 20:30 UTC.
    assert lead.created_at == datetime(2024, 3, 5, 20, 30, tzinfo=UTC)
    assert lead.status is LeadStatus.SOLD
    assert lead.comments == "Paid cash, wants tint"
    assert lead.extra == {"Favorite Color": "blue"}
    vehicle = lead.vehicle
    assert vehicle is not None
    assert (vehicle.year, vehicle.make, vehicle.model) == (2024, "Honda", "Civic")
    assert vehicle.price == Decimal("24950.00")
    assert vehicle.stock == "H1234"
    assert lead.customer.name == "Jane Roe"
    assert lead.customer.email == "jane@example.com"
    assert lead.customer.phone == "(312) 555-0100"
    assert [(e.type, e.occurred_at) for e in lead.events] == [
        (EventType.CREATED, datetime(2024, 3, 5, 20, 30, tzinfo=UTC)),
        (EventType.CONTACTED, datetime(2024, 3, 5, 21, 10, tzinfo=UTC)),
        (EventType.SOLD, datetime(2024, 3, 9, 6, 0, tzinfo=UTC)),
    ]
    assert all(e.actor is None for e in lead.events)

    assert second.lead.status is LeadStatus.NEW  # no stage dates, no status column value
    assert second.lead.vehicle is not None and second.lead.vehicle.price == Decimal(27999)
    assert second.lead.customer.name is None
    assert second.lead.extra == {}

    assert third.lead.created_at == datetime(2024, 3, 7, 16, 0, tzinfo=UTC)  # explicit Z
    assert third.lead.status is LeadStatus.CONTACTED  # "In Progress"
    assert third.lead.vehicles == ()


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05", datetime(2024, 3, 5, 6, 0)),
        ("2024-03-05 14:30", datetime(2024, 3, 5, 20, 30)),
        ("2024-03-05T14:30:15", datetime(2024, 3, 5, 20, 30, 15)),
        ("2024-03-05T14:30:00-05:00", datetime(2024, 3, 5, 19, 30)),
        ("2024-03-05T14:30:00Z", datetime(2024, 3, 5, 14, 30)),
        ("03/05/2024", datetime(2024, 3, 5, 6, 0)),
        ("3/5/2024 2:30 PM", datetime(2024, 3, 5, 20, 30)),
        ("03/05/2024 02:30:10 PM", datetime(2024, 3, 5, 20, 30, 10)),
        ("03/05/2024 12:05 AM", datetime(2024, 3, 5, 6, 5)),
        ("03/05/2024 14:30", datetime(2024, 3, 5, 20, 30)),
        ("03/05/24 2:30 pm", datetime(2024, 3, 5, 20, 30)),
        ("03/05/2024 2:30 PM EST", datetime(2024, 3, 5, 19, 30)),
        ("07/04/2024 9:00 AM", datetime(2024, 7, 4, 14, 0)),  # summer: CDT is UTC-5
    ],
)
def test_dates_in_us_and_iso_forms(text: str, expected: datetime) -> None:
    row = only_lead(f"LeadID,CreatedDate\nX,{text}\n", dealer="Windy City Honda")
    assert row.lead.created_at == expected.replace(tzinfo=UTC)
    assert row.lead.created_at.tzinfo is UTC


def test_naive_times_use_each_dealers_zone_once() -> None:
    calls: list[str | None] = []

    def zone_for(dealership: str | None) -> tzinfo:
        calls.append(dealership)
        return CHICAGO if dealership == "Chicago" else ZoneInfo("America/New_York")

    text = "LeadID,Dealer,CreatedDate\n" + "".join(
        f"{i},{d},03/05/2024 2:30 PM\n" for i, d in enumerate(["Chicago", "Boston"] * 5)
    )
    rows = list(read_csv_leads(io.StringIO(text), source_system="x", local_tz_for=zone_for))
    assert [r.lead.created_at.hour for r in parsed(rows)] == [20, 19] * 5
    assert calls == ["Chicago", "Boston"]


def test_to_utc_matches_timeparse_for_fast_path_forms() -> None:
    from leadwatch.core.timeparse import parse_datetime

    samples = ["2024-03-05 14:30", "3/5/2024 2:30 PM", "11/03/2024 1:30 AM", "03/10/2024 2:30 AM"]
    for text in samples:  # the last two are the DST fall-back overlap and spring-forward gap
        assert to_utc(text, CHICAGO) == parse_datetime(text, CHICAGO)


def test_bad_date_message_says_how_to_fix() -> None:
    reject = only_reject("LeadID,created_at\nX,13/45/2024\n")
    (error,) = reject.errors
    assert error.field == "created_at"
    assert error.message == (
        "created_at '13/45/2024' is not a date: use ISO 8601 (2024-03-05 14:30) "
        "or US form (03/05/2024 2:30 PM)"
    )


def test_stage_before_created_is_an_error_but_same_day_date_is_not() -> None:
    header = "LeadID,CreatedDate,contacted_date,SoldDate\n"
    reject = only_reject(header + "X,2024-03-05 14:30,2024-03-05 14:00,\n")
    assert [e.field for e in reject.errors] == ["contacted_at"]
    assert "before created_at" in reject.errors[0].message
    # A bare sold date on the day the lead came in means "that day", not midnight.
    row = only_lead(header + "X,2024-03-05 14:30,,2024-03-05\n")
    assert row.lead.events[-1].occurred_at == row.lead.created_at
    assert row.lead.status is LeadStatus.SOLD


# --- status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Sold", LeadStatus.SOLD),
        ("LOST", LeadStatus.LOST),
        ("In Progress", LeadStatus.CONTACTED),
        ("Open", LeadStatus.NEW),
        ("new", LeadStatus.NEW),
        ("Test Drive", LeadStatus.TEST_DRIVE),
        ("test_drive", LeadStatus.TEST_DRIVE),
        ("Appointment Set", LeadStatus.APPOINTMENT),
        ("Delivered", LeadStatus.DELIVERED),
        ("Offer", LeadStatus.OFFER),
        ("Dead", LeadStatus.LOST),
        ("maybe", None),
    ],
)
def test_status_words(text: str, status: LeadStatus | None) -> None:
    assert parse_status(text) is status


@pytest.mark.parametrize(
    ("stages", "status"),
    [
        (",,,", LeadStatus.NEW),
        ("2024-03-05 10:00,,,", LeadStatus.CONTACTED),
        ("2024-03-05 10:00,2024-03-06 10:00,,", LeadStatus.APPOINTMENT),
        ("2024-03-05 10:00,,,2024-03-07", LeadStatus.LOST),
        ("2024-03-05 10:00,,2024-03-09,2024-03-07", LeadStatus.SOLD),  # sold after being lost
    ],
)
def test_status_derived_from_stage_dates(stages: str, status: LeadStatus) -> None:
    header = "LeadID,Created,contacted_at,appointment_at,sold_at,lost_at,Status\n"
    row = only_lead(header + f"X,2024-03-05 09:00,{stages},\n")
    assert row.lead.status is status


def test_explicit_status_wins_and_unknown_status_is_an_error() -> None:
    header = "LeadID,Created,sold_at,Status\n"
    assert only_lead(header + "X,2024-03-05,2024-03-06,Lost\n").lead.status is LeadStatus.LOST
    reject = only_reject(header + "X,2024-03-05,,Maybe later\n")
    assert [e.field for e in reject.errors] == ["status"]
    assert "'Maybe later'" in reject.errors[0].message


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("$32,500.00", Decimal("32500.00")),
        ("32500", Decimal(32500)),
        ("1,234,567", Decimal(1234567)),
    ],
)
def test_prices(text: str, price: Decimal) -> None:
    row = only_lead(f'LeadID,Created,Price\nX,2024-03-05,"{text}"\n')
    assert row.lead.vehicle is not None and row.lead.vehicle.price == price


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [
        ("Price", "32.500,00", "vehicle_price"),
        ("Price", "NaN", "vehicle_price"),
        ("Price", "-5", "vehicle_price"),
        ("Year", "1899", "vehicle_year"),
        ("Year", "2101", "vehicle_year"),
        ("Year", "twenty", "vehicle_year"),
        ("Email", "jane@example", "customer_email"),
        ("Email", "jane@@example.com", "customer_email"),
        ("Email", "jane example@x.com", "customer_email"),
        ("Email", "@example.com", "customer_email"),
    ],
)
def test_bad_values_are_rejected_with_their_field(column: str, value: str, field: str) -> None:
    reject = only_reject(f'LeadID,Created,{column}\nX,2024-03-05,"{value}"\n')
    assert [e.field for e in reject.errors] == [field]
    assert f"'{value}'" in reject.errors[0].message
    assert f"(column '{column}')" in reject.errors[0].message  # names the user's heading


def test_source_system_and_dealership_fall_back_to_arguments() -> None:
    text = "LeadID,Created,CRM,Dealer\nA,2024-03-05,,\nB,2024-03-05,elead,Windy City Honda\n"
    a, b = parsed(read(text, dealer="Default Motors"))
    assert (a.lead.source_system, a.lead.dealership) == ("testcrm", "Default Motors")
    assert (b.lead.source_system, b.lead.dealership) == ("elead", "Windy City Honda")


def test_values_are_trimmed_and_empty_means_none() -> None:
    row = only_lead("LeadID,Created,Rep,Make,Notes\n  X  , 2024-03-05 ,  , Ford ,\n")
    assert row.lead.external_id == "X"
    assert row.lead.rep is None
    assert row.lead.comments is None
    assert row.lead.vehicle is not None and row.lead.vehicle.make == "Ford"


# --- file shapes ---------------------------------------------------------------------------


def test_multiline_quoted_fields_keep_line_numbers_right() -> None:
    text = (
        'LeadID,Created,Notes\nA,2024-03-05,"one\ntwo\nthree"\nB,2024-03-05,x\n\nC,2024-03-05,y\n'
    )
    assert [line_of(r) for r in read(text)] == [2, 5, 7]


def test_mixed_file_keeps_good_rows_and_explains_bad_ones() -> None:
    results = read_fixture("mixed.csv")
    assert [(line_of(r), type(r).__name__) for r in results] == [
        (2, "ParsedRow"),
        (3, "RejectedRecord"),
        (4, "RejectedRecord"),
        (6, "RejectedRecord"),
        (7, "ParsedRow"),
    ]
    bad = results[1]
    assert isinstance(bad, RejectedRecord)
    assert [e.field for e in bad.errors] == [
        "lead_id",
        "created_at",
        "status",
        "vehicle_year",
        "vehicle_price",
        "customer_email",
    ]
    assert all(e.row == 3 for e in bad.errors)
    assert (
        bad.raw
        == ",13/45/2024,2024-03-01 10:00,,18,12.3.4,not-an-email,Maybe,two problems at least"
    )

    before = results[2]
    assert isinstance(before, RejectedRecord)
    assert [e.field for e in before.errors] == ["contacted_at"]
    assert before.raw.endswith('"contacted before\ncreated"')

    wide = results[3]
    assert isinstance(wide, RejectedRecord)
    assert [(e.field, e.message.split(":")[0]) for e in wide.errors] == [
        ("row", "expected 9 columns, got 10")
    ]

    last = results[4]
    assert isinstance(last, ParsedRow)
    assert last.lead.external_id == "M-5"
    assert last.lead.status is LeadStatus.SOLD
    assert last.lead.vehicle is not None and last.lead.vehicle.price == Decimal(18000)


def test_bom_crlf_and_trailing_blank_lines() -> None:
    results = read_fixture("bom_crlf.csv")
    assert [line_of(r) for r in results] == [2, 5]
    first, second = parsed(results)
    assert first.lead.external_id == "B-1"
    assert first.lead.comments == "first line\r\nsecond line\r\nthird line"
    assert second.lead.rep == "Ann"


def test_bom_kept_by_a_plain_utf8_decode_is_ignored() -> None:
    row = only_lead("\ufeffLeadID,Created\nX,2024-03-05\n")
    assert row.lead.external_id == "X"


def test_semicolon_and_tab_delimiters() -> None:
    semi = parsed(read_fixture("semicolon.csv"))
    assert [(r.lead.external_id, r.lead.rep, r.lead.status) for r in semi] == [
        ("S-1", "Bob", LeadStatus.NEW),
        ("S-2", "Ann", LeadStatus.LOST),
    ]
    assert semi[0].lead.vehicle is not None and semi[0].lead.vehicle.model == "Golf"
    (tabbed,) = parsed(read_fixture("tabbed.tsv"))
    assert tabbed.lead.vehicle is not None and tabbed.lead.vehicle.model == "Camry"


def test_rows_of_bare_delimiters_are_skipped() -> None:
    assert [line_of(r) for r in read("LeadID,Created\nA,2024-03-05\n,\n , \n")] == [2]


def test_unreadable_csv_row_is_rejected_and_reading_continues() -> None:
    import csv

    big = "x" * (csv.field_size_limit() + 10)
    results = read(f'LeadID,Created\n"{big}\nB,2024-03-05\n')
    assert isinstance(results[0], RejectedRecord)
    assert results[0].errors[0].field == "row"
    assert isinstance(results[-1], ParsedRow) and results[-1].lead.external_id == "B"


class _NoSlurpStream(io.StringIO):
    """Fails the test if the reader asks for the whole rest of the file at once."""

    def read(self, size: int | None = -1) -> str:
        assert size is not None and size >= 0, "read_csv_leads must not read the whole file"
        return super().read(size)

    def readlines(self, hint: int | None = -1, /) -> list[str]:  # type: ignore[override]  # noqa: ARG002
        raise AssertionError("read_csv_leads must not read the whole file")


def _synthetic_rows(count: int) -> Iterator[str]:
    yield "LeadID,CreatedDate,FirstContactDate,SalesRep,Model,Notes\n"
    for i in range(count):
        yield f'{i},2024-03-05 09:00,2024-03-05 10:00,Bob,Camry,"note {i}"\n'


def test_streams_in_bounded_memory() -> None:
    stream = _NoSlurpStream("".join(_synthetic_rows(10_000)), newline="")
    results = read_csv_leads(stream, source_system="x", local_tz_for=lambda _: UTC)
    tracemalloc.start()
    try:
        count = 0
        for result in results:
            assert isinstance(result, ParsedRow)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 1_000_000  # the leads are dropped as we go: nothing accumulates


def test_timezone_fixed_offsets_work_as_local_zones() -> None:
    rows = list(
        read_csv_leads(
            io.StringIO("LeadID,Created\nX,2024-03-05 14:30\n"),
            source_system="x",
            local_tz_for=lambda _: timezone(timedelta(hours=-6)),
        )
    )
    assert parsed(rows)[0].lead.created_at == datetime(2024, 3, 5, 20, 30, tzinfo=UTC)
