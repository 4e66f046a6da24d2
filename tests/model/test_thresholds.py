from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from leadwatch.prediction.thresholds import (
    ThresholdChoice,
    by_capacity,
    by_cost,
    by_f1,
    risk_level,
    risk_levels,
    risk_levels_from,
    validate_levels,
)

START = pd.Timestamp("2025-03-01T00:00", tz="UTC")
LEVELS = {"critical": 0.1, "high": 0.2, "medium": 0.3}
SEVERITY = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def days_after_start(days: list[float]) -> pd.Series:
    return pd.Series(START + pd.to_timedelta(days, unit="D"))


# --- by_f1 --------------------------------------------------------------------------------


def test_by_f1_by_hand() -> None:
    choice = by_f1([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    # p < 0.3 escalates exactly the two leads that did not sell.
    assert choice.method == "f1"
    assert choice.threshold == 0.3
    assert choice.escalations == 2
    assert choice.f1 == choice.precision == choice.recall == 1.0
    assert choice.expected_value is None and choice.escalations_per_day is None


def test_by_f1_prefers_fewer_escalations_on_ties() -> None:
    # p < 0.2: F1 = 2 * 1 / (1 + 2) = 2/3; p < 0.3: 2/4; p < 0.4: 2/5; p < 1.0: 2 * 2 / (4 + 2) =
    # 2/3 again. The lower threshold wins the tie.
    choice = by_f1([0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4])
    assert choice.f1 == pytest.approx(2 / 3)
    assert choice.threshold == 0.2


def brute_force_f1(y_sold: np.ndarray, p: np.ndarray) -> float:
    best = 0.0
    for t in np.append(np.unique(p), 1.0):
        predicted = p < t
        if predicted.any():
            best = max(best, f1_score(1 - y_sold, predicted.astype(int), zero_division=0.0))
    return best


def test_by_f1_matches_brute_force() -> None:
    rng = np.random.default_rng(8)
    p = np.round(rng.uniform(size=400), 2)  # rounded: many ties
    y = (rng.uniform(size=p.size) < p).astype(int)
    choice = by_f1(y, p)
    assert choice.f1 == pytest.approx(brute_force_f1(y, p))
    escalated = p < choice.threshold
    assert choice.escalations == int(escalated.sum())
    assert choice.f1 == pytest.approx(f1_score(1 - y, escalated.astype(int)))


def test_by_f1_equal_probabilities_escalates_all() -> None:
    choice = by_f1([0, 1, 0, 0], [0.4] * 4)
    assert choice.threshold == 1.0
    assert choice.escalations == 4
    assert choice.f1 == pytest.approx(2 * 3 / (4 + 3))


def test_by_f1_needs_a_lead_that_did_not_sell() -> None:
    with pytest.raises(ValueError, match="did not sell"):
        by_f1([1, 1], [0.2, 0.8])


def test_by_f1_reports_per_day_when_times_are_given() -> None:
    choice = by_f1([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], created_at=days_after_start([0, 1, 2, 4]))
    assert choice.escalations_per_day == pytest.approx(2 / 4)


# --- by_cost ------------------------------------------------------------------------------


def test_by_cost_by_hand() -> None:
    p = [0.1, 0.5, 0.79, 0.8, 0.9]
    choice = by_cost(None, p, sale_value=1_000, escalation_cost=100, save_rate=0.5)
    # Worth escalating while 0.5 * 1000 * (1 - p) > 100, i.e. p < 0.8.
    assert choice.threshold == pytest.approx(0.8)
    assert choice.escalations == 3
    assert choice.expected_value == pytest.approx(500 * (0.9 + 0.5 + 0.21) - 300)
    assert choice.precision is None and choice.recall is None


def test_by_cost_beats_every_other_threshold() -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(size=300)
    kwargs = {"sale_value": 2_500.0, "escalation_cost": 40.0, "save_rate": 0.1}
    choice = by_cost(None, p, **kwargs)

    def value(t: float) -> float:
        escalated = p[p < t]
        return float(np.sum(0.1 * 2_500 * (1 - escalated) - 40))

    best = choice.expected_value
    assert best is not None
    assert best == pytest.approx(value(choice.threshold))
    for t in np.append(np.unique(p), [0.0, 1.0]):
        assert value(t) <= best + 1e-9


def test_by_cost_with_outcomes_reports_precision_and_recall() -> None:
    choice = by_cost(
        [0, 1, 0, 1], [0.1, 0.2, 0.3, 0.9], sale_value=100, escalation_cost=10, save_rate=0.5
    )
    # threshold 0.8: the first three escalated, two of them did not sell (of two in all).
    assert choice.escalations == 3
    assert choice.precision == pytest.approx(2 / 3)
    assert choice.recall == pytest.approx(1.0)


def test_by_cost_escalates_nothing_when_escalation_costs_more_than_it_can_save() -> None:
    choice = by_cost(None, [0.0, 0.5], sale_value=100, escalation_cost=60, save_rate=0.5)
    assert choice.threshold == 0.0
    assert choice.escalations == 0
    assert choice.expected_value == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sale_value": 0, "escalation_cost": 1, "save_rate": 0.5}, "sale_value"),
        ({"sale_value": 10, "escalation_cost": -1, "save_rate": 0.5}, "escalation_cost"),
        ({"sale_value": 10, "escalation_cost": 1, "save_rate": 1.5}, "save_rate"),
    ],
)
def test_by_cost_rejects_bad_money(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        by_cost(None, [0.5], **kwargs)


# --- by_capacity --------------------------------------------------------------------------


def test_by_capacity_by_hand() -> None:
    p = [0.05, 0.5, 0.1, 0.2, 0.3, 0.9]
    created = days_after_start([0, 1, 2, 3, 4, 4])  # a span of 4 days
    choice = by_capacity(p, created, per_day=0.5)  # room for 2 escalations
    assert choice.threshold == 0.2  # p < 0.2 escalates 0.05 and 0.1
    assert choice.escalations == 2
    assert choice.escalations_per_day == pytest.approx(0.5)


def test_by_capacity_leaves_out_a_tie_that_would_overflow() -> None:
    choice = by_capacity([0.1, 0.2, 0.2, 0.6], days_after_start([0, 0, 0, 0]), per_day=2)
    # Room for 2 in one day, but both leads at 0.2 would make 3.
    assert choice.threshold == 0.2
    assert choice.escalations == 1


def test_by_capacity_room_for_everyone() -> None:
    choice = by_capacity([0.3, 0.7], days_after_start([0, 10]), per_day=5)
    assert choice.threshold == 1.0
    assert choice.escalations == 2


def test_by_capacity_counts_at_least_one_day() -> None:
    choice = by_capacity([0.1, 0.2, 0.3], days_after_start([0.0, 0.1, 0.2]), per_day=1)
    assert choice.escalations == 1


def test_by_capacity_reports_precision_when_outcomes_are_given() -> None:
    choice = by_capacity([0.1, 0.2, 0.9], days_after_start([0, 0, 0]), per_day=2, y_sold=[0, 1, 1])
    assert choice.precision == pytest.approx(0.5)
    assert choice.recall == pytest.approx(1.0)


def test_by_capacity_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="created_at has 1 entries"):
        by_capacity([0.1, 0.2], days_after_start([0]), per_day=1)
    with pytest.raises(ValueError, match="missing"):
        by_capacity([0.1, 0.2], pd.Series([START, pd.NaT]), per_day=1)
    with pytest.raises(ValueError, match="per_day"):
        by_capacity([0.1], days_after_start([0]), per_day=-1)
    with pytest.raises(ValueError, match="empty"):
        by_capacity([], days_after_start([]), per_day=1)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]) | st.floats(0, 1), st.floats(0, 60)),
        min_size=1,
        max_size=80,
    ),
    st.floats(0, 10),
)
def test_by_capacity_respects_capacity(leads: list[tuple[float, float]], per_day: float) -> None:
    p = np.array([lead[0] for lead in leads])
    created = days_after_start([lead[1] for lead in leads])
    choice = by_capacity(p, created, per_day=per_day)
    days = max(1.0, (created.max() - created.min()) / pd.Timedelta(days=1))

    assert choice.escalations == int(np.sum(p < choice.threshold))
    assert choice.escalations <= per_day * days + 1e-6
    # Largest such threshold: anything above it would overflow (or t is already at the top).
    if choice.threshold < 1.0:
        above = math.nextafter(choice.threshold, 2.0)
        assert np.sum(p < above) > math.floor(per_day * days + 1e-9)


