"""Recalibration of the 14- and 30-day sale probabilities on a later slice of history.

The hazard model is trained on one stretch of history and scored on leads that arrive later;
sale rates drift (season, staffing, a new lead source), so its probabilities are mapped onto
observed outcomes of a *later* slice than it was trained on. The caller picks that slice (only
leads whose 14- or 30-day window has closed by then have a known outcome).

Per horizon the map is chosen by how much evidence the slice holds:

* isotonic regression (monotone, any shape) with at least ``ISOTONIC_MIN_LEADS`` leads and
  ``ISOTONIC_MIN_EACH_OUTCOME`` of each outcome: enough data to trust a free-form curve;
* Platt scaling (a logistic curve on ``logit(p)``, two parameters) on smaller slices, where
  isotonic steps would follow the noise;
* the identity when the slice has only one outcome (or none): nothing to fit a curve to.

The fitted state is plain numbers (``to_dict`` / ``from_dict``), so it can be stored as JSON
next to the model instead of a pickle, which would run code on loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Floats = npt.NDArray[np.float64]
Method = Literal["isotonic", "platt", "identity"]
HORIZONS: tuple[int, ...] = (14, 30)
ISOTONIC_MIN_LEADS = 3_000
# Isotonic steps need many sales as well as many leads: with a hundred sales the curve follows
# the noise and puts whole score ranges at 0 %, which no lead ever truly is.
ISOTONIC_MIN_EACH_OUTCOME = 200
# No lead is certain to sell or not to: calibrated values stay inside this band.
PROBABILITY_FLOOR = 1e-3
FORMAT_VERSION = 1
# logit(0) is -inf: probabilities are kept this far from 0 and 1 before taking the logit.
_EPS = 1e-6


@dataclass(frozen=True)
class HorizonMap:
    """The fitted map of one horizon: ``method``, its parameters and the evidence behind it.

    ``x`` / ``y`` are the isotonic thresholds, ``coef`` / ``intercept`` the Platt parameters;
    the fields another method does not use stay empty. ``n_leads`` is the slice size and
    ``reason`` says why that method was chosen.
    """

    method: Method
    n_leads: int
    reason: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    coef: float = 1.0
    intercept: float = 0.0

    def apply(self, p: Floats) -> Floats:
        if self.method == "isotonic":
            # np.interp holds the end values outside [x[0], x[-1]]: out_of_bounds="clip".
            mapped = np.interp(p, np.asarray(self.x), np.asarray(self.y))
        elif self.method == "platt":
            mapped = _sigmoid(self.coef * _logit(p) + self.intercept)
        else:
            mapped = p
        return np.clip(np.asarray(mapped, dtype=np.float64), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n_leads": self.n_leads,
            "reason": self.reason,
            "x": list(self.x),
            "y": list(self.y),
            "coef": self.coef,
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HorizonMap:
        method = d["method"]
        if method not in ("isotonic", "platt", "identity"):
            raise ValueError(f"unknown calibration method {method!r}")
        x, y = tuple(float(v) for v in d["x"]), tuple(float(v) for v in d["y"])
        if method == "isotonic" and (len(x) == 0 or len(x) != len(y)):
            raise ValueError("isotonic calibration needs matching, non-empty x and y")
        return cls(
            method=method,
            n_leads=int(d["n_leads"]),
            reason=str(d["reason"]),
            x=x,
            y=y,
            coef=float(d["coef"]),
            intercept=float(d["intercept"]),
        )


class HorizonCalibrator:
    """Maps raw (P14, P30) onto the outcome rates of a later slice; see the module docstring."""

    def __init__(self) -> None:
        self.maps_: dict[int, HorizonMap] = {}

    def fit(
        self, p14: npt.ArrayLike, y14: npt.ArrayLike, p30: npt.ArrayLike, y30: npt.ArrayLike
    ) -> HorizonCalibrator:
        """Fit both horizons; each pair is the raw probability and the 0/1 outcome of a lead.

        The two horizons may use different leads (more 14-day windows have closed by the end
        of a slice than 30-day ones), so their lengths may differ.
        """
        self.maps_ = {14: fit_horizon(p14, y14), 30: fit_horizon(p30, y30)}
        return self

    def transform(self, p14: npt.ArrayLike, p30: npt.ArrayLike) -> tuple[Floats, Floats]:
        """Calibrated (P14, P30): values in [0, 1] and P14 <= P30 for every lead."""
        if not self.maps_:
            raise RuntimeError("HorizonCalibrator is not fitted: call fit or from_dict first")
        raw14, raw30 = _probabilities(p14, "p14"), _probabilities(p30, "p30")
        if raw14.shape != raw30.shape:
            raise ValueError(f"p14 and p30 differ in shape: {raw14.shape} != {raw30.shape}")
        p14c = np.clip(self.maps_[14].apply(raw14), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        p30c = np.clip(self.maps_[30].apply(raw30), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        # A sale within 14 days is a sale within 30 days, so P14 > P30 is impossible; yet two
        # maps fitted separately can cross (isotonic steps land on noise, Platt curves have
        # different slopes). The 30-day map is the better estimated one (its slice holds more
        # sales), so it is trusted and P14 is capped by it rather than P30 raised.
        return np.minimum(p14c, p30c), p30c

    @property
    def methods(self) -> dict[int, Method]:
        return {horizon: m.method for horizon, m in self.maps_.items()}

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-ready dicts, lists, strings and numbers."""
        if not self.maps_:
            raise RuntimeError("HorizonCalibrator is not fitted")
        return {
            "version": FORMAT_VERSION,
            "horizons": {str(h): self.maps_[h].to_dict() for h in HORIZONS},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HorizonCalibrator:
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported calibration format version {d.get('version')!r}")
        calibrator = cls()
        calibrator.maps_ = {h: HorizonMap.from_dict(d["horizons"][str(h)]) for h in HORIZONS}
        return calibrator


def fit_horizon(p: npt.ArrayLike, y: npt.ArrayLike) -> HorizonMap:
    """The map for one horizon, its method chosen by the size and outcomes of the slice."""
    probabilities, outcomes = _probabilities(p, "p"), _outcomes(y)
    if probabilities.shape != outcomes.shape:
        raise ValueError(f"p and y differ in shape: {probabilities.shape} != {outcomes.shape}")
    n = len(outcomes)
    classes = np.unique(outcomes)
    if len(classes) < 2:
        only = "no leads" if n == 0 else f"only outcome {int(classes[0])} in {n} leads"
        return HorizonMap("identity", n, f"{only}: nothing to calibrate against")
    sales = int(outcomes.sum())
    if n >= ISOTONIC_MIN_LEADS and min(sales, n - sales) >= ISOTONIC_MIN_EACH_OUTCOME:
        return _fit_isotonic(probabilities, outcomes)
    return _fit_platt(probabilities, outcomes)


def _fit_isotonic(p: Floats, y: Floats) -> HorizonMap:
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    isotonic.fit(p, y)
    return HorizonMap(
        "isotonic",
        len(y),
        f"{len(y)} leads >= {ISOTONIC_MIN_LEADS}, >= {ISOTONIC_MIN_EACH_OUTCOME} of each outcome",
        x=tuple(float(v) for v in isotonic.X_thresholds_),
        y=tuple(float(v) for v in isotonic.y_thresholds_),
    )


def _fit_platt(p: Floats, y: Floats) -> HorizonMap:
    # sklearn's default L2 penalty (C=1) is negligible against a few hundred leads but keeps
    # the slope finite when a tiny slice separates perfectly.
    logistic = LogisticRegression().fit(_logit(p).reshape(-1, 1), y)
    return HorizonMap(
        "platt",
        len(y),
        f"{len(y)} leads, {int(y.sum())} sales: too few for isotonic steps",
        coef=float(logistic.coef_[0, 0]),
        intercept=float(logistic.intercept_[0]),
    )


def expected_calibration_error(p: npt.ArrayLike, y: npt.ArrayLike, bins: int = 10) -> float:
    """Lead-weighted mean |mean prediction - outcome rate| over equal-width probability bins."""
    probabilities, outcomes = _probabilities(p, "p"), _outcomes(y)
    if len(outcomes) == 0:
        raise ValueError("no leads to measure calibration on")
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(
        np.bincount(which, probabilities, bins) - np.bincount(which, outcomes, bins)
    )  # per bin: |sum p - sum y| = count * |mean p - rate|
    return float(gap.sum() / counts.sum())


def _probabilities(p: npt.ArrayLike, name: str) -> Floats:
    values = np.asarray(p, dtype=np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} holds NaN or infinite values")
    # Scores a hair outside [0, 1] (float error in a product of hazards) are still meaningful.
    return np.clip(values, 0.0, 1.0)


def _outcomes(y: npt.ArrayLike) -> Floats:
    values = np.asarray(y, dtype=np.float64).ravel()
    if not np.all((values == 0.0) | (values == 1.0)):
        raise ValueError("outcomes must be 0 or 1")
    return values


def _logit(p: Floats) -> Floats:
    clipped = np.clip(p, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(clipped) - np.log1p(-clipped), dtype=np.float64)


def _sigmoid(x: Floats) -> Floats:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)), dtype=np.float64)
