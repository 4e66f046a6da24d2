"""Lead tables as the prediction layer wants them: parsed times, observed outcomes."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from leadwatch.core.leads import STAGE_TIME_FIELDS

TIME_COLUMNS = ("created_at", *STAGE_TIME_FIELDS)
REQUIRED = ("created_at",)


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with time columns as naive datetimes (aware ones in UTC), blanks as NaT, and the
    columns the derived features read present (missing ones as empty)."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise KeyError(f"the leads need a {missing[0]!r} column (got {list(df.columns)[:12]})")
    out = df.copy()
    for column in TIME_COLUMNS:
        if column in out.columns:
            out[column] = _datetimes(out[column], column)
        elif column in ("contacted_at", "sold_at"):
            out[column] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
    for column in ("rep", "vehicle_make", "vehicle_model", "lead_source"):
        if column not in out.columns:
            out[column] = None
    if "vehicle_price" in out.columns:
        out["vehicle_price"] = pd.to_numeric(out["vehicle_price"], errors="coerce")
    return out


def from_mapping(lead: Mapping[str, Any]) -> pd.DataFrame:
    return prepare(pd.DataFrame([dict(lead)]))


def _datetimes(column: pd.Series, name: str) -> pd.Series:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        converted: pd.Series = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return converted
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column
    text = column.astype("object").where(column.notna(), None)
    text = text.where(text != "", None)
    try:  # one ISO form for the whole column is the common case, and ten times faster
        parsed = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        blank = text.astype("string").str.strip().eq("").fillna(False).astype(bool)
        text = text.where(~blank, None)
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna() & text.notna()
    if bad.any():
        first = text[bad].iloc[0]
        raise ValueError(
            f"{int(bad.sum())} value(s) of {name} are not dates, e.g. {first!r} "
            "(use ISO 8601, e.g. 2025-03-05 14:30)"
        )
    # Offsets (if any) were applied; the model works on one naive clock.
    return parsed.dt.tz_localize(None)


def latest_time(df: pd.DataFrame) -> pd.Timestamp:
    """The latest moment the data knows of: the default as-of date."""
    stamps = [df[c].max() for c in TIME_COLUMNS if c in df.columns]
    known = [s for s in stamps if not pd.isna(s)]
    if not known:
        raise ValueError("the leads have no dates")
    return pd.Timestamp(max(known))


def sold_within(df: pd.DataFrame, days: int) -> np.ndarray:
    """1 where the lead sold within ``days`` of creation, else 0 (use on closed windows only)."""
    delay = (df["sold_at"] - df["created_at"]).dt.total_seconds() / 86_400.0
    return (delay.notna() & (delay <= days)).to_numpy(dtype=np.int8)


def read_csv_chunks(
    path: Path,
    *,
    columns: Collection[str] | None = None,
    renames: Mapping[str, str] | None = None,
    block_bytes: int = 32 << 20,
) -> Iterator[pd.DataFrame]:
    """A lead CSV in chunks of about ``block_bytes``, read by Arrow's multithreaded reader:
    the ``columns`` wanted that the file has (headings as in the file; all when None),
    renamed by ``renames``,
    every value as the text it is ("" when empty), except the time columns, which come
    parsed (naive, as `prepare` gives them) wherever every value of the chunk is ISO 8601
    without an offset; other forms are left as text for `prepare` to parse and to report.
    Quoted line breaks and a UTF-8 byte order mark are handled."""
    names = dict(renames or {})
    text = _all_text(path, columns)  # wanted columns the file lacks are left out, not errors
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=block_bytes),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                include_columns=list(text),
                column_types=text,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
            ),
        )
        for batch in reader:
            parsed: dict[str, pa.Array] = {}
            for heading, values in zip(batch.schema.names, batch.columns, strict=True):
                name = names.get(heading, heading)
                parsed[name] = _arrow_times(values) if name in TIME_COLUMNS else values
            yield pa.table(parsed).to_pandas()
    except pa.ArrowInvalid as exc:
        raise ValueError(f"not a readable CSV: {exc}") from None


def _all_text(path: Path, columns: Collection[str] | None) -> dict[str, pa.DataType]:
    """Every column read as text: types are ours to decide, not guessed from a sample."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        import csv

        header = next(csv.reader(handle), [])
    wanted = header if columns is None else [h for h in header if h in set(columns)]
    return dict.fromkeys(wanted, pa.string())


def _arrow_times(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """ISO 8601 text -> timestamps, blanks -> null; the text itself when any value is in
    another form (US dates, offsets), which `prepare` then parses the slower way."""
    trimmed = pc.utf8_trim_whitespace(values)
    blank = pc.equal(trimmed, "")
    try:
        return pc.cast(pc.if_else(blank, pa.scalar(None, pa.string()), trimmed), pa.timestamp("ns"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return values