# --- risk levels --------------------------------------------------------------------------


def test_risk_levels_from_a_choice() -> None:
    choice = ThresholdChoice(method="capacity", threshold=0.3, escalations=5)
    levels = risk_levels_from(choice)
    assert levels == pytest.approx({"critical": 0.1, "high": 0.2, "medium": 0.3})
    assert risk_levels_from(0.4, ratios=(0.25, 0.5, 0.75)) == pytest.approx(
        {"critical": 0.1, "high": 0.2, "medium": 0.3}
    )


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5])
def test_risk_levels_from_rejects_degenerate_thresholds(threshold: float) -> None:
    with pytest.raises(ValueError, match="0 < critical < high < medium < 1"):
        risk_levels_from(threshold)


def test_risk_levels_from_rejects_unordered_ratios() -> None:
    with pytest.raises(ValueError, match="ratios"):
        risk_levels_from(0.3, ratios=(0.5, 0.4, 1.0))


@pytest.mark.parametrize(
    "levels",
    [(0.0, 0.2, 0.3), (0.2, 0.2, 0.3), (0.1, 0.4, 0.3), (0.1, 0.2, 1.0), (float("nan"), 0.2, 0.3)],
)
def test_validate_levels_rejects(levels: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="0 < critical < high < medium < 1"):
        validate_levels(*levels)


