"""Target mode: training on an explicit 0/1 outcome column instead of sale horizons.

Leads are split by creation time only (oldest ~65 % train, next ~15 % calibrate, newest ~20 %
validate); each lead is one period-0 row of the hazard model, whose hazard is then P(outcome).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadwatch.prediction import evaluation
from leadwatch.prediction.labels import PERIOD_COLUMN

Floats = npt.NDArray[np.float64]
TARGET_HORIZON = "target"  # the single "horizon" of the metrics in target mode
TARGET_CAL_START, TARGET_VAL_START = 0.65, 0.80
_TRUE, _FALSE = frozenset({"1", "1.0", "true", "yes"}), frozenset({"0", "0.0", "false", "no"})


@dataclass(frozen=True)
class TargetSplit:
    """Target mode's slices, by creation time only: [start, cal_start) trains,
    [cal_start, val_start) calibrates, [val_start, end] validates."""

    start: pd.Timestamp
    cal_start: pd.Timestamp
    val_start: pd.Timestamp
    end: pd.Timestamp
    as_of: pd.Timestamp

    def train_mask(self, created: pd.Series) -> npt.NDArray[np.bool_]:
        return (created < self.cal_start).to_numpy(dtype=bool)

    def calibration_mask(self, created: pd.Series) -> npt.NDArray[np.bool_]:
        return ((created >= self.cal_start) & (created < self.val_start)).to_numpy(dtype=bool)

    def validation_mask(self, created: pd.Series) -> npt.NDArray[np.bool_]:
        return (created >= self.val_start).to_numpy(dtype=bool)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "target",
            "start": self.start.isoformat(),
            "cal_start": self.cal_start.isoformat(),
            "val_start": self.val_start.isoformat(),
            "end": self.end.isoformat(),
            "as_of": self.as_of.isoformat(),
        }


def parse_target(leads: pd.DataFrame, target: str) -> npt.NDArray[np.int8]:
    """The 0/1 outcome column ``target`` as int8: accepts 0/1 (numbers or text), booleans,
    true/false and yes/no (any case, surrounding spaces ignored); anything else, blanks
    included, is a ValueError naming the column, how many rows and an example."""
    if target not in leads.columns:
        raise ValueError(
            f"the target column {target!r} is not in the data (columns: {list(leads.columns)})"
        )
    values = leads[target].astype("object")
    parsed = values.map(_outcome_value)
    bad = parsed.isna().to_numpy()
    if bad.any():
        example = values[bad].iloc[0]
        raise ValueError(
            f"the target column {target!r} must hold 0/1, true/false or yes/no: "
            f"{int(bad.sum()):,} of {len(values):,} rows do not, e.g. {example!r}"
        )
    return parsed.to_numpy(dtype=np.int8)


def _outcome_value(value: object) -> int | None:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | float | np.integer | np.floating):
        return int(value) if value in (0, 1) else None  # NaN is neither
    if isinstance(value, str):
        text = value.strip().lower()
        return 1 if text in _TRUE else 0 if text in _FALSE else None
    return None


def target_split(created: pd.Series, as_of: pd.Timestamp) -> TargetSplit:
    """Oldest ~65 % of the leads (by creation time) train, next ~15 % calibrate, newest ~20 %
    validate; leads created at the same moment stay in one slice."""
    ordered = created.dropna().sort_values()
    n = len(ordered)
    if n == 0:
        raise ValueError("no lead has a creation time: target mode splits by created_at")
    start, end = pd.Timestamp(ordered.iloc[0]), pd.Timestamp(ordered.iloc[-1])
    cal_start = pd.Timestamp(ordered.iloc[int(n * TARGET_CAL_START)])
    val_start = pd.Timestamp(ordered.iloc[int(n * TARGET_VAL_START)])
    split = TargetSplit(start, cal_start, val_start, end, as_of)
    sizes = [int(mask(created).sum()) for mask in (split.train_mask, split.calibration_mask)]
    sizes.append(int(split.validation_mask(created).sum()))
    if min(sizes) == 0:
        raise ValueError(
            f"{n:,} leads with a creation time cannot be split by time into training, "
            f"calibration and validation slices (sizes {sizes}): more leads are needed"
        )
    return split


def single_period(features: pd.DataFrame) -> pd.DataFrame:
    """One person-period row per lead, all in period 0: its hazard is P(outcome)."""
    rows = features.copy()
    rows[PERIOD_COLUMN] = np.zeros(len(rows), dtype=np.int64)
    return rows


def target_report(
    y: npt.ArrayLike, p: Floats, base: float, split: dict[str, Any]
) -> evaluation.EvaluationReport:
    """Model and naive baseline (the training base rate) under the one key ``"target"``."""
    return evaluation.EvaluationReport(
        model={TARGET_HORIZON: evaluation.horizon_metrics(y, p)},
        baseline={TARGET_HORIZON: evaluation.baseline_metrics(y, base)},
        baseline_rates={TARGET_HORIZON: base},
        split=dict(split),
    )
