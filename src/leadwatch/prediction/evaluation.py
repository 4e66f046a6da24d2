"""How good are the sale probabilities? Discrimination, calibration and lift, per horizon.

Managers act on the numbers themselves ("23 % chance of a sale within 14 days"), so calibration
(reliability table, ECE, Brier, log loss) matters as much as ranking (ROC AUC, average
precision). Every metric is reported next to a naive baseline that predicts the same constant
probability for every lead, so a table shows at a glance what the model adds.

Conventions: ``y`` is 1 when the lead sold within the horizon, ``p`` the predicted probability
of that. All functions are pure; results are plain Python values (``.as_dict()`` is JSON-ready).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

LOG_LOSS_EPS = 1e-6
# The metrics shown by EvaluationReport.rows(), in this order (reliability is a table, not a row).
ROW_METRICS = (
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "lift_top_decile",
    "capture_top_decile",
    "at_risk_lift",
    "at_risk_capture",
    "base_rate",
    "n",
    "positives",
)


# ---------------------------------------------------------------------------------------------
# Input checks (shared with thresholds.py)
# ---------------------------------------------------------------------------------------------


def check_probabilities(p: npt.ArrayLike, name: str = "p") -> Floats:
    """``p`` as a 1-D float array; ValueError unless non-empty, finite and within [0, 1]."""
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one lead to evaluate")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"{name} must lie within [0, 1], got [{arr.min()}, {arr.max()}]")
    return arr


def check_outcomes_and_probabilities(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[Ints, Floats]:
    """``y`` as 0/1 ints and ``p`` as floats, checked to be usable together."""
    probs = check_probabilities(p)
    raw = np.asarray(y)
    if raw.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {raw.shape}")
    if raw.shape != probs.shape:
        raise ValueError(
            f"y and p differ in length: {raw.size} outcomes, {probs.size} probabilities"
        )
    # Comparing as floats accepts bools, ints and 0.0/1.0 alike and rejects NaN.
    as_float = raw.astype(np.float64)
    if not np.all((as_float == 0.0) | (as_float == 1.0)):
        raise ValueError("y must contain only 0/1 (or False/True) outcomes")
    return as_float.astype(np.int64), probs


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


def _edges(bins: int) -> Floats:
    return np.arange(bins + 1, dtype=np.float64) / bins


def _bin_index(p: Floats, bins: int) -> Ints:
    """Equal-width bins ``[k/bins, (k+1)/bins)`` on [0, 1]; the last bin also holds p == 1."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    # k / bins is the double nearest to the edge (0.7, not linspace's 0.7000000000000001), so a
    # probability of exactly 0.7 lands in [0.7, 0.8) as the table says. Binning against the same
    # edges the table reports keeps "which bin" and "bin range" in agreement.
    edges = _edges(bins)
    index = np.searchsorted(edges, p, side="right") - 1
    return np.clip(index, 0, bins - 1).astype(np.int64)


def reliability_table(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> list[dict[str, Any]]:
    """One row per equal-width bin: range, count, mean predicted and observed sale rate.

    Every bin is listed, empty ones with ``None`` for the means, so tables from different
    models line up row by row.
    """
    outcomes, probs = check_outcomes_and_probabilities(y, p)
    index = _bin_index(probs, bins)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=probs, minlength=bins)
    sum_y = np.bincount(index, weights=outcomes.astype(np.float64), minlength=bins)
    edges = _edges(bins)
    rows = []
    for k in range(bins):
        count = int(counts[k])
        rows.append(
            {
                "bin_lower": float(edges[k]),
                "bin_upper": float(edges[k + 1]),
                "count": count,
                "mean_predicted": float(sum_p[k] / count) if count else None,
                "observed_rate": float(sum_y[k] / count) if count else None,
            }
        )
    return rows


