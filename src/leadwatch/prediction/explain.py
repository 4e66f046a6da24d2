"""Why a lead scores as it does, in plain words: its top factors in percentage points.

A factor's effect is "what if this lead were typical in this one respect": the feature is set
to the training slice's typical value (``reference_values``) and the change in P(sale within
30 days) is the effect, ``(p_lead - p_with_reference) * 100`` points. This works for any model
(it only needs a scoring function), is exact for the one substitution it describes and reads
naturally ("first contact after 7.5 h: -9 pts" = a typically fast contact would be worth 9
points more). The effects are not additive: they do not sum to the gap to the average lead.

The contact delay is explained together with the ``contacted`` flag: a delay means "waited
before the first contact" or "still waiting" depending on the flag, so the two are swapped for
the reference as a pair and the flag is never a factor of its own.

Pure computation: the caller passes the scoring function (e.g. a fitted model's P30 column).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadwatch.prediction.features import MAX_WAIT_HOURS

PredictP30 = Callable[[pd.DataFrame], npt.ArrayLike]
Floats = npt.NDArray[np.float64]

CONTACT_DELAY, CONTACTED = "contact_delay", "contacted"
MIN_POINTS = 0.5  # smaller effects are noise to a sales manager
BATCH_LEADS = 50_000  # leads per scoring call: each lead is scored once per feature plus once
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Categorical features named in words; the value follows the label.
LABELS = {"source": "source", "rep": "rep", "vehicle": "vehicle"}


@dataclass(frozen=True)
class Factor:
    """One reason for a lead's score: the lead's ``value`` of ``feature`` moves P30 by
    ``points`` percentage points (rounded to 0.1) against a typical value; ``text`` says so."""

    feature: str
    value: object
    points: float
    text: str


def reference_values(train_features: pd.DataFrame) -> dict[str, object]:
    """The typical value of each feature column in the training slice, as plain Python values.

    Numeric: the lower median, an observed value, so that discrete features (hour, weekday)
    get a value real leads have. Other columns: the most frequent value. The contact pair is
    kept coherent: ``contacted`` is its most frequent value and ``contact_delay`` the median
    among the leads in that state (the median wait of uncontacted leads is not a typical
    first-contact delay). A column with no values at all gets None.
    """
    reference = {str(c): _typical(train_features[c]) for c in train_features.columns}
    if CONTACT_DELAY in train_features.columns and CONTACTED in train_features.columns:
        flag = reference[CONTACTED]
        same_state = train_features[CONTACTED] == flag
        reference[CONTACT_DELAY] = _typical(train_features.loc[same_state, CONTACT_DELAY])
    return reference


def explain(
    predict_p30: PredictP30,
    features: pd.DataFrame,
    reference: Mapping[str, object],
    *,
    top: int = 3,
    batch_leads: int = BATCH_LEADS,
) -> list[list[Factor]]:
    """Up to ``top`` factors per lead (row of ``features``), largest |points| first.

    ``predict_p30`` scores a feature frame (one P(sale within 30 days) per row); it is called
    once per batch of ``batch_leads`` leads on all substitutions of the batch at once.
    Factors under 0.5 points are left out, so a lead may have fewer than ``top``.
    """
    if top < 1 or batch_leads < 1:
        raise ValueError("top and batch_leads must be at least 1")
    groups = _feature_groups(features, reference)
    points = np.empty((len(features), len(groups)), dtype=np.float64)
    for start in range(0, len(features), batch_leads):
        batch = features.iloc[start : start + batch_leads]
        points[start : start + len(batch)] = _effects(predict_p30, batch, reference, groups)
    return _top_factors(features, groups, np.round(points, 1), top)


def waiting_costs(
    predict_p30: PredictP30, features: pd.DataFrame, *, hours: float = 1.0
) -> pd.DataFrame:
    """For leads not contacted yet: P30 if contacted now vs ``hours`` later, and the difference.

    Columns ``now``, ``later`` (probabilities) and ``points_lost`` (``(now - later) * 100``),
    same index as ``features``. "Now" is the time waited so far (``contact_delay``).
    """
    if hours <= 0:
        raise ValueError("hours must be positive")
    if CONTACTED not in features.columns or CONTACT_DELAY not in features.columns:
        raise KeyError(f"waiting costs need the {CONTACT_DELAY!r} and {CONTACTED!r} columns")
    if (features[CONTACTED] == 1).any():
        raise ValueError("waiting costs are for leads not contacted yet (contacted == 0)")
    waited = features[CONTACT_DELAY].to_numpy(dtype=np.float64)
    # The features cap waits at MAX_WAIT_HOURS; scoring past it would meet unseen values.
    now = features.copy()
    now[CONTACTED] = 1.0
    later = now.copy()
    later[CONTACT_DELAY] = np.minimum(waited + hours, MAX_WAIT_HOURS)
    p = _predict(predict_p30, pd.concat([now, later], ignore_index=True), 2 * len(features))
    p_now, p_later = p[: len(features)], p[len(features) :]
    return pd.DataFrame(
        {"now": p_now, "later": p_later, "points_lost": (p_now - p_later) * 100.0},
        index=features.index,
    )


def cost_of_waiting(
    predict_p30: PredictP30, features_row_df: pd.DataFrame, *, hours: float = 1.0
) -> dict[str, float]:
    """One uncontacted lead: ``{"now": p, "in_1h": p2, "points_lost": (p - p2) * 100}``.

    The middle key names the wait: ``in_1h`` by default, ``in_2h`` for ``hours=2``, etc.
    """
    if len(features_row_df) != 1:
        raise ValueError(f"expected one lead, got {len(features_row_df)} rows")
    row = waiting_costs(predict_p30, features_row_df, hours=hours).iloc[0]
    return {
        "now": float(row["now"]),
        f"in_{hours:g}h": float(row["later"]),
        "points_lost": float(row["points_lost"]),
    }


# --- substitutions ----------------------------------------------------------------------------


def _feature_groups(
    features: pd.DataFrame, reference: Mapping[str, object]
) -> list[tuple[str, ...]]:
    """Columns swapped together, one group per factor (the contact pair is one group)."""
    groups: list[tuple[str, ...]] = []
    for column in map(str, features.columns):
        if column == CONTACTED and CONTACT_DELAY in features.columns:
            continue  # explained through contact_delay
        group: tuple[str, ...] = (
            (CONTACT_DELAY, CONTACTED) if column == CONTACT_DELAY else (column,)
        )
        group = tuple(c for c in group if c in features.columns)
        missing = [c for c in group if c not in reference]
        if missing:
            raise KeyError(f"no reference value for {missing}")
        groups.append(group)
    return groups


def _effects(
    predict_p30: PredictP30,
    batch: pd.DataFrame,
    reference: Mapping[str, object],
    groups: list[tuple[str, ...]],
) -> Floats:
    """(leads, groups) effects in points: block 0 is the leads as they are, block k + 1 has
    group k swapped for its reference; one scoring call for all blocks."""
    n, blocks = len(batch), len(groups) + 1
    columns: dict[str, npt.NDArray[np.generic]] = {}
    for column in map(str, batch.columns):
        values = _column_values(batch[column])
        tiled = np.tile(values, blocks)
        for k, group in enumerate(groups, start=1):
            if column in group:
                tiled[k * n : (k + 1) * n] = _reference_value(reference[column], values.dtype)
        columns[column] = tiled
    p = _predict(predict_p30, pd.DataFrame(columns), n * blocks).reshape(blocks, n)
    return np.asarray((p[0] - p[1:]).T * 100.0, dtype=np.float64)


def _column_values(column: pd.Series) -> npt.NDArray[np.generic]:
    # Numbers as floats, everything else (strings, pandas categoricals) as plain objects, so
    # that any reference value can be written into the column.
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(column.astype("object").where(column.notna(), None), dtype=object)


def _reference_value(value: object, dtype: np.dtype[np.generic]) -> object:
    if dtype != np.float64:
        return value
    if value is None:
        return np.nan
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"a numeric column needs a numeric reference value, not {value!r}")


def _predict(predict_p30: PredictP30, frame: pd.DataFrame, expected: int) -> Floats:
    p = np.asarray(predict_p30(frame), dtype=np.float64).ravel()
    if p.shape != (expected,):
        raise ValueError(f"predict_p30 returned {p.shape[0]} values for {expected} rows")
    return p


def _typical(column: pd.Series) -> object:
    values = column.dropna()
    if values.empty:
        return None
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return float(values.quantile(0.5, interpolation="lower"))
    # Ties go to the value that sorts first, so the reference does not depend on row order.
    counts = values.astype("object").value_counts()
    tied = counts.index[counts == counts.max()]
    return sorted(tied, key=str)[0]


# --- words ------------------------------------------------------------------------------------


def _top_factors(
    features: pd.DataFrame, groups: list[tuple[str, ...]], points: Floats, top: int
) -> list[list[Factor]]:
    names = [group[0] for group in groups]
    columns = {name: _column_values(features[name]) for name in names}
    flags = _column_values(features[CONTACTED]) if CONTACTED in features.columns else None
    # Stable sort: equal effects keep the column order, so the output is deterministic.
    order = np.argsort(-np.abs(points), axis=1, kind="stable")[:, :top]
    result: list[list[Factor]] = []
    for i in range(len(features)):
        factors = []
        for j in order[i]:
            effect = float(points[i, j])
            if abs(effect) < MIN_POINTS:
                break  # sorted: the rest are smaller
            name = names[j]
            value = _plain(columns[name][i])
            flag = None if flags is None else _plain(flags[i])
            factors.append(Factor(name, value, effect, _text(name, value, flag, effect)))
        result.append(factors)
    return result


def _plain(value: object) -> object:
    """numpy scalars and NaN as plain Python values (None for missing)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(feature: str, value: object, contacted: object, points: float) -> str:
    return f"{_describe(feature, value, contacted)}: {_points_text(points)}"


