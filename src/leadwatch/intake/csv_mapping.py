"""Which CSV column holds which lead field.

CRM exports name their columns in many ways ("LeadID", "Lead Id", "lead_number"). This module
turns a header row into a ColumnMap: for each canonical field, the index of the column that
holds it. Headings are matched through built-in aliases, ignoring case, spaces, underscores,
hyphens and dots; a user mapping file (``--mapping FILE``) covers the headings we don't know.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from leadwatch.core.leads import STAGE_TIME_FIELDS

CANONICAL_FIELDS: tuple[str, ...] = (
    "lead_id",
    "source_system",
    "dealership",
    "created_at",
    "rep",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "vehicle_trim",
    "vehicle_stock",
    "vehicle_vin",
    "vehicle_price",
    "vehicle_condition",
    "lead_source",
    "customer_first_name",
    "customer_last_name",
    "customer_name",
    "customer_email",
    "customer_phone",
    "status",
    "comments",
    *STAGE_TIME_FIELDS,
)
REQUIRED_FIELDS: tuple[str, ...] = ("lead_id", "created_at")

# A user mapping may send a column here to keep it as an extra even when its heading looks
# like a known field (e.g. a second phone column that would otherwise clash with the first).
EXTRA_TARGET = "extra"

# Headings seen in CRM exports, per canonical field. Each canonical name is an alias of itself.
_ALIASES: dict[str, tuple[str, ...]] = {
    "lead_id": ("LeadID", "Lead Id", "lead_number", "Lead No", "Lead #", "ID", "CRM Lead ID"),
    "source_system": ("SourceSystem", "CRM", "CRM Name"),
    "dealership": ("Dealer", "Store", "Rooftop", "Dealership", "Dealer Name", "Store Name"),
    "created_at": (
        "created_date",
        "CreatedDate",
        "Created",
        "Created On",
        "Create Date",
        "Lead Date",
        "Date Created",
        "Lead Created",
        "Received Date",
    ),
    "rep": (
        "SalesRep",
        "Sales Rep",
        "Salesperson",
        "Sales Person",
        "Sales Consultant",
        "Assigned To",
        "Assigned Rep",
        "rep_name",
    ),
    "vehicle_year": ("Year", "VehicleYear", "Model Year"),
    "vehicle_make": ("Make", "VehicleMake"),
    "vehicle_model": ("Model", "VehicleModel"),
    "vehicle_trim": ("Trim", "VehicleTrim"),
    "vehicle_stock": ("StockNumber", "Stock #", "Stock", "Stock No", "Stock Num"),
    "vehicle_vin": ("VIN", "Vehicle VIN", "VIN Number"),
    "vehicle_price": ("VehiclePrice", "Price", "MSRP"),
    "vehicle_condition": ("Condition", "VehicleCondition", "New/Used", "NewUsed", "Stock Type"),
    "lead_source": ("LeadSource", "Source", "Provider", "Lead Provider"),
    "customer_first_name": ("FirstName", "First", "Customer First Name"),
    "customer_last_name": ("LastName", "Last", "Customer Last Name"),
    "customer_name": ("CustomerName", "Customer", "Full Name", "Name"),
    "customer_email": ("Email", "E-mail", "Email Address", "Customer Email"),
    "customer_phone": ("Phone", "Cell", "Cell Phone", "Mobile", "Phone Number", "Customer Phone"),
    "status": ("Status", "Lead Status"),
    "comments": ("Notes", "Comments", "Comment", "Note"),
    "contacted_at": (
        "contacted_date",
        "FirstContactDate",
        "First Contact",
        "First Contacted",
        "Contacted",
    ),
    "appointment_at": ("appointment_date", "Appointment", "Appt Date", "Appt"),
    "test_drive_at": ("test_drive_date", "Test Drive", "Demo Date"),
    "offer_at": ("offer_date", "Offer", "Proposal Date", "Quote Date"),
    "sold_at": ("sold_date", "SoldDate", "Sold", "Sale Date", "Date Sold"),
    "delivered_at": ("delivered_date", "Delivered", "Delivery Date"),
    "lost_at": ("lost_date", "Lost", "Date Lost"),
}

_IGNORED_IN_HEADINGS = re.compile(r"[\s_\-.]+")


def normalize_heading(heading: str) -> str:
    """The form headings are compared in: "Lead Id", "lead_id" and "LEAD-ID" all become "leadid"."""
    return _IGNORED_IN_HEADINGS.sub("", heading.replace("\ufeff", "")).casefold()


def _build_alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for field in CANONICAL_FIELDS:
        for heading in (field, *_ALIASES.get(field, ())):
            key = normalize_heading(heading)
            if index.setdefault(key, field) != field:  # a typo in the table above
                raise AssertionError(f"alias {heading!r} claimed by {index[key]} and {field}")
    return index


_ALIAS_INDEX = _build_alias_index()


class MappingError(ValueError):
    """The header cannot be matched to lead fields, or a mapping file is wrong."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Where each canonical field sits in the rows of one file."""

    headings: tuple[str, ...]
    fields: Mapping[str, int]  # canonical field -> column index
    extras: tuple[tuple[int, str], ...]  # (column index, key in LeadIn.extra) for unmapped columns

    @property
    def width(self) -> int:
        return len(self.headings)

    def index(self, field: str) -> int | None:
        return self.fields.get(field)

    def label(self, field: str) -> str:
        """How error messages name a field: with the user's heading when it differs."""
        index = self.fields.get(field)
        if index is None or self.headings[index] == field:
            return field
        return f"{field} (column '{self.headings[index]}')"


