"""Where to draw the line: the sale probability below which a lead is escalated.

Convention throughout: a lead is *at risk* (escalated) when its sale probability ``p < t``;
the "positive" class for precision, recall and F1 is "not sold within the horizon", because
that is what escalation tries to catch. Thresholds are probabilities in [0, 1].

Three ways to choose ``t``: best F1 on labelled history (``by_f1``), best expected money
(``by_cost``) and what the sales team can handle per day (``by_capacity``). ``risk_levels_from``
then splits the chosen ``t`` into critical / high / medium bands for the escalation rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadwatch.prediction.evaluation import (
    Floats,
    Ints,
    check_outcomes_and_probabilities,
    check_probabilities,
)

LEVEL_NAMES = ("critical", "high", "medium")
LEVEL_LABELS = np.array(["critical", "high", "medium", "low"])
DEFAULT_RATIOS = (1 / 3, 2 / 3, 1.0)
# Capacity arithmetic is per_day * days in floating point; 0.29 * 100 is 28.999999999999996,
# which must still allow 29 escalations.
_CAPACITY_SLACK = 1e-9


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold and what it means on the leads it was chosen on.

    Fields that a method cannot know are None: ``expected_value`` only for ``by_cost``,
    ``f1`` only for ``by_f1``, precision / recall only when outcomes were given,
    ``escalations_per_day`` only when lead creation times were given.
    """

    method: str
    threshold: float
    escalations: int
    escalations_per_day: float | None = None
    expected_value: float | None = None
    f1: float | None = None
    precision: float | None = None
    recall: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _days_spanned(created_at: Any, n: int) -> float:
    """Span of the creation times in days, at least 1 (a single day of leads is one day)."""
    times = pd.DatetimeIndex(pd.to_datetime(created_at))
    if len(times) != n:
        raise ValueError(f"created_at has {len(times)} entries but p has {n}")
    if times.hasnans:
        raise ValueError("created_at contains missing times")
    span = (times.max() - times.min()) / pd.Timedelta(days=1)
    return max(1.0, float(span))


def _per_day(escalations: int, created_at: Any, n: int) -> float | None:
    return None if created_at is None else escalations / _days_spanned(created_at, n)


def _precision_recall(
    y_sold: npt.ArrayLike | None, p: Floats, threshold: float
) -> tuple[float | None, float | None]:
    """Precision and recall of "p < threshold" for catching the leads that did not sell."""
    if y_sold is None:
        return None, None
    sold, _ = check_outcomes_and_probabilities(y_sold, p)
    escalated = p < threshold
    not_sold = sold == 0
    caught = int(np.sum(escalated & not_sold))
    precision = caught / int(escalated.sum()) if escalated.any() else None
    recall = caught / int(not_sold.sum()) if not_sold.any() else None
    return precision, recall


# ---------------------------------------------------------------------------------------------
# The three ways to choose t
# ---------------------------------------------------------------------------------------------


def _candidate_thresholds(sorted_p: Floats) -> Floats:
    """Distinct probabilities above the smallest one, plus 1.0 (escalate every lead below 1).

    With ``p < t`` the candidate ``t = u_j`` escalates exactly the leads below the j-th distinct
    value, so these are all distinct non-empty escalation sets, each at its lowest threshold.
    """
    distinct = np.unique(sorted_p)
    return np.union1d(distinct[1:], [1.0])


def by_f1(y_sold: npt.ArrayLike, p: npt.ArrayLike, *, created_at: Any = None) -> ThresholdChoice:
    """The threshold maximising F1 of "not sold" predicted by ``p < t``.

    Ties go to the lower threshold (fewer escalations).
    Sorting once and taking cumulative counts evaluates every candidate in O(n log n).
    Beware: when most leads do not sell, F1 of the majority class favours escalating nearly
    everyone; ``by_cost`` or ``by_capacity`` usually give more useful thresholds.
    """
    sold, probs = check_outcomes_and_probabilities(y_sold, p)
    total_not_sold = int(np.sum(sold == 0))
    if total_not_sold == 0:
        raise ValueError("by_f1 needs at least one lead that did not sell: F1 is undefined")
    order = np.argsort(probs, kind="stable")
    sorted_p = probs[order]
    # not_sold_below[k] = leads among the k lowest probabilities that did not sell.
    not_sold_below = np.concatenate(([0], np.cumsum(1 - sold[order])))
    candidates = _candidate_thresholds(sorted_p)
    escalated = np.searchsorted(sorted_p, candidates, side="left")
    caught = not_sold_below[escalated]
    f1 = 2.0 * caught / (escalated + total_not_sold)
    best = int(np.argmax(f1))  # first maximum: the lowest threshold, fewest escalations
    count = int(escalated[best])
    return ThresholdChoice(
        method="f1",
        threshold=float(candidates[best]),
        escalations=count,
        escalations_per_day=_per_day(count, created_at, probs.size),
        f1=float(f1[best]),
        precision=float(caught[best] / count) if count else None,
        recall=float(caught[best] / total_not_sold),
    )


def _check_cost_inputs(sale_value: float, escalation_cost: float, save_rate: float) -> None:
    if not (math.isfinite(sale_value) and sale_value > 0):
        raise ValueError(f"sale_value must be positive, got {sale_value}")
    if not (math.isfinite(escalation_cost) and escalation_cost >= 0):
        raise ValueError(f"escalation_cost must be zero or more, got {escalation_cost}")
    if not (math.isfinite(save_rate) and 0 < save_rate <= 1):
        raise ValueError(f"save_rate must be a probability in (0, 1], got {save_rate}")


