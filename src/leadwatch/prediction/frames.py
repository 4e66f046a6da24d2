"""Lead tables as the prediction layer wants them: parsed times, observed outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

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
