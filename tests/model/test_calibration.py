from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import brier_score_loss

from leadwatch.prediction.calibration import (
    ISOTONIC_MIN_EACH_OUTCOME,
    ISOTONIC_MIN_LEADS,
    HorizonCalibrator,
    expected_calibration_error,
    fit_horizon,
)
from tests.model.history import History

Floats = npt.NDArray[np.float64]
Distortion = Callable[[Floats], Floats]


def bernoulli(n: int, seed: int) -> tuple[Floats, Floats, Floats, Floats]:
    """True (P14, P30) with P14 <= P30 and outcomes drawn from them: a sale within 14 days is
    also a sale within 30 days."""
    rng = np.random.default_rng(seed)
    p30 = rng.beta(1.2, 6.0, n)
    p14 = p30 * rng.uniform(0.5, 0.9, n)
    u = rng.random(n)
    return p14, (u < p14).astype(float), p30, (u < p30).astype(float)


def worse_then_better(
    distort: Distortion, n_fit: int, n_eval: int = 20_000
) -> tuple[HorizonCalibrator, dict[str, float]]:
    """Calibrate a distorted predictor on one slice; scores on an independent one."""
    fit14, fit_y14, fit30, fit_y30 = bernoulli(n_fit, seed=1)
    calibrator = HorizonCalibrator().fit(distort(fit14), fit_y14, distort(fit30), fit_y30)
    p14, y14, p30, y30 = bernoulli(n_eval, seed=2)
    raw14, raw30 = distort(p14), distort(p30)
    cal14, cal30 = calibrator.transform(raw14, raw30)
    scores = {
        "ece_raw": expected_calibration_error(raw30, y30) + expected_calibration_error(raw14, y14),
        "ece_cal": expected_calibration_error(cal30, y30) + expected_calibration_error(cal14, y14),
        "brier_raw": brier_score_loss(y30, raw30) + brier_score_loss(y14, raw14),
        "brier_cal": brier_score_loss(y30, cal30) + brier_score_loss(y14, cal14),
    }
    return calibrator, scores


DISTORTIONS: dict[str, Distortion] = {
    "squared": lambda p: p**2,
    "halved": lambda p: 0.5 * p,
    "overconfident": lambda p: np.clip(2.5 * p - 0.05, 0.0, 1.0),
}


@pytest.mark.parametrize("name", DISTORTIONS)
def test_isotonic_repairs_a_miscalibrated_predictor(name: str) -> None:
    calibrator, s = worse_then_better(DISTORTIONS[name], n_fit=20_000)
    assert calibrator.methods == {14: "isotonic", 30: "isotonic"}
    assert s["ece_raw"] > 0.04  # clearly miscalibrated before
    assert s["ece_cal"] < s["ece_raw"] / 4
    assert s["ece_cal"] < 0.02
    assert s["brier_cal"] < s["brier_raw"] - 0.002


@pytest.mark.parametrize("name", ["squared", "halved"])
def test_small_slice_uses_platt_and_still_helps(name: str) -> None:
    calibrator, s = worse_then_better(DISTORTIONS[name], n_fit=400)
    assert calibrator.methods == {14: "platt", 30: "platt"}
    assert calibrator.to_dict()["horizons"]["30"]["n_leads"] == 400
    assert s["ece_cal"] < s["ece_raw"] / 2
    assert s["brier_cal"] < s["brier_raw"]


def test_method_threshold_is_the_slice_size() -> None:
    p14, y14, p30, y30 = bernoulli(ISOTONIC_MIN_LEADS, seed=3)
    assert min(y30.sum(), len(y30) - y30.sum()) >= ISOTONIC_MIN_EACH_OUTCOME
    assert fit_horizon(p30, y30).method == "isotonic"
    assert fit_horizon(p30[:-1], y30[:-1]).method == "platt"
    rare = np.where(np.arange(len(y30)) < ISOTONIC_MIN_EACH_OUTCOME - 1, 1.0, 0.0)
    assert fit_horizon(p30, rare).method == "platt"  # enough leads, too few sales
    # The horizons may come from different leads and use different methods.
    calibrator = HorizonCalibrator().fit(p14[:500], y14[:500], p30, y30)
    assert calibrator.methods == {14: "platt", 30: "isotonic"}


@pytest.mark.parametrize("n", [0, 30, 5_000])
def test_single_class_is_identity(n: int) -> None:
    p = np.linspace(0.0, 1.0, n)
    calibrator = HorizonCalibrator().fit(p, np.zeros(n), p, np.zeros(n))
    assert calibrator.methods == {14: "identity", 30: "identity"}
    reason = calibrator.to_dict()["horizons"]["14"]["reason"]
    assert ("no leads" if n == 0 else "only outcome 0") in reason
    raw14, raw30 = np.array([0.1, 0.7, 0.3]), np.array([0.2, 0.5, 0.3])
    cal14, cal30 = calibrator.transform(raw14, raw30)
    assert cal30.tolist() == raw30.tolist()
    assert cal14.tolist() == [0.1, 0.5, 0.3]  # unchanged except the ordering guarantee


