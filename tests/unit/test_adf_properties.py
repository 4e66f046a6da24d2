"""Property tests for the ADF parser: what goes into a document comes back out, and no input
makes it raise anything but AdfDocumentError."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from leadwatch.core.leads import Customer, Vehicle, VehicleInterest
from leadwatch.intake.adf import AdfDocumentError, AdfParseResult, parse_adf

VENDOR_ZONE = timezone(timedelta(hours=-7))


def zone_for(dealership: str | None) -> tzinfo:
    return UTC if dealership is None else VENDOR_ZONE


# Text XML 1.0 can carry (no control characters, surrogates or non-characters), including the
# characters that must be escaped. The parser strips text, so generated text is stripped too.
_xml_char = st.characters(blacklist_categories=("Cs", "Cc", "Cn")) | st.sampled_from("&<>\"' ")
text = st.text(_xml_char, min_size=1, max_size=16).map(str.strip).filter(bool)
maybe_text = st.none() | text

INTERESTS = {
    "buy": VehicleInterest.BUY,
    "lease": VehicleInterest.LEASE,
    "trade-in": VehicleInterest.TRADE_IN,
    "Trade-In": VehicleInterest.TRADE_IN,
    "sell": VehicleInterest.TRADE_IN,
    "test-drive": VehicleInterest.BUY,
    None: VehicleInterest.BUY,
}
CONDITIONS = {"new": "new", "Used": "used", "certified": None, None: None}
ABBREVIATIONS = {"EST": -5, "EDT": -4, "CST": -6, "MDT": -6, "PST": -8, "UTC": 0, "GMT": 0}


def element(tag: str, value: str | None, attrs: str = "") -> str:
    return "" if value is None else f"<{tag}{attrs}>{escape(value)}</{tag}>"


def attribute(name: str, value: str | None) -> str:
    return "" if value is None else f" {name}={quoteattr(value)}"


@dataclass
class Generated:
    """One prospect as XML, with the values the parser should find in it."""

    xml: str
    vehicle: Vehicle | None = None
    created_at: datetime | None = None


@st.composite
def prices(draw: st.DrawFn) -> tuple[str, Decimal]:
    value = Decimal(draw(st.integers(0, 10**9))).scaleb(-draw(st.sampled_from([0, 2])))
    form = draw(st.sampled_from(["{}", "${:,}", "$ {}", "USD {:,}", "{} USD", " {:,} "]))
    return form.format(value), value


@st.composite
def vehicles(draw: st.DrawFn) -> Generated:
    interest = draw(st.sampled_from(list(INTERESTS)))
    status = draw(st.sampled_from(list(CONDITIONS)))
    year = draw(st.none() | st.integers(1900, 2100))
    make, model, trim, stock, vin = (draw(maybe_text) for _ in range(5))
    price_text, price = draw(st.none() | prices()) or (None, None)
    xml = (
        f"<vehicle{attribute('interest', interest)}{attribute('status', status)}>"
        + element("year", None if year is None else str(year))
        + element("make", make)
        + element("model", model)
        + element("trim", trim)
        + element("stock", stock)
        + element("vin", vin)
        + element("price", price_text, ' type="quote" currency="USD"')
        + "</vehicle>"
    )
    vehicle = Vehicle(
        interest=INTERESTS[interest],
        year=year,
        make=make,
        model=model,
        trim=trim,
        stock=stock,
        vin=vin,
        price=price,
        condition=CONDITIONS[status],
    )
    return Generated(xml, vehicle=vehicle)


@st.composite
def requestdates(draw: st.DrawFn, local: tzinfo) -> Generated:
    naive = draw(st.datetimes(datetime(1971, 1, 1), datetime(2090, 12, 31))).replace(microsecond=0)
    written = naive.strftime("%Y-%m-%dT%H:%M:%S")
    form = draw(st.sampled_from(["colon", "compact", "hours", "spaced", "zulu", "abbr", "none"]))
    if form == "none":
        return Generated(written, created_at=naive.replace(tzinfo=local).astimezone(UTC))
    if form == "zulu":
        return Generated(written + "Z", created_at=naive.replace(tzinfo=UTC))
    if form == "abbr":
        abbr = draw(st.sampled_from(sorted(ABBREVIATIONS)))
        offset = timedelta(hours=ABBREVIATIONS[abbr])
        return Generated(f"{written} {abbr}", created_at=(naive - offset).replace(tzinfo=UTC))
    sign = draw(st.sampled_from("+-"))
    hours = draw(st.integers(0, 14))
    minutes = 0 if form == "hours" else draw(st.sampled_from([0, 30, 45]))
    suffix = {
        "colon": f"{sign}{hours:02d}:{minutes:02d}",
        "compact": f"{sign}{hours:02d}{minutes:02d}",
        "hours": f"{sign}{hours:02d}",
        "spaced": f" {sign}{hours}:{minutes:02d}",
    }[form]
    offset = timedelta(hours=hours, minutes=minutes) * (-1 if sign == "-" else 1)
    return Generated(written + suffix, created_at=(naive - offset).replace(tzinfo=UTC))


@st.composite
def prospects(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """A prospect's XML and the LeadIn fields it should produce."""
    lead_id, id_source, provider_name = draw(text), draw(maybe_text), draw(maybe_text)
    dealership = draw(maybe_text)
    date = draw(requestdates(zone_for(dealership)))
    first, last, full = draw(maybe_text), draw(maybe_text), draw(maybe_text)
    emails = draw(st.lists(text, max_size=3, unique=True))
    phones = draw(st.lists(text, max_size=3, unique=True))
    cars = draw(st.lists(vehicles(), max_size=4))
    customer_comment, prospect_comment = draw(maybe_text), draw(maybe_text)
    service, url = draw(maybe_text), draw(maybe_text)

    contact = (
        element("name", first, ' part="first"')
        + element("name", last, ' part="last"')
        + element("name", full)  # no part attribute: the full name
        + "".join(element("email", e) for e in emails)
        + "".join(element("phone", p, ' type="voice"') for p in phones)
    )
    xml = (
        f'<prospect status="new">{element("id", lead_id, attribute("source", id_source))}'
        + element("requestdate", date.xml)
        + "".join(car.xml for car in cars)
        + f"<customer><contact>{contact}</contact>{element('comments', customer_comment)}"
        + "</customer>"
        + element("comments", prospect_comment)
        + f"<vendor>{element('vendorname', dealership)}</vendor>"
        + "<provider>"
        + element("name", provider_name, ' part="full"')
        + element("service", service)
        + element("url", url)
        + "</provider></prospect>"
    )
    comments = "\n".join(c for c in (customer_comment, prospect_comment) if c) or None
    expected: dict[str, object] = {
        "external_id": lead_id,
        "source_system": id_source or provider_name or "adf",
        "created_at": date.created_at,
        "dealership": dealership,
        "lead_source": provider_name,
        "vehicles": tuple(car.vehicle for car in cars),
        "customer": Customer(
            first_name=first,
            last_name=last,
            full_name=full,
            emails=tuple(emails),
            phones=tuple(phones),
        ),
        "comments": comments,
        "provider_service": service,
        "provider_url": url,
    }
    return xml, expected