def test_validate_levels_accepts() -> None:
    validate_levels(0.1, 0.2, 0.3)


@pytest.mark.parametrize(
    ("p", "level"),
    [
        (0.0, "critical"),
        (0.0999, "critical"),
        (0.1, "high"),  # the boundary belongs to the milder level: p < critical is critical
        (0.2, "medium"),
        (0.2999, "medium"),
        (0.3, "low"),
        (1.0, "low"),
    ],
)
def test_risk_level_boundaries(p: float, level: str) -> None:
    assert risk_level(p, LEVELS) == level


def test_risk_levels_vectorised() -> None:
    labels = risk_levels(np.array([0.05, 0.15, 0.25, 0.35]), LEVELS)
    assert labels.tolist() == ["critical", "high", "medium", "low"]
    assert risk_levels(np.array([]), LEVELS).tolist() == []


def test_risk_levels_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        risk_levels([0.1, float("nan")], LEVELS)
    with pytest.raises(ValueError, match="lack high"):
        risk_level(0.1, {"critical": 0.1, "medium": 0.3})
    with pytest.raises(ValueError, match="0 < critical"):
        risk_level(0.1, {"critical": 0.3, "high": 0.2, "medium": 0.1})


@settings(max_examples=150, deadline=None)
@given(
    st.floats(0.01, 0.99),
    st.lists(st.floats(0, 1), min_size=1, max_size=50),
)
def test_risk_levels_are_ordered(threshold: float, p: list[float]) -> None:
    levels = risk_levels_from(threshold)
    assert 0 < levels["critical"] < levels["high"] < levels["medium"] < 1
    labels = risk_levels(np.array(p), levels)
    assert labels.tolist() == [risk_level(value, levels) for value in p]
    # A higher sale probability never gets a more severe level.
    by_p = sorted(zip(p, labels.tolist(), strict=True))
    severities = [SEVERITY[label] for _, label in by_p]
    assert severities == sorted(severities)


def test_choice_is_json_ready() -> None:
    choice = by_f1([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])
    assert json.loads(json.dumps(choice.as_dict()))["threshold"] == 0.3