def test_calibrates_generated_history_on_a_later_slice(short_history: History) -> None:
    """A predictor at half the true probabilities, repaired on the earlier closed windows and
    checked on the later ones (the generator's known truth as the predictor)."""
    truth, created = short_history.truth, short_history.leads["created_at"]
    closed = (truth["sold_within_30d"] != "").to_numpy()
    order = np.argsort(created.to_numpy()[closed], kind="stable")
    p14 = 0.5 * truth["p_sale_14d"].to_numpy()[closed][order]
    p30 = 0.5 * truth["p_sale_30d"].to_numpy()[closed][order]
    y14 = truth["sold_within_14d"].to_numpy()[closed][order].astype(float)
    y30 = truth["sold_within_30d"].to_numpy()[closed][order].astype(float)
    half = len(order) // 2
    fit, later = slice(0, half), slice(half, None)
    calibrator = HorizonCalibrator().fit(p14[fit], y14[fit], p30[fit], y30[fit])
    # a couple of thousand closed leads with a couple of hundred sales: Platt's two parameters
    assert set(calibrator.methods.values()) <= {"isotonic", "platt"}
    cal14, cal30 = calibrator.transform(p14[later], p30[later])
    for raw, cal, y in ((p14[later], cal14, y14[later]), (p30[later], cal30, y30[later])):
        assert expected_calibration_error(cal, y) < expected_calibration_error(raw, y) / 2
        assert brier_score_loss(y, cal) < brier_score_loss(y, raw)
        assert abs(cal.mean() - y.mean()) < 0.02  # the halved predictor was ~6 points low


def plain_types_only(value: object) -> bool:
    if type(value) is dict:
        return all(type(k) is str and plain_types_only(v) for k, v in value.items())
    if type(value) is list:
        return all(plain_types_only(v) for v in value)
    return type(value) in (str, int, float, bool)


@pytest.mark.parametrize("n_fit", [20_000, 400, 0])
def test_round_trip_without_pickle(n_fit: int) -> None:
    p14, y14, p30, y30 = bernoulli(n_fit, seed=4)
    calibrator = HorizonCalibrator().fit(p14**2, y14, p30**2, y30)
    stored = calibrator.to_dict()
    assert plain_types_only(stored)
    restored = HorizonCalibrator.from_dict(json.loads(json.dumps(stored)))
    assert restored.to_dict() == stored
    q14, _, q30, _ = bernoulli(5_000, seed=5)
    q14, q30 = np.append(q14, [0.0, 1.0]), np.append(q30, [0.0, 1.0])
    for before, after in zip(
        calibrator.transform(q14, q30), restored.transform(q14, q30), strict=True
    ):
        assert np.array_equal(before, after)


def test_isotonic_state_matches_sklearn_transform() -> None:
    p14, y14, p30, y30 = bernoulli(5_000, seed=6)
    stored = HorizonCalibrator().fit(p14, y14, p30, y30).to_dict()["horizons"]["30"]
    from sklearn.isotonic import IsotonicRegression

    reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p30, y30)
    grid = np.linspace(-0.1, 1.1, 1_001)
    expected = reference.predict(np.clip(grid, 0.0, 1.0))
    got = np.interp(np.clip(grid, 0.0, 1.0), stored["x"], stored["y"])
    assert np.allclose(got, expected)


@st.composite
def calibrators(draw: st.DrawFn) -> HorizonCalibrator:
    """Calibrators fitted on random, even adversarial, slices of any size."""
    n = draw(st.integers(0, 1_500))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p14, p30 = rng.random(n) ** draw(st.floats(0.2, 5.0)), rng.random(n)
    y14, y30 = (rng.random((2, n)) < draw(st.floats(0.0, 1.0))).astype(float)
    return HorizonCalibrator().fit(p14, y14, p30, y30)


probabilities = arrays(
    np.float64, st.integers(1, 50), elements=st.floats(0.0, 1.0, allow_subnormal=False)
)


@settings(max_examples=60, deadline=None)
@given(calibrators(), probabilities, st.data())
def test_calibrated_horizons_are_ordered_probabilities(
    calibrator: HorizonCalibrator, p14: Floats, data: st.DataObject
) -> None:
    # p30 is independent of p14: the raw inputs need not be ordered, the output always is.
    p30 = data.draw(
        arrays(np.float64, len(p14), elements=st.floats(0.0, 1.0, allow_subnormal=False))
    )
    cal14, cal30 = calibrator.transform(p14, p30)
    assert cal14.shape == cal30.shape == p14.shape
    assert np.all(cal14 <= cal30)
    assert np.all((cal14 >= 0.0) & (cal30 <= 1.0) & (cal14 <= 1.0) & (cal30 >= 0.0))


def test_transform_accepts_pandas_and_rejects_bad_input() -> None:
    p14, y14, p30, y30 = bernoulli(2_000, seed=7)
    calibrator = HorizonCalibrator().fit(pd.Series(p14), pd.Series(y14), p30, y30)
    with pytest.raises(ValueError, match="shape"):
        calibrator.transform(p14, p30[:-1])
    with pytest.raises(ValueError, match="NaN"):
        calibrator.transform([np.nan], [0.5])
    with pytest.raises(ValueError, match="0 or 1"):
        HorizonCalibrator().fit(p14, y14 * 2, p30, y30)
    with pytest.raises(RuntimeError, match="not fitted"):
        HorizonCalibrator().transform(p14, p30)
    with pytest.raises(ValueError, match="version"):
        HorizonCalibrator.from_dict({"version": 99, "horizons": {}})


def test_expected_calibration_error() -> None:
    assert expected_calibration_error([0.25, 0.25, 0.25, 0.25], [1, 0, 0, 0]) == 0.0
    assert expected_calibration_error([0.9, 0.9], [0, 0]) == pytest.approx(0.9)
    assert expected_calibration_error([1.0, 0.0], [1, 0]) == 0.0  # p = 1 lands in the last bin