def by_cost(
    y_sold: npt.ArrayLike | None,
    p: npt.ArrayLike,
    *,
    sale_value: float,
    escalation_cost: float,
    save_rate: float,
    created_at: Any = None,
) -> ThresholdChoice:
    """The threshold maximising expected net value of escalating every lead with ``p < t``.

    Escalating lead i is worth ``save_rate * sale_value * (1 - p_i) - escalation_cost`` in
    expectation: it costs the escalation and, if the lead would not have sold (probability
    ``1 - p_i`` by the calibrated model), saves a sale with probability ``save_rate``. The
    realised outcomes are not used for this, so ``y_sold`` may be None (they only feed
    precision and recall). The value falls as ``p_i`` rises, so the best set is every lead
    worth more than nothing: ``t = 1 - escalation_cost / (save_rate * sale_value)``, clipped
    to [0, 1]. No threshold does better on these leads, and this one does not depend on which
    leads happened to be in the sample.
    """
    _check_cost_inputs(sale_value, escalation_cost, save_rate)
    probs = check_probabilities(p)
    gain = save_rate * sale_value
    threshold = min(1.0, max(0.0, 1.0 - escalation_cost / gain))
    escalated = probs < threshold
    value = float(np.sum(gain * (1.0 - probs[escalated]) - escalation_cost))
    precision, recall = _precision_recall(y_sold, probs, threshold)
    count = int(escalated.sum())
    return ThresholdChoice(
        method="cost",
        threshold=threshold,
        escalations=count,
        escalations_per_day=_per_day(count, created_at, probs.size),
        expected_value=value,
        precision=precision,
        recall=recall,
    )


def by_capacity(
    p: npt.ArrayLike,
    created_at: Any,
    *,
    per_day: float,
    y_sold: npt.ArrayLike | None = None,
) -> ThresholdChoice:
    """The largest threshold whose escalations per day stay within ``per_day`` on average.

    Days are the span of ``created_at`` (at least 1), so the budget is
    ``floor(per_day * days)`` leads. With the probabilities sorted, ``t = sorted_p[budget]``
    escalates at most ``budget`` leads (ties at that value are all left out), and any larger
    ``t`` would escalate more. If the budget covers every lead, ``t`` is 1.0.
    """
    if not (math.isfinite(per_day) and per_day >= 0):
        raise ValueError(f"per_day must be zero or more, got {per_day}")
    probs = check_probabilities(p)
    days = _days_spanned(created_at, probs.size)
    budget = math.floor(per_day * days + _CAPACITY_SLACK)
    sorted_p = np.sort(probs)
    threshold = 1.0 if budget >= probs.size else float(sorted_p[budget])
    count = int(np.sum(probs < threshold))
    precision, recall = _precision_recall(y_sold, probs, threshold)
    return ThresholdChoice(
        method="capacity",
        threshold=threshold,
        escalations=count,
        escalations_per_day=count / days,
        precision=precision,
        recall=recall,
    )


# ---------------------------------------------------------------------------------------------
# Risk levels
# ---------------------------------------------------------------------------------------------


def validate_levels(critical: float, high: float, medium: float) -> None:
    """ValueError unless ``0 < critical < high < medium < 1`` (NaN fails too)."""
    if not 0.0 < critical < high < medium < 1.0:
        raise ValueError(
            "risk levels must satisfy 0 < critical < high < medium < 1, got "
            f"critical={critical}, high={high}, medium={medium}"
        )


def risk_levels_from(
    choice: ThresholdChoice | float, *, ratios: tuple[float, float, float] = DEFAULT_RATIOS
) -> dict[str, float]:
    """Critical / high / medium thresholds as fractions ``ratios`` of the chosen threshold.

    With the default ratios the chosen ``t`` becomes the medium line and the bands below it
    are split in thirds. Raises ValueError if the result is not a valid set of levels, e.g.
    for ``t = 1.0`` (medium must stay below 1) or ``t = 0``.
    """
    t = choice.threshold if isinstance(choice, ThresholdChoice) else float(choice)
    if len(ratios) != 3 or not 0.0 < ratios[0] < ratios[1] < ratios[2]:
        raise ValueError(f"ratios must be three increasing positive numbers, got {ratios}")
    levels = {name: t * ratio for name, ratio in zip(LEVEL_NAMES, ratios, strict=True)}
    validate_levels(**levels)
    return levels


def _level_edges(levels: Mapping[str, float]) -> Floats:
    missing = [name for name in LEVEL_NAMES if name not in levels]
    if missing:
        raise ValueError(f"risk levels lack {', '.join(missing)}")
    critical, high, medium = (float(levels[name]) for name in LEVEL_NAMES)
    validate_levels(critical, high, medium)
    return np.array([critical, high, medium])


def risk_levels(p: npt.ArrayLike, levels: Mapping[str, float]) -> npt.NDArray[np.str_]:
    """Vectorised ``risk_level``: one of critical / high / medium / low per probability."""
    edges = _level_edges(levels)
    probs = np.asarray(p, dtype=np.float64)
    # A missing probability must not quietly come out as "low" (every comparison with NaN is
    # false), so it is an error rather than a level.
    if not np.all(np.isfinite(probs)) or np.any((probs < 0) | (probs > 1)):
        raise ValueError("probabilities must be finite and within [0, 1]")
    # Edges at or below p: 0 -> p < critical, ..., 3 -> p >= medium.
    index: Ints = np.searchsorted(edges, probs, side="right").astype(np.int64)
    labels: npt.NDArray[np.str_] = LEVEL_LABELS[index]
    return labels


def risk_level(p: float, levels: Mapping[str, float]) -> str:
    """The level of one probability: "critical" if p < critical, "high" if p < high,
    "medium" if p < medium, else "low"."""
    return str(risk_levels(np.array([p]), levels)[0])