def _valid_targets() -> str:
    return ", ".join((*CANONICAL_FIELDS, EXTRA_TARGET))


def _check_targets(mapping: Mapping[str, str], origin: str) -> None:
    for heading, target in mapping.items():
        if target not in CANONICAL_FIELDS and target != EXTRA_TARGET:
            raise MappingError(
                f"{origin}: column {heading!r} maps to unknown field {target!r}; "
                f"valid fields are: {_valid_targets()}"
            )


def resolve_header(header: list[str], user_mapping: dict[str, str] | None) -> ColumnMap:
    """Match a header row to canonical fields; raises MappingError when it cannot."""
    headings = tuple(h.replace("\ufeff", "").strip() for h in header)
    user = user_mapping or {}
    _check_targets(user, "mapping")
    user_index = {normalize_heading(k): v for k, v in user.items()}

    # Columns claiming each field; the user's claims beat the aliases' claims.
    by_user: dict[str, list[int]] = {}
    by_alias: dict[str, list[int]] = {}
    unmapped: list[int] = []
    for index, heading in enumerate(headings):
        key = normalize_heading(heading)
        target = user_index.get(key)
        if target == EXTRA_TARGET:
            unmapped.append(index)
        elif target is not None:
            by_user.setdefault(target, []).append(index)
        elif key in _ALIAS_INDEX:
            by_alias.setdefault(_ALIAS_INDEX[key], []).append(index)
        else:
            unmapped.append(index)

    fields: dict[str, int] = {}
    for field in CANONICAL_FIELDS:
        claims = by_user.get(field) or by_alias.get(field)
        if not claims:
            continue
        if len(claims) > 1:
            raise MappingError(_clash_message(field, claims, headings))
        fields[field] = claims[0]
        if field in by_user:  # the alias-matched column lost to the user's choice: keep its data
            unmapped.extend(by_alias.get(field, ()))

    missing = [f for f in REQUIRED_FIELDS if f not in fields]
    if missing:
        raise MappingError(_missing_message(missing, headings))
    return ColumnMap(headings, fields, _extra_keys(sorted(unmapped), headings))


def _clash_message(field: str, claims: list[int], headings: tuple[str, ...]) -> str:
    named = " and ".join(f"'{headings[i]}' (column {i + 1})" for i in claims)
    return (
        f"columns {named} all map to {field}: rename all but one, or pass --mapping FILE "
        f'mapping the others elsewhere (e.g. "{headings[claims[-1]]} = {EXTRA_TARGET}")'
    )


def _missing_message(missing: list[str], headings: tuple[str, ...]) -> str:
    found = ", ".join(f"'{h}'" for h in headings) or "(none)"
    return (
        f"missing required column(s) {', '.join(missing)}; headings found: {found}. "
        f"Rename the columns, or pass --mapping FILE with lines like "
        f'"Their Column = {missing[0]}"'
    )


def _extra_keys(indexes: list[int], headings: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    """Keys for LeadIn.extra: the heading, made unique and never empty."""
    seen: set[str] = set()
    keys: list[tuple[int, str]] = []
    for index in indexes:
        key = headings[index] or f"column {index + 1}"
        if key in seen:
            key = f"{key} (column {index + 1})"
        seen.add(key)
        keys.append((index, key))
    return tuple(keys)


def load_mapping_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a user mapping: JSON object, TOML table, or "Their Column = canonical_field" lines."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read mapping file {file}: {exc}") from None
    if file.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        mapping = _parse_json(text, file)
    elif file.suffix.lower() == ".toml":
        mapping = _parse_toml(text, file)
    else:
        # Lines such as "Lead Number = lead_id" are not TOML (bare key with a space, unquoted
        # value), so try TOML for quoted files and fall back to the simple line form.
        try:
            mapping = _parse_toml(text, file)
        except MappingError:
            mapping = _parse_lines(text, file)
    _check_targets(mapping, f"mapping file {file}")
    return mapping


def _string_pairs(data: object, file: Path, kind: str) -> dict[str, str]:
    if not isinstance(data, dict):
        raise MappingError(f"mapping file {file}: expected a {kind} of column -> field")
    for key, value in data.items():
        if not isinstance(value, str):
            raise MappingError(
                f"mapping file {file}: column {key!r} maps to {value!r}, expected a field name"
            )
    return {str(k): v for k, v in data.items()}


def _parse_json(text: str, file: Path) -> dict[str, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MappingError(f"mapping file {file} is not valid JSON: {exc}") from None
    return _string_pairs(data, file, "JSON object")


def _parse_toml(text: str, file: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping file {file} is not valid TOML: {exc}") from None
    return _string_pairs(data, file, "TOML table")


def _parse_lines(text: str, file: Path) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # Split on the last "=": a heading may contain one, a field name never does.
        heading, equals, target = stripped.rpartition("=")
        heading, target = heading.strip().strip("\"'"), target.strip().strip("\"'")
        if not equals or not heading or not target:
            raise MappingError(
                f"mapping file {file}, line {number}: expected 'Their Column = canonical_field', "
                f"got {stripped!r}"
            )
        mapping[heading] = target
    return mapping
