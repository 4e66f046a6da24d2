"""`predict_one` without pandas: one lead's features straight into LightGBM's booster.

Intake and the escalation sweep score leads one at a time, and through pandas a single lead
costs tens of milliseconds (frame building, categoricals, per-call overhead), most of it
spent on the seven variants the explanation needs. For the default model (gradient boosting,
horizon mode, the derived features) this module builds the numeric matrix by hand, with the
encoding `model.FeatureEncoder` learned, and scores the lead, its explanation variants and its
cost of waiting in one booster call. Anything it does not handle (other model types, extra
feature columns, dates it cannot read) returns None and the pandas path answers instead; a
test checks that both paths agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from leadwatch.prediction import explain
from leadwatch.prediction.calibration import HorizonCalibrator
from leadwatch.prediction.features import DEFAULT_FEATURES, MAX_WAIT_HOURS
from leadwatch.prediction.labels import HORIZON_PERIODS, N_PERIODS, PERIOD_COLUMN
from leadwatch.prediction.model import MISSING, OTHER, HazardModel

Floats = npt.NDArray[np.float64]
CONTACT_DELAY, CONTACTED = "contact_delay", "contacted"


class FastScorer:
    """Scores one lead like `LeadOutcomePredictor.predict_one`, without pandas."""

    def __init__(
        self,
        model: HazardModel,
        calibrator: HorizonCalibrator,
        reference: Mapping[str, object],
        top: int,
    ) -> None:
        encoder = model.encoder_
        if encoder.columns_[-1] != PERIOD_COLUMN:
            raise ValueError("the model's columns must end with the period")
        self._booster = model.estimator_.booster_
        self._columns: list[str] = list(encoder.columns_)
        self._position = {name: i for i, name in enumerate(self._columns)}
        self._codes = {
            column: {value: float(code) for code, value in enumerate(categories)}
            for column, categories in encoder.categories_.items()
        }
        self._fill = dict(encoder.fill_values_)
        self._calibrator = calibrator
        self._top = top
        self._groups = [
            (name, (CONTACT_DELAY, CONTACTED) if name == CONTACT_DELAY else (name,))
            for name in self._columns
            if name not in (CONTACTED, PERIOD_COLUMN)
        ]
        self._reference = {
            name: self._encode(name, reference[name]) for _, group in self._groups for name in group
        }

    @classmethod
    def build(
        cls,
        model: HazardModel,
        calibrator: HorizonCalibrator,
        reference: Mapping[str, object],
        features: Sequence[str],
        top: int,
        target_mode: bool,
    ) -> FastScorer | None:
        if target_mode or model.model_type != "gradient_boosting":
            return None
        if not set(features) <= set(DEFAULT_FEATURES):
            return None
        return cls(model, calibrator, reference, top)

    def score(self, lead: Mapping[str, Any], as_of: datetime) -> dict[str, Any] | None:
        """``p14``, ``p30`` (unrounded), ``top_factors`` and, for a lead nobody has contacted,
        ``cost_of_waiting``; None when the pandas path must answer."""
        values = self._features(lead, as_of)
        if values is None:
            return None
        base = np.array([self._encode(name, values[name]) for name in self._columns[:-1]])
        variants = [base]
        for _, group in self._groups:
            swapped = base.copy()
            for name in group:
                swapped[self._position[name]] = self._reference[name]
            variants.append(swapped)
        waiting = values[CONTACTED] == 0.0 and CONTACT_DELAY in self._position
        if waiting:
            now = base.copy()
            now[self._position[CONTACTED]] = 1.0
            later = now.copy()
            later[self._position[CONTACT_DELAY]] = min(values[CONTACT_DELAY] + 1.0, MAX_WAIT_HOURS)
            variants += [now, later]
        p14, p30 = self._probabilities(np.vstack(variants))
        result: dict[str, Any] = {
            "p14": float(p14[0]),
            "p30": float(p30[0]),
            "top_factors": self._factors(values, p30),
        }
        if waiting:
            p_now, p_later = float(p30[-2]), float(p30[-1])
            result["cost_of_waiting"] = {
                "now": p_now,
                "in_1h": p_later,
                "points_lost": (p_now - p_later) * 100.0,
            }
        return result

    def _probabilities(self, variants: Floats) -> tuple[Floats, Floats]:
        rows = np.repeat(variants, N_PERIODS, axis=0)
        periods = np.tile(np.arange(N_PERIODS, dtype=np.float64), len(variants))
        matrix = np.column_stack([rows, periods])
        # One thread: for a few dozen rows, starting a thread team costs more than the trees.
        hazard = np.clip(np.asarray(self._booster.predict(matrix, num_threads=1)), 0.0, 1.0)
        survival = np.cumprod(1.0 - hazard.reshape(-1, N_PERIODS), axis=1)
        raw14 = 1.0 - survival[:, HORIZON_PERIODS[14] - 1]
        raw30 = 1.0 - survival[:, HORIZON_PERIODS[30] - 1]
        return self._calibrator.transform(raw14, raw30)

    def _factors(self, values: Mapping[str, Any], p30: Floats) -> list[str]:
        points = np.round((p30[0] - p30[1 : 1 + len(self._groups)]) * 100.0, 1)
        order = np.argsort(-np.abs(points), kind="stable")[: self._top]
        texts = []
        for j in order:
            effect = float(points[j])
            if abs(effect) < explain.MIN_POINTS:
                break
            name = self._groups[j][0]
            texts.append(explain._text(name, values[name], values.get(CONTACTED), effect))
        return texts

    def _encode(self, column: str, value: object) -> float:
        codes = self._codes.get(column)
        if codes is None:  # numeric
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return self._fill[column]
            return float(value)  # type: ignore[arg-type]
        text = MISSING if value is None else str(value)
        return codes.get(text, codes[OTHER])

    def _features(self, lead: Mapping[str, Any], as_of: datetime) -> dict[str, Any] | None:
        try:
            created = _naive(lead.get("created_at"))
            contacted_at = _naive(lead.get("contacted_at"))
        except ValueError:
            return None  # a date form only the pandas path reads
        if created is None:
            return None
        moment = as_of.replace(tzinfo=None)
        make, model = _text(lead.get("vehicle_make")), _text(lead.get("vehicle_model"))
        contacted = contacted_at is not None and contacted_at <= moment
        if contacted and contacted_at is not None:
            delay = (contacted_at - created).total_seconds() / 3600.0
        else:
            delay = min((moment - created).total_seconds() / 3600.0, MAX_WAIT_HOURS)
        return {
            "rep": _text(lead.get("rep")),
            "vehicle": f"{make} {model}" if make is not None and model is not None else None,
            "source": _text(lead.get("lead_source")),
            "hour_created": float(created.hour),
            "day_created": float(created.weekday()),
            CONTACT_DELAY: max(delay, 0.0),
            CONTACTED: 1.0 if contacted else 0.0,
        }


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _naive(value: object) -> datetime | None:
    """As `frames.prepare` reads a time: naive stays, aware becomes naive UTC."""
    if value is None or value != value:  # None, NaN and NaT (the only values unequal to self)
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        value = datetime.fromisoformat(value.strip())
    if not isinstance(value, datetime):
        raise ValueError(f"not a date: {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value
