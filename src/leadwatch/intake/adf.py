"""Parse ADF 1.0 ("Auto-lead Data Format") XML documents into leads.

An ADF document usually arrives as an e-mail body::

    <?xml version="1.0"?><?adf version="1.0"?>
    <adf><prospect status="new"><id source="DealerSite">ABC123</id>...</prospect></adf>

Each ``<prospect>`` becomes one ``LeadIn`` or one ``RejectedRecord``; only a document that cannot
be read at all raises ``AdfDocumentError``. Senders are sloppy, so element and attribute names
are matched case-insensitively, namespaces are ignored, and text is stripped (an element with
only whitespace counts as absent). The XML comes from outside, so it is parsed with defusedxml
and any entity declaration is refused (billion laughs, XXE).
"""

from __future__ import annotations

import codecs
import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from xml.etree.ElementTree import Element, ParseError, tostring
from xml.parsers.expat import ErrorString

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import fromstring

from leadwatch.core.leads import (
    Customer,
    EventType,
    LeadEventIn,
    LeadIn,
    RecordError,
    RejectedRecord,
    Vehicle,
    VehicleInterest,
)
from leadwatch.core.timeparse import DateParseError, parse_datetime

# Real ADF is about six levels deep. The limit keeps recursive code (ElementTree.tostring for
# the rejected record's raw text) far from Python's recursion limit on hostile input.
_MAX_DEPTH = 64

_INTERESTS = {
    "buy": VehicleInterest.BUY,
    "lease": VehicleInterest.LEASE,
    "trade-in": VehicleInterest.TRADE_IN,
    "trade in": VehicleInterest.TRADE_IN,
    "tradein": VehicleInterest.TRADE_IN,
    "sell": VehicleInterest.TRADE_IN,  # the shopper sells their car to the dealer
}
_CONDITIONS = frozenset({"new", "used"})
_NAME_PARTS = ("first", "middle", "last", "suffix")
_ADDRESS_FIELDS = {
    "city": "customer_city",
    "regioncode": "customer_region",
    "postalcode": "customer_postalcode",
    "country": "customer_country",
}

_YEAR = re.compile(r"[0-9]{1,6}")
# "$32,500.00", "32500", "USD 32,500", "32500.00 USD". Thousands separators must group by
# three, so a European "32.500,00" is an error instead of silently becoming 32.5.
_PRICE = re.compile(
    r"(?:[A-Za-z]{3}\s*)?[$€£]?\s*"
    r"(?P<number>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
    r"\s*(?:[A-Za-z]{3})?"
)
# Some senders put the <?adf?> instruction before the XML declaration, which XML forbids.
_MISPLACED_DECL_STR = re.compile(r"(<\?adf\b[^>]*>\s*)(<\?xml\s[^>]*\?>)")
_MISPLACED_DECL_BYTES = re.compile(rb"(<\?adf\b[^>]*>\s*)(<\?xml\s[^>]*\?>)")
_LEADING_SPACE = " \t\r\n"


class AdfDocumentError(ValueError):
    """The whole document is unusable (not XML, not ADF, or unsafe); nothing was imported."""


@dataclass(frozen=True, slots=True)
class AdfParseResult:
    leads: list[tuple[int, LeadIn]]  # (prospect number, 1-based, lead)
    rejected: list[RejectedRecord]  # row = prospect number


def parse_adf(
    data: bytes | str,
    *,
    local_tz_for: Callable[[str | None], tzinfo],
    default_source_system: str = "adf",
    max_bytes: int = 5_000_000,
) -> AdfParseResult:
    """Read every ``<prospect>`` of an ADF document.

    ``local_tz_for(dealership name or None)`` gives the zone for request dates without an
    offset; exceptions it raises are passed through unchanged.
    """
    root = _parse_document(data, max_bytes)
    prospects = [child for child in root if _name(child) == "prospect"]
    if not prospects:
        raise AdfDocumentError(
            "ADF document has no <prospect> elements: each lead must be a <prospect> "
            "directly inside <adf>"
        )
    result = AdfParseResult(leads=[], rejected=[])
    for number, prospect in enumerate(prospects, start=1):
        read = _read_prospect(number, prospect, local_tz_for, default_source_system)
        if isinstance(read, LeadIn):
            result.leads.append((number, read))
        else:
            result.rejected.append(read)
    return result


