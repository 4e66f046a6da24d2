"""Out-of-time slices: train on older leads, calibrate on a later slice, validate on the newest.

    |------ train ------|--- calibration ---|- gap -|---- validation ----|- open -|
    t0               cal_start        cal_end   val_start          val_end   as_of

Training labels are censored at ``cal_start``: nothing the model learns happened after it.
Calibration leads are created in [cal_start, cal_end) and their 30-day windows close before
``val_start`` (cal_end = val_start - horizon), so calibration too knows nothing of the
validation period. Validation leads are created in [val_start, val_end) with val_end =
as_of - horizon, so every validation window has closed and its outcome is known. The gap
between the last thing training saw (cal_start) and the first validation lead is at least
the horizon. Never a random split: leads of one week share reps, stock and season.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd


class HistoryTooShortError(ValueError):
    """Not enough history for honest out-of-time validation."""


@dataclass(frozen=True)
class TimeSplit:
    start: pd.Timestamp
    cal_start: pd.Timestamp
    cal_end: pd.Timestamp
    val_start: pd.Timestamp
    val_end: pd.Timestamp
    as_of: pd.Timestamp
    horizon_days: int

    def train_mask(self, created: pd.Series) -> pd.Series:
        return created < self.cal_start

    def calibration_mask(self, created: pd.Series) -> pd.Series:
        return (created >= self.cal_start) & (created < self.cal_end)

    def validation_mask(self, created: pd.Series) -> pd.Series:
        return (created >= self.val_start) & (created < self.val_end)

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, pd.Timestamp) else v)
            for k, v in asdict(self).items()
        }


def out_of_time_split(
    created: pd.Series,
    as_of: pd.Timestamp,
    *,
    horizon_days: int = 30,
    validation_fraction: float = 0.2,
    calibration_days: int | None = None,
    min_train_days: int = 30,
    min_slice_leads: int = 50,
) -> TimeSplit:
    """Slices of the history that ends at ``as_of`` (see the module docstring)."""
    horizon = pd.Timedelta(days=horizon_days)
    start = pd.Timestamp(created.min())
    val_end = as_of - horizon
    closed_span = val_end - start
    validation = max(pd.Timedelta(days=14), closed_span * validation_fraction)
    # Calibration leads need their own windows closed before validation starts.
    calibration = pd.Timedelta(days=calibration_days) if calibration_days else None
    calibration = calibration or max(pd.Timedelta(days=14), closed_span * 0.15)
    val_start = val_end - validation
    cal_end = val_start - horizon
    cal_start = cal_end - calibration
    train_days = (cal_start - start) / pd.Timedelta(days=1)
    if train_days < min_train_days:
        needed = min_train_days + calibration.days + horizon_days * 2 + validation.days
        raise HistoryTooShortError(
            f"the history covers {(as_of - start).days} days; honest out-of-time validation "
            f"with a {horizon_days}-day horizon needs about {needed} (training, calibration, "
            "a gap and validation, each after the one before). Import more history, or train "
            "with --target on data with a known outcome."
        )
    split = TimeSplit(start, cal_start, cal_end, val_start, val_end, as_of, horizon_days)
    sizes = {
        "training": int(split.train_mask(created).sum()),
        "calibration": int(split.calibration_mask(created).sum()),
        "validation": int(split.validation_mask(created).sum()),
    }
    empty = [name for name, size in sizes.items() if size < min_slice_leads]
    if empty:
        raise HistoryTooShortError(
            f"out-of-time slices as of {as_of:%Y-%m-%d}: {sizes} leads; the {', '.join(empty)} "
            f"slice needs at least {min_slice_leads}. The leads are spread unevenly over the "
            "history (or the as-of date lies far past the last lead): give --as-of closer to "
            "the newest leads, or import more history."
        )
    return split
