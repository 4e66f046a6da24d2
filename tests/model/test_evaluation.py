from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from leadwatch.prediction.evaluation import (
    ROW_METRICS,
    evaluate_horizons,
    expected_calibration_error,
    horizon_metrics,
    lift_and_capture,
    reliability_table,
)


@st.composite
def outcomes_and_probabilities(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    n = draw(st.integers(min_value=1, max_value=60))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    # A few repeated values make ties (and empty bins) common, as with real calibrated scores.
    value = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    p = draw(st.lists(value, min_size=n, max_size=n))
    return y, p


def synthetic(
    n: int, seed: int, distort: float = 1.0
) -> tuple[
    np.ndarray[tuple[int], np.dtype[np.int64]], np.ndarray[tuple[int], np.dtype[np.float64]]
]:
    """Outcomes drawn from ``true ** distort`` while the prediction is ``true``."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    y = (rng.uniform(0.0, 1.0, n) < p**distort).astype(np.int64)
    return y, p


# --- reliability and ECE ------------------------------------------------------------------


def test_reliability_table_by_hand() -> None:
    table = reliability_table([0, 1, 1, 0], [0.05, 0.15, 0.95, 1.0], bins=10)
    assert len(table) == 10
    assert table[0] == pytest.approx(
        {
            "bin_lower": 0.0,
            "bin_upper": 0.1,
            "count": 1,
            "mean_predicted": 0.05,
            "observed_rate": 0.0,
        }
    )
    assert table[1]["observed_rate"] == 1.0
    # p == 1.0 belongs to the last bin, not to an eleventh one.
    assert table[9]["count"] == 2
    assert table[9]["mean_predicted"] == pytest.approx(0.975)
    assert table[9]["observed_rate"] == 0.5
    assert table[5] == {
        "bin_lower": 0.5,
        "bin_upper": 0.6,
        "count": 0,
        "mean_predicted": None,
        "observed_rate": None,
    }


def test_bin_edges_are_left_closed() -> None:
    table = reliability_table([0, 0, 0], [0.0, 0.5, 0.7], bins=10)
    counts = [row["count"] for row in table]
    assert counts == [1, 0, 0, 0, 0, 1, 0, 1, 0, 0]


def test_ece_by_hand() -> None:
    # bins: 0.05 (observed 0), 0.15 (observed 1), {0.95, 1.0} (observed 0.5)
    ece = expected_calibration_error([0, 1, 1, 0], [0.05, 0.15, 0.95, 1.0])
    assert ece == pytest.approx((0.05 + 0.85 + 2 * 0.475) / 4)


def test_ece_near_zero_for_calibrated_data() -> None:
    y, p = synthetic(200_000, seed=1)
    assert expected_calibration_error(y, p) < 0.01


def test_ece_clearly_positive_for_miscalibrated_data() -> None:
    # Outcomes follow p**2 while the model says p: off by E[p - p^2] = 1/6 on average.
    y, p = synthetic(200_000, seed=2, distort=2.0)
    assert expected_calibration_error(y, p) == pytest.approx(1 / 6, abs=0.02)


@settings(max_examples=150, deadline=None)
@given(outcomes_and_probabilities(), st.integers(1, 20))
def test_ece_is_within_unit_interval(data: tuple[list[int], list[float]], bins: int) -> None:
    y, p = data
    assert 0.0 <= expected_calibration_error(y, p, bins) <= 1.0
    assert sum(row["count"] for row in reliability_table(y, p, bins)) == len(y)


# --- lift and capture ---------------------------------------------------------------------

Y10 = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
P10 = [0.9, 0.3, 0.8, 0.2, 0.25, 0.35, 0.4, 0.45, 0.5, 0.05]


def test_lift_top_decile_by_hand() -> None:
    result = lift_and_capture(Y10, P10)
    # Top 10 % = the single lead at 0.9, which sold; overall sale rate 0.2.
    assert result.direction == "likely_sale"
    assert result.selected == 1
    assert result.lift == pytest.approx(5.0)
    assert result.capture == pytest.approx(0.5)


def test_lift_at_risk_by_hand() -> None:
    result = lift_and_capture(Y10, P10, positive_is_high=False)
    # Lowest 10 % = the lead at 0.05, which did not sell; overall "not sold" rate 0.8.
    assert result.direction == "at_risk"
    assert result.base_rate == pytest.approx(0.8)
    assert result.lift == pytest.approx(1.25)
    assert result.capture == pytest.approx(1 / 8)


def test_ties_at_the_cut_are_shared() -> None:
    result = lift_and_capture([0, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], top=0.5)
    # Lead at 0.9 plus half of the two tied at 0.5 (one of which sold): 0.5 positives.
    assert result.positives_selected == pytest.approx(0.5)
    assert result.lift == pytest.approx(1.0)
    assert result.capture == pytest.approx(0.5)


def test_constant_scores_have_lift_one_whatever_the_order() -> None:
    y = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    for direction in (True, False):
        result = lift_and_capture(y, [0.3] * 10, positive_is_high=direction)
        assert result.lift == pytest.approx(1.0)
        assert result.capture == pytest.approx(0.1)


def test_lift_undefined_without_positives() -> None:
    assert lift_and_capture([1, 1, 1], [0.2, 0.5, 0.9], positive_is_high=False).lift is None
    assert lift_and_capture([0, 0, 0], [0.2, 0.5, 0.9]).capture is None


def test_top_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="top must be"):
        lift_and_capture([0, 1], [0.1, 0.2], top=0.0)


@settings(max_examples=150, deadline=None)
@given(outcomes_and_probabilities(), st.floats(0.01, 1.0), st.booleans())
def test_capture_within_unit_interval(
    data: tuple[list[int], list[float]], top: float, high: bool
) -> None:
    y, p = data
    result = lift_and_capture(y, p, top, positive_is_high=high)
    if result.capture is None:
        return
    assert -1e-12 <= result.capture <= 1.0 + 1e-12
    # lift = rate among selected / overall rate = capture * n / selected
    assert result.lift == pytest.approx(result.capture * len(y) / result.selected)


# --- one horizon --------------------------------------------------------------------------


def test_horizon_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.02, 0.98, 2_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    m = horizon_metrics(y, p)
    assert m.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert m.pr_auc == pytest.approx(average_precision_score(y, p))
    assert m.brier == pytest.approx(brier_score_loss(y, p))
    assert m.log_loss == pytest.approx(log_loss(y, p))
    assert m.n == 2_000
    assert m.positives == int(y.sum())
    assert m.base_rate == pytest.approx(y.mean())


def test_log_loss_is_clipped() -> None:
    # A confident miss costs -log(1e-6), not infinity.
    m = horizon_metrics([1, 0], [0.0, 0.0])
    assert m.log_loss == pytest.approx(-np.log(1e-6) / 2 - np.log(1 - 1e-6) / 2)


def test_single_class_gives_no_auc() -> None:
    m = horizon_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert m.roc_auc is None and m.pr_auc is None
    assert m.lift_top_decile is None and m.capture_top_decile is None
    assert m.at_risk_lift == pytest.approx(1.0)
    assert m.brier == pytest.approx((0.01 + 0.04 + 0.09) / 3)


def test_all_equal_probabilities() -> None:
    m = horizon_metrics([0, 1, 0, 1], [0.5] * 4)
    assert m.roc_auc == pytest.approx(0.5)
    assert m.ece == pytest.approx(0.0)
    assert m.lift_top_decile == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([], [], "empty"),
        ([0, 1], [0.5], "differ in length"),
        ([0, 2], [0.5, 0.5], "0/1"),
        ([0, 1], [0.5, 1.5], r"within \[0, 1\]"),
        ([0, 1], [0.5, float("nan")], "NaN"),
        ([[0, 1]], [[0.5, 0.5]], "one-dimensional"),
    ],
)
def test_bad_input_is_rejected(y: list[int], p: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        horizon_metrics(y, p)


def test_bools_are_outcomes() -> None:
    assert horizon_metrics([True, False], [0.8, 0.3]).roc_auc == 1.0


# --- both horizons against the baseline ---------------------------------------------------


def test_evaluate_horizons_report() -> None:
    y14, p14 = synthetic(1_000, seed=3)
    y30, p30 = synthetic(1_000, seed=4)
    report = evaluate_horizons(y14, p14, y30, p30, 0.3, 0.45, split={"train": 700})

    assert set(report.model) == set(report.baseline) == {"14d", "30d"}
    assert report.model["30d"].roc_auc == pytest.approx(roc_auc_score(y30, p30))
    baseline = report.baseline["14d"]
    assert baseline.roc_auc == pytest.approx(0.5)
    assert baseline.lift_top_decile == pytest.approx(1.0)
    assert baseline.brier == pytest.approx(brier_score_loss(y14, np.full(1_000, 0.3)))
    assert baseline.ece == pytest.approx(abs(y14.mean() - 0.3))
    assert report.baseline_rates == {"14d": 0.3, "30d": 0.45}

    rows = report.rows()
    assert len(rows) == 2 * len(ROW_METRICS)
    table = {(metric, horizon): (model, baseline) for metric, horizon, model, baseline in rows}
    model_auc, baseline_auc = table["roc_auc", "30d"]
    assert model_auc == report.model["30d"].roc_auc
    assert baseline_auc == pytest.approx(0.5)
    assert table["n", "14d"] == (1_000, 1_000)

    as_dict = json.loads(json.dumps(report.as_dict()))
    assert as_dict["split"] == {"train": 700}
    assert as_dict["model"]["14d"]["n"] == 1_000
    assert len(as_dict["model"]["30d"]["reliability"]) == 10
    assert len(as_dict["rows"]) == len(rows)


def test_model_beats_baseline_on_informative_predictions() -> None:
    y, p = synthetic(5_000, seed=6)
    report = evaluate_horizons(y, p, y, p, float(y.mean()), float(y.mean()))
    model, baseline = report.model["14d"], report.baseline["14d"]
    assert model.brier < baseline.brier
    assert model.log_loss < baseline.log_loss
    assert model.lift_top_decile is not None and model.lift_top_decile > 1.5
    assert model.at_risk_lift is not None and model.at_risk_lift > 1.0


def test_bad_base_rate_is_rejected() -> None:
    with pytest.raises(ValueError, match="base14"):
        evaluate_horizons([0, 1], [0.2, 0.7], [0, 1], [0.2, 0.7], 1.2, 0.5)