@settings(max_examples=150, deadline=None)
@given(st.lists(prospects(), min_size=1, max_size=3), st.booleans())
def test_round_trip(generated: list[tuple[str, dict[str, object]]], as_bytes: bool) -> None:
    document = '<?xml version="1.0" encoding="UTF-8"?>\n<?adf version="1.0"?>\n<adf>'
    document += "".join(xml for xml, _ in generated) + "</adf>"
    data: bytes | str = document.encode() if as_bytes else document

    result = parse_adf(data, local_tz_for=zone_for)

    assert result.rejected == []
    assert [number for number, _ in result.leads] == list(range(1, len(generated) + 1))
    for (_, lead), (_, expected) in zip(result.leads, generated, strict=True):
        assert lead.external_id == expected["external_id"]
        assert lead.source_system == expected["source_system"]
        assert lead.created_at == expected["created_at"]
        assert lead.dealership == expected["dealership"]
        assert lead.lead_source == expected["lead_source"]
        assert lead.vehicles == expected["vehicles"]
        assert lead.customer == expected["customer"]
        assert lead.comments == expected["comments"]
        assert lead.extra.get("provider_service") == expected["provider_service"]
        assert lead.extra.get("provider_url") == expected["provider_url"]
        assert [event.occurred_at for event in lead.events] == [lead.created_at]


# --- nothing but AdfDocumentError -----------------------------------------------------------

TOKENS = [
    '<?xml version="1.0"?>',
    '<?adf version="1.0"?>',
    "<!DOCTYPE adf>",
    "<adf>",
    "</adf>",
    "<prospect>",
    "</prospect>",
    '<id source="s">',
    "<id>",
    "</id>",
    "<requestdate>",
    "</requestdate>",
    '<vehicle interest="sell" status="used">',
    "<vehicle>",
    "</vehicle>",
    "<year>",
    "</year>",
    "<price>",
    "</price>",
    "<customer>",
    "</customer>",
    "<contact>",
    "</contact>",
    '<name part="first">',
    "<name>",
    "</name>",
    "<email>",
    "</email>",
    "<vendor><vendorname>",
    "</vendorname></vendor>",
    "<provider>",
    "</provider>",
    "<comments>",
    "</comments>",
    "2024-03-05T14:30:00",
    "-05:00",
    " EST",
    "HST-14:59",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-05:00",
    "$32,500.00",
    "2021",
    "1850",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#xD800;",
    "<![CDATA[<x>]]>",
    "\ufeff",
    " ",
    "\n",
]


def check_only_document_errors(data: bytes | str) -> None:
    try:
        result = parse_adf(data, local_tz_for=zone_for)
    except AdfDocumentError:
        return
    assert isinstance(result, AdfParseResult)
    rows = [number for number, _ in result.leads] + [r.row for r in result.rejected]
    assert sorted(rows) == list(range(1, len(rows) + 1))
    assert all(record.errors for record in result.rejected)


@settings(max_examples=200, deadline=None)
@given(st.text() | st.binary())
def test_arbitrary_input_raises_only_document_errors(data: bytes | str) -> None:
    check_only_document_errors(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=5), max_size=40).map("".join))
def test_tag_soup_raises_only_document_errors(soup: str) -> None:
    check_only_document_errors("<adf><prospect>" + soup)
    check_only_document_errors(("<adf><prospect>" + soup + "</prospect></adf>").encode())


@settings(max_examples=100, deadline=None)
@given(prospects(), st.data())
def test_damaged_documents_raise_only_document_errors(
    generated: tuple[str, dict[str, object]], data: st.DataObject
) -> None:
    document = f"<adf>{generated[0]}</adf>"
    start = data.draw(st.integers(0, len(document)))
    end = data.draw(st.integers(start, min(len(document), start + 20)))
    insert = data.draw(st.sampled_from(TOKENS) | st.text(max_size=5))
    check_only_document_errors(document[:start] + insert + document[end:])