def expected_calibration_error(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> float:
    """Count-weighted mean of |observed rate - mean predicted| over the non-empty bins."""
    table = reliability_table(y, p, bins)
    n = sum(row["count"] for row in table)
    gaps = (
        row["count"] * abs(row["observed_rate"] - row["mean_predicted"])
        for row in table
        if row["count"]
    )
    return float(sum(gaps) / n)


# ---------------------------------------------------------------------------------------------
# Lift and capture
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiftCapture:
    """Lift and capture of the leads selected first by a score.

    ``direction`` is "likely_sale" (highest p first, positive = sold) or "at_risk" (lowest p
    first, positive = not sold). ``lift`` and ``capture`` are None when there is no positive
    lead in that direction, where both are undefined.
    """

    direction: str
    top: float
    selected: int
    positives_selected: float
    positive_rate_selected: float
    base_rate: float
    lift: float | None
    capture: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _selected_positives(score: Floats, positive: Ints, k: int) -> float:
    """Positives among the ``k`` highest scores, with ties at the cut shared out evenly.

    Sharing the boundary tie group pro rata is the expectation over every tie-breaking order,
    so the result does not depend on the input order: a constant score (the naive baseline)
    gets lift exactly 1 instead of whatever the first rows happen to be.
    """
    cut = np.sort(score)[::-1][k - 1]
    above = score > cut
    tied = score == cut
    room = k - int(above.sum())
    share = room / int(tied.sum())
    return float(positive[above].sum() + share * positive[tied].sum())


def lift_and_capture(
    y: npt.ArrayLike, p: npt.ArrayLike, top: float = 0.1, *, positive_is_high: bool = True
) -> LiftCapture:
    """Lift and capture among the fraction ``top`` of leads picked by the sale probability.

    ``positive_is_high=True`` (who will buy): the leads with the highest p, positive = sold.
    ``positive_is_high=False`` (who is at risk, the leads escalation targets): the leads with
    the lowest p, positive = not sold. Lift is the positive rate among the selected leads over
    the overall positive rate; capture is the share of all positives that were selected.
    The selection holds ``round(top * n)`` leads, at least one.
    """
    if not 0.0 < top <= 1.0:
        raise ValueError(f"top must be a fraction in (0, 1], got {top}")
    outcomes, probs = check_outcomes_and_probabilities(y, p)
    positive = outcomes if positive_is_high else 1 - outcomes
    score = probs if positive_is_high else -probs
    n = probs.size
    k = min(n, max(1, round(top * n)))
    total_positives = int(positive.sum())
    selected_positives = _selected_positives(score, positive, k)
    base_rate = total_positives / n
    rate_selected = selected_positives / k
    defined = total_positives > 0
    return LiftCapture(
        direction="likely_sale" if positive_is_high else "at_risk",
        top=float(top),
        selected=k,
        positives_selected=selected_positives,
        positive_rate_selected=rate_selected,
        base_rate=base_rate,
        lift=rate_selected / base_rate if defined else None,
        capture=selected_positives / total_positives if defined else None,
    )


# ---------------------------------------------------------------------------------------------
# All metrics for one horizon
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HorizonMetrics:
    """Every metric of one set of predictions for one horizon.

    ``lift_top_decile`` / ``capture_top_decile``: the 10 % most likely to buy, positive = sold.
    ``at_risk_lift`` / ``at_risk_capture``: the 10 % least likely to buy, positive = not sold.
    AUC values are None when ``y`` has a single class (they are undefined then).
    """

    roc_auc: float | None
    pr_auc: float | None
    brier: float
    log_loss: float
    ece: float
    reliability: list[dict[str, Any]]
    lift_top_decile: float | None
    capture_top_decile: float | None
    at_risk_lift: float | None
    at_risk_capture: float | None
    n: int
    positives: int
    base_rate: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _log_loss(y: Ints, p: Floats) -> float:
    # Clipping keeps one confident mistake from making the loss infinite.
    clipped = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1.0 - clipped)))


