"""The ADF/XML lead parser: documents, prospects, and the safety of the XML handling."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path

import pytest

from leadwatch.core.leads import EventType, LeadIn, RejectedRecord, VehicleInterest
from leadwatch.intake.adf import AdfDocumentError, AdfParseResult, parse_adf

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "adf"
EASTERN = timezone(timedelta(hours=-5))
ZONES: dict[str | None, tzinfo] = {"Eastern Motors": EASTERN, "Hilltop Ford": EASTERN}


def zone_for(dealership: str | None) -> tzinfo:
    return ZONES.get(dealership, UTC)


def parse(
    data: bytes | str, *, max_bytes: int = 5_000_000, default_source_system: str = "adf"
) -> AdfParseResult:
    return parse_adf(
        data,
        local_tz_for=zone_for,
        max_bytes=max_bytes,
        default_source_system=default_source_system,
    )


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def prospect(body: str, attrs: str = "") -> str:
    return f'<?adf version="1.0"?><adf><prospect{attrs}>{body}</prospect></adf>'


ID_AND_DATE = '<id source="S">L-1</id><requestdate>2024-03-05T14:30:00Z</requestdate>'


def only_lead(
    data: bytes | str, *, max_bytes: int = 5_000_000, default_source_system: str = "adf"
) -> LeadIn:
    result = parse(data, max_bytes=max_bytes, default_source_system=default_source_system)
    assert result.rejected == []
    assert len(result.leads) == 1
    return result.leads[0][1]


def only_rejected(data: bytes | str) -> RejectedRecord:
    result = parse(data)
    assert result.leads == []
    assert len(result.rejected) == 1
    return result.rejected[0]


def fields_of(rejected: RejectedRecord) -> list[str]:
    return [error.field for error in rejected.errors]


# --- a realistic document -------------------------------------------------------------------


class TestRealisticProspect:
    @pytest.fixture
    def lead(self) -> LeadIn:
        result = parse(fixture("single_prospect_trade_in.xml"))
        assert result.rejected == []
        [(number, lead)] = result.leads
        assert number == 1
        return lead

    def test_identity_uses_the_first_id_and_its_source(self, lead: LeadIn) -> None:
        assert lead.external_id == "ABC123"
        assert lead.source_system == "DealerSite"

    def test_requestdate_becomes_utc(self, lead: LeadIn) -> None:
        assert lead.created_at == datetime(2024, 3, 5, 19, 30, tzinfo=UTC)
        assert lead.created_at.tzinfo is UTC

    def test_vehicles_keep_document_order(self, lead: LeadIn) -> None:
        wanted, trade = lead.vehicles
        assert wanted.interest is VehicleInterest.BUY
        assert (wanted.year, wanted.make, wanted.model) == (2024, "Honda", "CR-V")
        assert (wanted.trim, wanted.stock) == ("EX-L AWD", "H24-0123")
        assert wanted.vin == "7FARS4H70RE000123"
        assert wanted.price == Decimal("32500.00")
        assert wanted.condition == "new"
        assert trade.interest is VehicleInterest.TRADE_IN
        assert (trade.year, trade.make, trade.model) == (2016, "Toyota", "Corolla")
        assert trade.price == Decimal("7800")
        assert trade.condition == "used"
        assert lead.vehicle is wanted

    def test_customer(self, lead: LeadIn) -> None:
        customer = lead.customer
        assert customer.first_name == "Maria"
        assert customer.last_name == "García-O'Neil"
        assert customer.full_name is None
        assert customer.name == "Maria García-O'Neil"
        assert customer.emails == ("maria.garcia@example.com", "mg@example.org")
        assert customer.phones == ("(555) 201-3344", "555.201.9988")

    def test_comments_are_stripped_and_unescaped(self, lead: LeadIn) -> None:
        assert lead.comments == "Please call after 5pm. Is the trade worth > $7k?"

    def test_vendor_and_provider(self, lead: LeadIn) -> None:
        assert lead.dealership == "Springfield Honda"
        assert lead.lead_source == "AutoTrader"
        assert lead.extra["vendor_contact"] == "Sam Sales"
        assert lead.extra["provider_service"] == "New Car Lead"
        assert lead.extra["provider_url"] == "https://www.autotrader.example/"
        assert lead.extra["provider_id"] == "AT-778899"

    def test_address_goes_to_extra(self, lead: LeadIn) -> None:
        assert lead.extra["customer_street"] == "12 Elm Street, Apt 4"
        assert lead.extra["customer_city"] == "Springfield"
        assert lead.extra["customer_region"] == "IL"
        assert lead.extra["customer_postalcode"] == "62704"
        assert lead.extra["customer_country"] == "US"
        assert lead.extra["prospect_status"] == "new"

    def test_one_created_event(self, lead: LeadIn) -> None:
        [event] = lead.events
        assert event.type is EventType.CREATED
        assert event.occurred_at == lead.created_at
        assert event.actor == "adf"

    def test_status_is_left_to_the_events(self, lead: LeadIn) -> None:
        assert lead.status is None
        assert lead.rep is None


# --- several prospects ----------------------------------------------------------------------


def test_multi_prospect_numbers_leads_and_rejects_only_the_bad_one() -> None:
    result = parse(fixture("multi_prospect.xml"))
    assert [(n, lead.external_id) for n, lead in result.leads] == [
        (1, "LH-1001"),
        (2, "LH-1002"),
        (4, "LH-1004"),
    ]
    [rejected] = result.rejected
    assert rejected.row == 3
    assert fields_of(rejected) == ["requestdate"]
    assert "yesterday afternoon" in rejected.reason
    assert rejected.raw.startswith("<prospect")
    assert rejected.raw.endswith("</prospect>")
    assert "LH-1003" in rejected.raw
    assert "LH-1002" not in rejected.raw


def test_multi_prospect_reads_each_prospect_on_its_own() -> None:
    leads = dict(parse(fixture("multi_prospect.xml")).leads)
    assert leads[1].vehicles[0].condition == "used"
    assert leads[2].vehicles[0].interest is VehicleInterest.LEASE
    assert leads[2].extra["prospect_status"] == "resend"
    assert leads[2].customer.email == "jo@example.com"
    # no name, only an e-mail: still a lead; naive time read in Hilltop Ford's zone
    assert leads[4].customer.name is None
    assert leads[4].created_at == datetime(2024, 6, 2, 13, 0, tzinfo=UTC)


# --- request dates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "external_id",
    [
        "offset-colon",
        "offset-compact",
        "offset-hours",
        "offset-spaced-short",
        "offset-abbreviation",
        "offset-zulu",
        "offset-positive",
        "offset-none",
        "us-form",
    ],
)
def test_odd_offsets_all_mean_the_same_instant(external_id: str) -> None:
    result = parse(fixture("odd_offsets.xml"))
    assert result.rejected == []
    by_id = {lead.external_id: lead for _, lead in result.leads}
    assert by_id[external_id].created_at == datetime(2024, 3, 5, 19, 30, tzinfo=UTC)


def test_naive_requestdate_uses_the_vendors_zone() -> None:
    seen: list[str | None] = []

    def recording_zone(dealership: str | None) -> tzinfo:
        seen.append(dealership)
        return EASTERN

    body = (
        '<id source="S">L-1</id><requestdate>2024-03-05 14:30</requestdate>'
        "<vendor><vendorname> Eastern Motors </vendorname></vendor>"
    )
    result = parse_adf(prospect(body), local_tz_for=recording_zone)
    [(_, lead)] = result.leads
    assert seen == ["Eastern Motors"]
    assert lead.created_at == datetime(2024, 3, 5, 19, 30, tzinfo=UTC)


def test_zone_lookup_without_a_vendor_gets_none() -> None:
    seen: list[str | None] = []

    def recording_zone(dealership: str | None) -> tzinfo:
        seen.append(dealership)
        return UTC

    parse_adf(prospect(ID_AND_DATE), local_tz_for=recording_zone)
    assert seen == [None]


@pytest.mark.parametrize(
    "requestdate",
    [
        "",
        "   ",
        "not a date",
        "2024-02-30T10:00:00Z",
        "2024-03-05T14:30:00-25:00",
        "2024-03-05 14:30 HST-14:59",  # past what a UTC offset can be
        "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC
    ],
)
def test_bad_or_missing_requestdate_rejects_the_prospect(requestdate: str) -> None:
    rejected = only_rejected(
        prospect(f'<id source="S">L-1</id><requestdate>{requestdate}</requestdate>')
    )
    assert fields_of(rejected) == ["requestdate"]
    assert rejected.row == 1


def test_absent_requestdate_says_it_is_required() -> None:
    rejected = only_rejected(prospect('<id source="S">L-1</id>'))
    assert fields_of(rejected) == ["requestdate"]
    assert "missing <requestdate>" in rejected.reason


# --- ids and source systems -----------------------------------------------------------------


def test_several_ids_take_the_first() -> None:
    lead = only_lead(
        prospect(
            '<id sequence="1" source="A">first</id><id sequence="2" source="B">second</id>'
            "<requestdate>2024-03-05T14:30:00Z</requestdate>"
        )
    )
    assert (lead.source_system, lead.external_id) == ("A", "first")


def test_empty_id_is_skipped() -> None:
    lead = only_lead(
        prospect(
            '<id source="A">  </id><id source="B"> real </id>'
            "<requestdate>2024-03-05T14:30:00Z</requestdate>"
        )
    )
    assert (lead.source_system, lead.external_id) == ("B", "real")


def test_id_without_source_uses_the_provider_name() -> None:
    lead = only_lead(
        prospect(
            "<id>L-7</id><requestdate>2024-03-05T14:30:00Z</requestdate>"
            '<provider><name part="full">Cars.example</name></provider>'
        )
    )
    assert (lead.source_system, lead.external_id) == ("Cars.example", "L-7")


def test_id_without_source_or_provider_uses_the_default() -> None:
    body = "<id>L-7</id><requestdate>2024-03-05T14:30:00Z</requestdate>"
    assert only_lead(prospect(body)).source_system == "adf"
    assert only_lead(prospect(body), default_source_system="mailbox").source_system == "mailbox"


def test_missing_id_falls_back_to_the_provider_id() -> None:
    lead = only_lead(
        prospect(
            "<requestdate>2024-03-05T14:30:00Z</requestdate>"
            '<provider><id source="AutoTrader">AT-1</id><name>AutoTrader</name></provider>'
        )
    )
    assert (lead.source_system, lead.external_id) == ("AutoTrader", "AT-1")


def test_provider_id_without_source_uses_the_provider_name() -> None:
    lead = only_lead(
        prospect(
            "<requestdate>2024-03-05T14:30:00Z</requestdate>"
            "<provider><id>AT-1</id><name>AutoTrader</name></provider>"
        )
    )
    assert (lead.source_system, lead.external_id) == ("AutoTrader", "AT-1")


def test_no_id_at_all_rejects_and_explains_why() -> None:
    rejected = only_rejected(prospect("<requestdate>2024-03-05T14:30:00Z</requestdate><id/>"))
    assert fields_of(rejected) == ["id"]
    assert "idempotent" in rejected.reason
    assert "<provider>" in rejected.reason


def test_rejection_lists_every_problem() -> None:
    body = (
        "<requestdate>soon</requestdate>"
        "<vehicle><year>2020</year><price>12000</price></vehicle>"
        "<vehicle><year>20x0</year><price>twelve grand</price></vehicle>"
        "<vehicle><year>1850</year></vehicle>"
    )
    rejected = only_rejected(prospect(body))
    assert fields_of(rejected) == [
        "id",
        "requestdate",
        "vehicle[2].year",
        "vehicle[2].price",
        "vehicle[3].year",
    ]
    assert all(error.row == 1 for error in rejected.errors)


# --- vehicles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        (' interest="buy"', VehicleInterest.BUY),
        (' interest="lease"', VehicleInterest.LEASE),
        (' interest="trade-in"', VehicleInterest.TRADE_IN),
        (' interest="Trade-In"', VehicleInterest.TRADE_IN),
        (' interest="sell"', VehicleInterest.TRADE_IN),
        (' interest="test-drive"', VehicleInterest.BUY),
        (' interest=""', VehicleInterest.BUY),
        ("", VehicleInterest.BUY),
    ],
)
def test_vehicle_interest(attribute: str, expected: VehicleInterest) -> None:
    lead = only_lead(prospect(f"{ID_AND_DATE}<vehicle{attribute}><make>Kia</make></vehicle>"))
    assert lead.vehicles[0].interest is expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [(' status="new"', "new"), (' status="USED"', "used"), (' status="demo"', None), ("", None)],
)
def test_vehicle_status_becomes_condition(attribute: str, expected: str | None) -> None:
    lead = only_lead(prospect(f"{ID_AND_DATE}<vehicle{attribute}><make>Kia</make></vehicle>"))
    assert lead.vehicles[0].condition == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$32,500.00", Decimal("32500.00")),
        ("32500", Decimal("32500")),
        (" 32500.5 ", Decimal("32500.5")),
        ("$ 1,234,567", Decimal("1234567")),
        ("USD 18,000", Decimal("18000")),
        ("18000.00 USD", Decimal("18000.00")),
        ("0", Decimal("0")),
    ],
)
def test_vehicle_price(text: str, expected: Decimal) -> None:
    xml = prospect(
        f'{ID_AND_DATE}<vehicle><price type="quote" currency="USD">{text}</price></vehicle>'
    )
    assert only_lead(xml).vehicles[0].price == expected


@pytest.mark.parametrize(
    "text", ["call for price", "32.500,00", "-500", "1,23", "NaN", "Infinity", "$", "1e5"]
)
def test_vehicle_price_that_is_not_a_number_rejects(text: str) -> None:
    xml = prospect(
        f"{ID_AND_DATE}<vehicle><make>Kia</make></vehicle><vehicle><price>{text}</price></vehicle>"
    )
    rejected = only_rejected(xml)
    assert fields_of(rejected) == ["vehicle[2].price"]


def test_first_non_empty_price_is_used() -> None:
    xml = prospect(
        f'{ID_AND_DATE}<vehicle><price type="msrp"/><price type="quote">21000</price>'
        '<price type="invoice">19000</price></vehicle>'
    )
    assert only_lead(xml).vehicles[0].price == Decimal("21000")


@pytest.mark.parametrize("year", ["1899", "2101", "0", "99999", "abcd", "2020.0", "２０２０"])
def test_vehicle_year_out_of_range_or_not_a_number_rejects(year: str) -> None:
    xml = prospect(
        f"{ID_AND_DATE}<vehicle><year>2020</year></vehicle><vehicle><year>{year}</year></vehicle>"
    )
    assert fields_of(only_rejected(xml)) == ["vehicle[2].year"]


@pytest.mark.parametrize("year", ["1900", "2100", " 2024 "])
def test_vehicle_year_bounds_are_inclusive(year: str) -> None:
    xml = prospect(f"{ID_AND_DATE}<vehicle><year>{year}</year></vehicle>")
    assert only_lead(xml).vehicles[0].year == int(year)


def test_empty_vehicle_elements_are_absent() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<vehicle><year> </year><make/><model>  </model><trim></trim>"
        "<stock/><vin> </vin><price/></vehicle>"
    )
    vehicle = only_lead(xml).vehicles[0]
    assert (vehicle.year, vehicle.make, vehicle.model, vehicle.trim) == (None, None, None, None)
    assert (vehicle.stock, vehicle.vin, vehicle.price) == (None, None, None)


def test_prospect_without_vehicles_is_accepted() -> None:
    assert only_lead(prospect(ID_AND_DATE)).vehicles == ()


# --- customer -------------------------------------------------------------------------------


def test_name_without_part_is_the_full_name() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<customer><contact><name> Pat Q. Public </name></contact></customer>"
    )
    customer = only_lead(xml).customer
    assert customer.full_name == "Pat Q. Public"
    assert customer.first_name is None


def test_middle_name_and_suffix_stay_in_the_full_name() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<customer><contact>"
        '<name part="first">John</name><name part="middle">Q</name>'
        '<name part="last">Public</name><name part="suffix">Jr.</name>'
        "</contact></customer>"
    )
    customer = only_lead(xml).customer
    assert (customer.first_name, customer.last_name) == ("John", "Public")
    assert customer.full_name == "John Q Public Jr."


def test_explicit_full_name_wins() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<customer><contact>"
        '<name part="first">John</name><name part="full">Johnny Public</name>'
        "</contact></customer>"
    )
    assert only_lead(xml).customer.name == "Johnny Public"


def test_several_emails_and_phones_keep_order_without_duplicates() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<customer><contact>"
        "<email>a@example.com</email><email/><email> b@example.com </email>"
        '<phone type="voice">555-0100</phone><phone type="cellphone">555-0199</phone>'
        '<phone type="fax">555-0100</phone>'
        "</contact></customer>"
    )
    customer = only_lead(xml).customer
    assert customer.emails == ("a@example.com", "b@example.com")
    assert customer.phones == ("555-0100", "555-0199")


def test_prospect_without_any_contact_detail_is_accepted() -> None:
    lead = only_lead(prospect(f"{ID_AND_DATE}<customer><contact/></customer>"))
    assert lead.customer.name is None
    assert lead.customer.emails == ()
    assert lead.customer.phones == ()


def test_comments_from_customer_and_prospect_are_joined() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<customer><comments> from customer </comments></customer>"
        "<comments>from prospect</comments>"
    )
    assert only_lead(xml).comments == "from customer\nfrom prospect"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<customer><comments>only customer</comments></customer>", "only customer"),
        ("<comments>only prospect</comments>", "only prospect"),
        ("<customer><comments> </comments></customer><comments/>", None),
        ("<comments><![CDATA[5 < 6 & cheap]]></comments>", "5 < 6 & cheap"),
    ],
)
def test_comments_alone(body: str, expected: str | None) -> None:
    assert only_lead(prospect(ID_AND_DATE + body)).comments == expected


def test_vendor_contact_from_name_parts() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<vendor><vendorname>Shop</vendorname><contact>"
        '<name part="first">Sam</name><name part="last">Sales</name></contact></vendor>'
    )
    lead = only_lead(xml)
    assert lead.extra["vendor_contact"] == "Sam Sales"
    assert lead.dealership == "Shop"


def test_minimal_prospect_has_no_extra_and_no_lead_source() -> None:
    lead = only_lead(prospect(ID_AND_DATE))
    assert lead.extra == {}
    assert lead.lead_source is None
    assert lead.dealership is None
    assert lead.comments is None


# --- tolerance of real-world documents ------------------------------------------------------


def test_uppercase_element_and_attribute_names() -> None:
    lead = only_lead(fixture("uppercase_tags.xml"))
    assert (lead.source_system, lead.external_id) == ("LegacyCRM", "UP-1")
    assert lead.created_at == datetime(2024, 3, 5, 19, 30, tzinfo=UTC)
    [trade] = lead.vehicles
    assert trade.interest is VehicleInterest.TRADE_IN
    assert trade.condition == "used"
    assert trade.price == Decimal("9100")
    assert (lead.customer.first_name, lead.customer.last_name) == ("Lee", "Wong")
    assert lead.dealership == "Valley Subaru"


def test_namespaced_document() -> None:
    xml = (
        '<adf xmlns="urn:example:adf"><prospect><id source="N">ns-1</id>'
        "<requestdate>2024-03-05T14:30:00Z</requestdate></prospect></adf>"
    )
    assert only_lead(xml).external_id == "ns-1"


PLAIN = fixture("doctype_without_entities.xml")


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + PLAIN,
        b"\r\n\r\n  \t" + PLAIN,
        b"\n" + codecs.BOM_UTF8 + b"\n " + PLAIN,
        "\ufeff\n  " + PLAIN.decode(),
        codecs.BOM_UTF16_LE + ("\n " + PLAIN.decode()).encode("utf-16-le"),
        b'\n<?adf version="1.0"?>\n<?xml version="1.0"?><adf>' + PLAIN.split(b"<adf>", 1)[1],
    ],
    ids=["utf8-bom", "blank-lines", "space-bom-space", "str-bom", "utf16-bom", "adf-pi-first"],
)
def test_leading_whitespace_and_bom_are_tolerated(data: bytes | str) -> None:
    assert only_lead(data).external_id == "doctype-1"


def test_plain_doctype_is_accepted() -> None:
    assert only_lead(PLAIN).external_id == "doctype-1"


def test_declared_encoding_of_bytes_is_honoured() -> None:
    xml = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><adf><prospect><id source="S">L-1</id>'
        "<requestdate>2024-03-05T14:30:00Z</requestdate>"
        '<customer><contact><name part="last">Müller</name></contact></customer>'
        "</prospect></adf>"
    )
    assert only_lead(xml.encode("latin-1")).customer.last_name == "Müller"


def test_str_and_bytes_give_the_same_leads() -> None:
    data = fixture("single_prospect_trade_in.xml")
    assert parse(data) == parse(data.decode("utf-8"))


# --- documents that are refused -------------------------------------------------------------


def test_billion_laughs_is_refused_quickly() -> None:
    with pytest.raises(AdfDocumentError, match="refused for safety") as caught:
        parse(fixture("billion_laughs.xml"))
    assert "<!ENTITY>" in str(caught.value)
    assert "lollol" not in str(caught.value)


@pytest.mark.parametrize("name", ["xxe_passwd.xml", "xxe_parameter_entity.xml"])
def test_external_entity_is_refused_and_the_file_never_leaks(name: str) -> None:
    with pytest.raises(AdfDocumentError, match="refused for safety") as caught:
        parse(fixture(name))
    error = caught.value
    everything = " ".join(
        [str(error), repr(error), str(error.__cause__), repr(error.__cause__), str(error.args)]
    )
    assert "root:" not in everything
    passwd = Path("/etc/passwd")
    if passwd.exists():
        for line in passwd.read_text(errors="replace").splitlines()[:5]:
            if line.strip():
                assert line not in everything


def test_internal_entity_is_refused_too() -> None:
    xml = (
        '<!DOCTYPE adf [<!ENTITY dealer "Acme">]><adf><prospect><id source="S">x</id>'
        "<requestdate>2024-03-05T14:30:00Z</requestdate><comments>&dealer;</comments>"
        "</prospect></adf>"
    )
    with pytest.raises(AdfDocumentError, match="'dealer'"):
        parse(xml)


def test_malformed_xml_gives_line_and_column() -> None:
    xml = '<adf>\n  <prospect>\n    <id source="S">A & B</id>\n  </prospect>\n</adf>'
    with pytest.raises(AdfDocumentError) as caught:
        parse(xml)
    message = str(caught.value)
    assert "not well-formed" in message
    assert "line 3, column" in message
    assert "&amp;" in message


def test_unclosed_tag_is_malformed() -> None:
    with pytest.raises(AdfDocumentError, match=r"line \d+, column \d+"):
        parse(prospect("<id>open"))


def test_undefined_entity_is_malformed() -> None:
    with pytest.raises(AdfDocumentError, match="undefined entity"):
        parse(prospect("<id>&nbsp;</id>"))


def test_root_must_be_adf() -> None:
    with pytest.raises(AdfDocumentError, match=r"<leads>, not <adf>"):
        parse("<leads><prospect/></leads>")


def test_document_without_prospects() -> None:
    with pytest.raises(AdfDocumentError, match="no <prospect> elements"):
        parse('<?adf version="1.0"?><adf><vendor/></adf>')


def test_prospects_must_be_directly_in_adf() -> None:
    with pytest.raises(AdfDocumentError, match="no <prospect> elements"):
        parse("<adf><wrapper><prospect/></wrapper></adf>")


@pytest.mark.parametrize("data", [b"", "", "   ", b"\xef\xbb\xbf", "just an e-mail"])
def test_empty_or_non_xml_input(data: bytes | str) -> None:
    with pytest.raises(AdfDocumentError):
        parse(data)


def test_document_over_the_size_limit() -> None:
    xml = prospect(ID_AND_DATE)
    assert only_lead(xml, max_bytes=len(xml)).external_id == "L-1"
    with pytest.raises(AdfDocumentError, match="more than the limit of 10"):
        parse(xml, max_bytes=10)
    with pytest.raises(AdfDocumentError, match="limit"):
        parse(xml.encode(), max_bytes=len(xml) - 1)


def test_size_limit_counts_utf8_bytes_of_text() -> None:
    xml = prospect(f"{ID_AND_DATE}<comments>{'é' * 50}</comments>")
    with pytest.raises(AdfDocumentError, match="limit"):
        parse(xml, max_bytes=len(xml) + 10)


def test_hostile_nesting_is_refused() -> None:
    deep = "<x>" * 5000 + "</x>" * 5000
    with pytest.raises(AdfDocumentError, match="levels deep"):
        parse(prospect(ID_AND_DATE + deep))


@pytest.mark.parametrize(
    "data",
    [
        "<adf>\ud800</adf>",
        b'<?xml version="1.0" encoding="no-such-codec"?><adf/>',
        codecs.BOM_UTF16_LE + b"\x00\xd8",
        b"<adf>\xff\xfe</adf>",
    ],
)
def test_undecodable_input_is_a_document_error(data: bytes | str) -> None:
    with pytest.raises(AdfDocumentError):
        parse(data)


def test_document_error_is_a_value_error() -> None:
    assert issubclass(AdfDocumentError, ValueError)


def test_rejected_raw_is_the_prospect_xml_re_serialised() -> None:
    xml = prospect('<id source="S">R&amp;D</id><requestdate/>', attrs=' status="new"')
    rejected = only_rejected(xml)
    assert rejected.raw == (
        '<prospect status="new"><id source="S">R&amp;D</id><requestdate /></prospect>'
    )


def test_several_contacts_first_name_wins_and_details_are_collected() -> None:
    xml = prospect(
        f"{ID_AND_DATE}<customer>"
        '<contact><name part="first">Ann</name><email>ann@example.com</email></contact>'
        '<contact><name part="first">Bob</name><name part="last">Ray</name>'
        "<email>bob@example.com</email><address><city> Reno </city></address></contact>"
        "</customer>"
    )
    lead = only_lead(xml)
    assert (lead.customer.first_name, lead.customer.last_name) == ("Ann", "Ray")
    assert lead.customer.emails == ("ann@example.com", "bob@example.com")
    assert lead.extra == {"customer_city": "Reno"}