def _points_text(points: float) -> str:
    unit = "pt" if abs(points) == 1.0 else "pts"
    return f"{points:+g} {unit}"  # +g: sign always shown, no trailing ".0"


def _describe(feature: str, value: object, contacted: object) -> str:
    if feature == CONTACT_DELAY:
        return _describe_contact(value, contacted)
    if value is None:
        return f"{LABELS.get(feature, feature)} unknown"
    if feature in LABELS:
        return f"{LABELS[feature]} {value}"
    if feature == "hour_created" and isinstance(value, float):
        return f"created at {int(value):02d}:00"
    if feature == "day_created" and isinstance(value, float) and 0 <= value < len(WEEKDAYS):
        return f"created on a {WEEKDAYS[int(value)]}"
    return f"{feature} {value:g}" if isinstance(value, float) else f"{feature} {value}"


def _describe_contact(delay: object, contacted: object) -> str:
    if not isinstance(delay, float):
        return "contact delay unknown"
    if contacted == 1.0:
        return f"first contact after {_duration(delay)}"
    if contacted == 0.0:
        return f"not contacted yet after {_duration(delay)}"
    return f"contact delay {_duration(delay)}"


def _duration(hours: float) -> str:
    if hours < 1.0:
        return f"{hours * 60:.0f} min"
    if hours < 48.0:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"