# --- the document -------------------------------------------------------------------------


def _parse_document(data: bytes | str, max_bytes: int) -> Element:
    _check_size(data, max_bytes)
    text = _tidy_prolog(data)
    try:
        root = fromstring(text, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except EntitiesForbidden as exc:
        raise AdfDocumentError(
            f"ADF document declares the XML entity {exc.name!r}, which is refused for safety "
            "(billion-laughs / XXE); remove the <!DOCTYPE>/<!ENTITY> declarations"
        ) from exc
    except (ExternalReferenceForbidden, DTDForbidden, DefusedXmlException) as exc:
        raise AdfDocumentError(
            f"ADF document refers to an external DTD or entity ({type(exc).__name__}), which is "
            "refused for safety (XXE); remove the <!DOCTYPE> declaration"
        ) from exc
    except ParseError as exc:
        raise AdfDocumentError(_describe_parse_error(exc)) from exc
    except (LookupError, ValueError) as exc:  # unknown declared encoding, unencodable text
        raise AdfDocumentError(f"ADF document cannot be decoded ({exc}); send it as UTF-8") from exc
    if _name(root) != "adf":
        raise AdfDocumentError(
            f"root element is <{root.tag}>, not <adf>: this is not an ADF lead document"
        )
    _check_depth(root)
    return root


def _check_size(data: bytes | str, max_bytes: int) -> None:
    # A str is at least one byte a character, so its length is a cheap first check.
    size = len(data)
    if isinstance(data, str) and size <= max_bytes:
        size = len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise AdfDocumentError(
            f"ADF document is {size} bytes, more than the limit of {max_bytes}; "
            "split it into several documents"
        )


def _tidy_prolog(data: bytes | str) -> bytes | str:
    """Drop what e-mail adds before the XML declaration (a BOM, blank lines), which XML forbids."""
    if isinstance(data, bytes):
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            try:
                data = data.decode("utf-16")
            except UnicodeDecodeError as exc:
                raise AdfDocumentError(
                    f"ADF document starts with a UTF-16 byte order mark but is not UTF-16 "
                    f"({exc}); send it as UTF-8"
                ) from exc
        else:
            data = data.lstrip(_LEADING_SPACE.encode())
            while data.startswith(codecs.BOM_UTF8):
                data = data.removeprefix(codecs.BOM_UTF8).lstrip(_LEADING_SPACE.encode())
            return _MISPLACED_DECL_BYTES.sub(rb"\2\1", data, count=1)
    # A str is handed to expat as UTF-8 whatever its declaration says, so only the prolog matters.
    data = data.lstrip(_LEADING_SPACE + "\ufeff")
    return _MISPLACED_DECL_STR.sub(r"\2\1", data, count=1)


def _describe_parse_error(exc: ParseError) -> str:
    line, column = exc.position
    try:
        reason = ErrorString(exc.code)
    except (TypeError, ValueError):
        reason = str(exc)
    return (
        f"ADF document is not well-formed XML: {reason} at line {line}, column {column + 1}; "
        "check that every tag is closed and that & and < in text are written &amp; and &lt;"
    )


def _check_depth(root: Element) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise AdfDocumentError(
                f"ADF document nests elements more than {_MAX_DEPTH} levels deep; "
                "real ADF is a handful of levels, so this is not a lead document"
            )
        stack.extend((child, depth + 1) for child in element)


# --- element helpers (case-insensitive, namespace-blind, empty = absent) ------------------


def _name(element: Element) -> str:
    return element.tag.rsplit("}", 1)[-1].lower()


def _children(parent: Element | None, name: str) -> list[Element]:
    if parent is None:
        return []
    return [child for child in parent if _name(child) == name]


def _child(parent: Element | None, name: str) -> Element | None:
    found = _children(parent, name)
    return found[0] if found else None


def _text(element: Element | None) -> str | None:
    if element is None:
        return None
    return "".join(element.itertext()).strip() or None


def _first_text(parent: Element | None, name: str) -> str | None:
    """The first non-empty child of that name: senders repeat elements and leave some empty."""
    for child in _children(parent, name):
        value = _text(child)
        if value is not None:
            return value
    return None


def _all_texts(parent: Element | None, name: str) -> list[str]:
    return [value for child in _children(parent, name) if (value := _text(child)) is not None]


def _attr(element: Element, name: str) -> str | None:
    for key, value in element.attrib.items():
        if key.rsplit("}", 1)[-1].lower() == name:
            return value.strip() or None
    return None


def _raw(element: Element) -> str:
    detached = copy.copy(element)
    detached.tail = None  # the whitespace after </prospect> is not part of the record
    return tostring(detached, encoding="unicode")


# --- one prospect -------------------------------------------------------------------------


@dataclass
class _Problems:
    row: int
    errors: list[RecordError] = field(default_factory=list)

    def add(self, field_name: str, message: str) -> None:
        self.errors.append(RecordError(row=self.row, field=field_name, message=message))


def _read_prospect(
    number: int,
    prospect: Element,
    local_tz_for: Callable[[str | None], tzinfo],
    default_source_system: str,
) -> LeadIn | RejectedRecord:
    problems = _Problems(number)
    vendor = _child(prospect, "vendor")
    provider = _child(prospect, "provider")
    dealership = _first_text(vendor, "vendorname")
    provider_name = _first_text(provider, "name")

    lead_id = _read_id(prospect, provider, provider_name or default_source_system, problems)
    created_at = _read_requestdate(prospect, local_tz_for(dealership), problems)
    vehicles = tuple(
        _read_vehicle(vehicle, index, problems)
        for index, vehicle in enumerate(_children(prospect, "vehicle"), start=1)
    )
    customer_element = _child(prospect, "customer")
    customer, extra = _read_customer(customer_element)

    if problems.errors or lead_id is None or created_at is None:
        return RejectedRecord(row=number, raw=_raw(prospect), errors=tuple(problems.errors))

    extra.update(_vendor_and_provider_extra(vendor, provider))
    if status := _attr(prospect, "status"):
        extra["prospect_status"] = status  # "new" or "resend"
    comments = [_first_text(customer_element, "comments"), _first_text(prospect, "comments")]
    source_system, external_id = lead_id
    return LeadIn(
        source_system=source_system,
        external_id=external_id,
        created_at=created_at,
        dealership=dealership,
        lead_source=provider_name,
        vehicles=vehicles,
        customer=customer,
        comments="\n".join(c for c in comments if c) or None,
        events=(LeadEventIn(type=EventType.CREATED, occurred_at=created_at, actor="adf"),),
        extra=extra,
    )


def _read_id(
    prospect: Element, provider: Element | None, fallback_source: str, problems: _Problems
) -> tuple[str, str] | None:
    """(source system, external id): the prospect's own <id>, else the provider's."""
    for id_element in _children(prospect, "id") + _children(provider, "id"):
        value = _text(id_element)
        if value is not None:
            return _attr(id_element, "source") or fallback_source, value
    problems.add(
        "id",
        "no <id> in the prospect or its <provider>: a lead id is required to keep imports "
        "idempotent (importing the same lead again must update it, not duplicate it); "
        'add <id source="...">',
    )
    return None


def _read_requestdate(prospect: Element, local_tz: tzinfo, problems: _Problems) -> datetime | None:
    text = _first_text(prospect, "requestdate")
    if text is None:
        problems.add("requestdate", "missing <requestdate>: the time the lead was made is required")
        return None
    try:
        return parse_datetime(text, local_tz)
    except DateParseError as exc:
        problems.add("requestdate", str(exc))
    except (ValueError, OverflowError) as exc:  # offsets or dates past what datetime holds
        problems.add("requestdate", f"date {text!r} is out of range: {exc}")
    return None


def _read_vehicle(vehicle: Element, index: int, problems: _Problems) -> Vehicle:
    where = f"vehicle[{index}]"
    interest = (_attr(vehicle, "interest") or "").lower()
    condition = (_attr(vehicle, "status") or "").lower()
    return Vehicle(
        interest=_INTERESTS.get(interest, VehicleInterest.BUY),  # ADF's default is "buy"
        year=_read_year(_first_text(vehicle, "year"), f"{where}.year", problems),
        make=_first_text(vehicle, "make"),
        model=_first_text(vehicle, "model"),
        trim=_first_text(vehicle, "trim"),
        stock=_first_text(vehicle, "stock"),
        vin=_first_text(vehicle, "vin"),
        price=_read_price(_first_text(vehicle, "price"), f"{where}.price", problems),
        condition=condition if condition in _CONDITIONS else None,
    )


def _read_year(text: str | None, field_name: str, problems: _Problems) -> int | None:
    if text is None:
        return None
    if not _YEAR.fullmatch(text):
        problems.add(field_name, f"year {text!r} is not a number: write the model year, e.g. 2021")
        return None
    year = int(text)
    if not 1900 <= year <= 2100:
        problems.add(field_name, f"year {year} is outside 1900..2100")
        return None
    return year


def _read_price(text: str | None, field_name: str, problems: _Problems) -> Decimal | None:
    if text is None:
        return None
    match = _PRICE.fullmatch(text)
    if match is None:
        problems.add(
            field_name, f"price {text!r} is not an amount: write it like 32500.00 or $32,500.00"
        )
        return None
    return Decimal(match["number"].replace(",", ""))


def _read_customer(customer: Element | None) -> tuple[Customer, dict[str, str]]:
    """The customer, and their address as extra fields (nothing matches leads on it yet)."""
    names: dict[str, str] = {}
    emails: list[str] = []
    phones: list[str] = []
    extra: dict[str, str] = {}
    for contact in _children(customer, "contact"):
        for part, value in _name_parts(contact).items():
            names.setdefault(part, value)
        emails.extend(_all_texts(contact, "email"))
        phones.extend(_all_texts(contact, "phone"))
        address = _child(contact, "address")
        if address is not None and not extra:  # the first contact with an address
            extra = _address_extra(address)
    full_name = names.get("full")
    if full_name is None and ("middle" in names or "suffix" in names):
        # Customer has no middle-name or suffix field; keep them in the full name.
        full_name = _joined_name(names)
    customer_value = Customer(
        first_name=names.get("first"),
        last_name=names.get("last"),
        full_name=full_name,
        emails=tuple(dict.fromkeys(emails)),  # the same number is often sent as home and cell
        phones=tuple(dict.fromkeys(phones)),
    )
    return customer_value, extra


def _address_extra(address: Element) -> dict[str, str]:
    extra = {
        key: value for tag, key in _ADDRESS_FIELDS.items() if (value := _first_text(address, tag))
    }
    streets = _all_texts(address, "street")
    if streets:
        extra["customer_street"] = ", ".join(streets)
    return extra


def _vendor_and_provider_extra(vendor: Element | None, provider: Element | None) -> dict[str, str]:
    found = {
        "vendor_contact": _contact_name(_child(vendor, "contact")),
        "provider_service": _first_text(provider, "service"),
        "provider_url": _first_text(provider, "url"),
        "provider_id": _first_text(provider, "id"),
    }
    return {key: value for key, value in found.items() if value is not None}


def _contact_name(contact: Element | None) -> str | None:
    parts = _name_parts(contact)
    return parts.get("full") or _joined_name(parts)


def _name_parts(contact: Element | None) -> dict[str, str]:
    """{part: text} of a contact's <name> elements; a <name> without part is the full name."""
    parts: dict[str, str] = {}
    for name in _children(contact, "name"):
        value = _text(name)
        if value is not None:
            parts.setdefault((_attr(name, "part") or "full").lower(), value)
    return parts


def _joined_name(parts: dict[str, str]) -> str | None:
    return " ".join(parts[part] for part in _NAME_PARTS if part in parts) or None