def horizon_metrics(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> HorizonMetrics:
    """Discrimination, calibration and lift of ``p`` against the outcomes ``y``."""
    outcomes, probs = check_outcomes_and_probabilities(y, p)
    both_classes = 0 < int(outcomes.sum()) < outcomes.size
    likely = lift_and_capture(outcomes, probs, 0.1, positive_is_high=True)
    at_risk = lift_and_capture(outcomes, probs, 0.1, positive_is_high=False)
    return HorizonMetrics(
        roc_auc=float(roc_auc_score(outcomes, probs)) if both_classes else None,
        pr_auc=float(average_precision_score(outcomes, probs)) if both_classes else None,
        brier=float(np.mean((probs - outcomes) ** 2)),
        log_loss=_log_loss(outcomes, probs),
        ece=expected_calibration_error(outcomes, probs, bins),
        reliability=reliability_table(outcomes, probs, bins),
        lift_top_decile=likely.lift,
        capture_top_decile=likely.capture,
        at_risk_lift=at_risk.lift,
        at_risk_capture=at_risk.capture,
        n=int(outcomes.size),
        positives=int(outcomes.sum()),
        base_rate=float(outcomes.mean()),
    )


# ---------------------------------------------------------------------------------------------
# Model against the naive baseline, both horizons
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationReport:
    """The model's and the naive baseline's metrics per horizon ("14d", "30d"), side by side.

    ``model[h]`` and ``baseline[h]`` are measured on the same leads and outcomes; the baseline
    predicts the constant ``baseline_rates[h]`` for every lead. ``split`` describes the data.
    """

    model: dict[str, HorizonMetrics]
    baseline: dict[str, HorizonMetrics]
    baseline_rates: dict[str, float]
    split: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; ``rows`` repeats the table of ``rows()`` for readers of the JSON."""
        return {
            "model": {h: metrics.as_dict() for h, metrics in self.model.items()},
            "baseline": {h: metrics.as_dict() for h, metrics in self.baseline.items()},
            "baseline_rates": dict(self.baseline_rates),
            "split": dict(self.split),
            "rows": [list(row) for row in self.rows()],
        }

    def rows(self) -> list[tuple[str, str, float | None, float | None]]:
        """(metric, horizon, model, baseline) for every scalar metric, ready for a table."""
        return [
            (metric, h, getattr(self.model[h], metric), getattr(self.baseline[h], metric))
            for metric in ROW_METRICS
            for h in self.model
        ]


def _check_base_rate(rate: float, name: str) -> float:
    if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {rate}")
    return float(rate)


def baseline_metrics(y: npt.ArrayLike, base: float) -> HorizonMetrics:
    """Metrics of the naive model that predicts ``base`` for every lead."""
    outcomes = np.asarray(y)
    return horizon_metrics(outcomes, np.full(outcomes.shape, _check_base_rate(base, "base rate")))


def evaluate_horizons(
    y14: npt.ArrayLike,
    p14: npt.ArrayLike,
    y30: npt.ArrayLike,
    p30: npt.ArrayLike,
    base14: float,
    base30: float,
    split: dict[str, Any] | None = None,
) -> EvaluationReport:
    """Evaluate both horizons against the naive baseline.

    ``base14`` / ``base30`` should come from the training slice (its observed sale rate per
    horizon): using the evaluation slice's own rate would hand the baseline knowledge of the
    future. ``split`` is copied into the report as is; keep it JSON-serialisable.
    """
    ys = {"14d": y14, "30d": y30}
    rates = {"14d": _check_base_rate(base14, "base14"), "30d": _check_base_rate(base30, "base30")}
    return EvaluationReport(
        model={"14d": horizon_metrics(y14, p14), "30d": horizon_metrics(y30, p30)},
        baseline={h: baseline_metrics(ys[h], rates[h]) for h in ys},
        baseline_rates=rates,
        split=dict(split or {}),
    )
