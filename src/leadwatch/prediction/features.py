"""Model features of a lead as known at a moment ``as_of``.

Everything here is computed from what has happened by ``as_of``: a lead's first contact only
counts if it happened by then, and a lead not yet contacted carries the time it has waited so
far. Times are naive local times (or any consistent clock); ``as_of`` must use the same clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

DEFAULT_FEATURES: tuple[str, ...] = (
    "rep",
    "vehicle",
    "source",
    "hour_created",
    "day_created",
    "contact_delay",
)
# Past a month the exact wait no longer matters and very old leads would otherwise dominate.
MAX_WAIT_HOURS = 30 * 24.0

AsOf = pd.Timestamp | pd.Series


def build_features(
    df: pd.DataFrame, *, as_of: AsOf, features: Sequence[str] = DEFAULT_FEATURES
) -> pd.DataFrame:
    """One row per lead (same index as ``df``) with the columns named in ``features``.

    ``df`` needs ``created_at`` (datetime) and, for the derived features, ``rep``,
    ``vehicle_make``/``vehicle_model``, ``lead_source`` and ``contacted_at`` (datetime, NaT when
    never contacted). ``as_of`` is one timestamp or a Series aligned with ``df`` (e.g. "now" in
    each dealership's local time). ``contact_delay`` also adds the 0/1 column ``contacted``.
    Any other column of ``df`` named in ``features`` is taken as is: numeric stays numeric,
    anything else becomes categorical.
    """
    out = pd.DataFrame(index=df.index)
    for name in features:
        if name == "contact_delay":
            _contact_delay(df, as_of, out)
        elif name in _DERIVED:
            out[name] = _DERIVED[name](df)
        elif name in df.columns:
            column = df[name]
            numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(
                column
            )
            out[name] = column.astype("float64") if numeric else _categorical(column)
        else:
            raise KeyError(f"feature {name!r} is neither derived nor a column of the leads")
    return out


def _categorical(column: pd.Series) -> pd.Series:
    # Plain object strings; the model's encoder fixes the category set at fit time.
    return column.astype("object").where(column.notna(), None)


def hours_between(start: pd.Series, end: AsOf) -> pd.Series:
    """Hours from ``start`` to ``end`` as floats (NaN where either is missing)."""
    return pd.Series(pd.to_timedelta(end - start).dt.total_seconds() / 3600.0, index=start.index)


def _vehicle(df: pd.DataFrame) -> pd.Series:
    make, model = df["vehicle_make"].astype("object"), df["vehicle_model"].astype("object")
    joined = make.str.cat(model, sep=" ")
    return _categorical(joined)  # missing make or model -> missing vehicle


def _contact_delay(df: pd.DataFrame, as_of: AsOf, out: pd.DataFrame) -> None:
    created, contacted_at = df["created_at"], df["contacted_at"]
    # A contact logged after as_of has not happened yet from the model's point of view.
    contacted = contacted_at.notna() & (contacted_at <= as_of)
    delay = hours_between(created, contacted_at)
    waited = hours_between(created, as_of).clip(upper=MAX_WAIT_HOURS)
    # Clock skew in source systems can put a contact before creation; no wait is negative.
    # A missing creation time leaves the delay NaN, filled later by the model's encoder.
    out["contact_delay"] = delay.where(contacted, waited).clip(lower=0.0)
    out["contacted"] = contacted.astype("float64")


_DERIVED: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "rep": lambda df: _categorical(df["rep"]),
    "vehicle": _vehicle,
    "source": lambda df: _categorical(df["lead_source"]),
    "hour_created": lambda df: df["created_at"].dt.hour.astype("float64"),
    "day_created": lambda df: df["created_at"].dt.day_of_week.astype("float64"),  # Monday = 0
}
