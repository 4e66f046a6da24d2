"""`LeadOutcomePredictor`: train, validate out of time, calibrate, score and explain.

One model gives both horizons (a discrete-time hazard, `model.HazardModel`), so
P(sold within 14 d) <= P(sold within 30 d) for every lead. Training:

1. split the history by time (`splits.out_of_time_split`): train / calibration / validation;
2. for each candidate model type, fit on the training slice (labels censored at its end),
   calibrate on the calibration slice, measure on the validation slice against a naive
   base-rate baseline; `auto` keeps the type with the lowest validation log loss;
3. refit the chosen type the same way one slice later (trained up to the validation slice,
   calibrated on it), so the model that ships has seen the newest closed outcomes. The
   reported metrics are those of step 2: the same procedure, measured on data it never saw.

Explicit outcome mode (``train(df, target="COL")``): the data carries its own 0/1 outcome per
lead (bought a car, came to the showroom, ...), so horizons and censoring do not apply. The
leads are split by creation time only (oldest ~65 % train, next ~15 % calibration, newest
~20 % validation), the same hazard model is fitted on one period per lead (a constant
``period`` 0), so its period-0 hazard is P(outcome), and that is calibrated with a single
horizon map (``calibration.fit_horizon``) and measured against the training base rate under
the horizon key ``"target"``. Scores keep the usual column names (see ``predict``).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadwatch.prediction import evaluation, explain, thresholds
from leadwatch.prediction.artifacts import ModelInfo, ModelStore, store_for
from leadwatch.prediction.calibration import (
    PROBABILITY_FLOOR,
    HorizonCalibrator,
    HorizonMap,
    fit_horizon,
)
from leadwatch.prediction.fastpath import FastScorer
from leadwatch.prediction.features import DEFAULT_FEATURES, build_features
from leadwatch.prediction.frames import from_mapping, latest_time, prepare, sold_within
from leadwatch.prediction.labels import person_periods
from leadwatch.prediction.model import MODEL_TYPES, HazardModel
from leadwatch.prediction.splits import TimeSplit, out_of_time_split
from leadwatch.prediction.target import (
    TARGET_CAL_START,
    TARGET_HORIZON,
    parse_target,
    single_period,
    target_report,
    target_split,
)

Floats = npt.NDArray[np.float64]
# Training's progress: (stage, fraction of the training done), e.g. ("fitting", 0.05).
Progress = Callable[[str, float], None]
DEFAULT_LEVELS = {"critical": 0.10, "high": 0.20, "medium": 0.30}
IMPORTANCE_SAMPLE = 50_000
OUTPUT_COLUMNS = ("sale_probability_14d", "sale_probability_30d", "risk_level", "top_factors")
OUTCOME_COLUMN = "outcome_probability"  # target mode only: P(target outcome)
# Target mode: the oldest 65 % of the leads train, the next 15 % calibrate, the newest 20 %
# validate.


@dataclass
class _Fitted:
    """One trained pipeline: hazard model, calibrator, and what explanations compare with.

    Horizon mode has a ``HorizonCalibrator`` (14 and 30 days); target mode a single
    ``HorizonMap`` on the period-0 hazard, P(outcome)."""

    model: HazardModel
    calibrator: HorizonCalibrator | HorizonMap
    reference: dict[str, Any]

    @property
    def target_mode(self) -> bool:
        return isinstance(self.calibrator, HorizonMap)


@dataclass
class TrainingReport:
    model_type: str
    as_of: str
    rows: int
    split: dict[str, Any]
    slices: dict[str, int]
    validation: dict[str, Any]
    candidates: dict[str, float] = field(default_factory=dict)
    feature_importance: dict[str, float] = field(default_factory=dict)
    version: str | None = None
    target: str | None = None  # the outcome column in target mode, None in horizon mode

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "version": self.version,
            "target": self.target,
            "as_of": self.as_of,
            "rows": self.rows,
            "split": self.split,
            "slices": self.slices,
            "validation": self.validation,
            "candidates_log_loss": self.candidates,
            "feature_importance": self.feature_importance,
        }


class LeadOutcomePredictor:
    """P(sale within 14 days) and P(sale within 30 days) for every lead, with risk levels and
    plain-words factors. Hyperparameters live in ``__init__``; learned state ends in ``_``."""

    version_: str | None = None  # the model file this predictor was loaded from
    target_: str | None = None  # the outcome column in target mode, None in horizon mode

    def __init__(
        self,
        model_type: str = "gradient_boosting",
        *,
        features: Sequence[str] = DEFAULT_FEATURES,
        risk_levels: Mapping[str, float] | None = None,
        random_state: int | None = 0,
        n_jobs: int = 1,
        top_factors: int = 3,
    ) -> None:
        if model_type not in (*MODEL_TYPES, "auto"):
            raise ValueError(
                f"model_type must be one of {(*MODEL_TYPES, 'auto')}, not {model_type!r}"
            )
        self.model_type = model_type
        self.features = tuple(features)
        self.risk_levels = dict(risk_levels or DEFAULT_LEVELS)
        thresholds.validate_levels(
            self.risk_levels["critical"], self.risk_levels["high"], self.risk_levels["medium"]
        )
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.top_factors = top_factors

    # --- training ------------------------------------------------------------------------

    def train(
        self,
        df: pd.DataFrame,
        *,
        as_of: datetime | str | None = None,
        target: str | None = None,
        progress: Progress | None = None,
    ) -> TrainingReport:
        """Fit on lead history (one row per lead, with created_at, contacted_at, sold_at and
        the feature columns). ``as_of``: when the history was taken (default: its latest date);
        a lead whose window is still open then is not counted as a "no sale".

        ``target``: the name of a column holding an explicit 0/1 outcome per lead (0/1,
        "0"/"1", true/false or yes/no; anything else is a ValueError). Then horizons do not
        apply: the leads are split by creation time only, the model predicts P(outcome) and the
        validation metrics are reported under the single horizon key ``"target"`` (see the
        module docstring). ``target_`` remembers the column (None in horizon mode).

        ``progress``, if given, is called at each stage ("preparing", then per candidate
        "fitting", "calibrating", "validating", then "importance", then "fitting" and
        "calibrating" again for the model that ships) with the fraction of training done."""
        stage = _Stages(progress)
        stage("preparing")
        leads = prepare(df)
        moment = pd.Timestamp(as_of).tz_localize(None) if as_of is not None else latest_time(leads)
        candidates = list(MODEL_TYPES) if self.model_type == "auto" else [self.model_type]
        stage.candidates = len(candidates)
        if target is not None:
            return self._train_target(leads, moment, target, stage)
        split = out_of_time_split(leads["created_at"], moment)
        created = leads["created_at"]

        self.base_rates_ = _base_rates(leads, split)
        scored: dict[str, tuple[float, evaluation.EvaluationReport, _Fitted]] = {}
        for index, model_type in enumerate(candidates):
            stage("fitting", index)
            fitted = self._fit(
                leads,
                model_type,
                train_as_of=split.cal_start,
                train=split.train_mask(created),
                calibrate=split.calibration_mask(created),
                as_of=moment,
                calibrating=partial(stage, "calibrating", index),
            )
            stage("validating", index)
            report = self._validate(leads, fitted, split, moment)
            scored[model_type] = (report.model["30d"].log_loss, report, fitted)
        chosen = min(scored, key=lambda name: scored[name][0])
        _, report, validated = scored[chosen]

        self.validation_fitted_ = validated
        stage("importance")
        importance = self._permutation_importance(leads, validated, split, moment)
        # Ship the same procedure one slice later: trained up to validation, calibrated on it.
        stage("fitting")
        self.fitted_ = self._fit(
            leads,
            chosen,
            train_as_of=split.val_start,
            train=created < split.val_start,
            calibrate=split.validation_mask(created),
            as_of=moment,
            calibrating=partial(stage, "calibrating"),
        )
        masks = (split.train_mask(created), split.calibration_mask(created))
        return self._record(
            chosen,
            moment,
            None,
            len(leads),
            split.as_dict(),
            (*masks, split.validation_mask(created)),
            report,
            scored,
            importance,
        )

    def _train_target(
        self, leads: pd.DataFrame, moment: pd.Timestamp, target: str, stage: _Stages
    ) -> TrainingReport:
        """Target mode: the same select-then-refit procedure as ``train`` on an explicit
        outcome, with slices by creation time and no horizons."""
        if target in self.features:
            raise ValueError(f"the target column {target!r} cannot also be a feature")
        outcome = parse_target(leads, target)
        created = leads["created_at"]
        split = target_split(created, moment)
        train, calibrate = split.train_mask(created), split.calibration_mask(created)
        validate = split.validation_mask(created)
        if len(np.unique(outcome[train])) < 2:
            raise ValueError(
                f"the training slice (the oldest {TARGET_CAL_START:.0%} of the leads) needs "
                f"both outcomes of {target!r}, 1 and 0"
            )
        # Outcomes are given, not observed over a window: every lead is described as of one
        # moment, when the history was taken.
        features = build_features(leads, as_of=moment, features=self.features)
        base = float(outcome[train].mean())
        self.base_rates_ = (base, base)
        candidates = list(MODEL_TYPES) if self.model_type == "auto" else [self.model_type]
        scored: dict[str, tuple[float, evaluation.EvaluationReport, _Fitted]] = {}
        for index, model_type in enumerate(candidates):
            stage("fitting", index)
            fitted = self._fit_target(
                features,
                outcome,
                model_type,
                train,
                calibrate,
                calibrating=partial(stage, "calibrating", index),
            )
            stage("validating", index)
            p = self._probabilities(fitted, features[validate])[1]
            report = target_report(outcome[validate], p, base, split.as_dict())
            scored[model_type] = (report.model[TARGET_HORIZON].log_loss, report, fitted)
        chosen = min(scored, key=lambda name: scored[name][0])
        _, report, validated = scored[chosen]

        self.validation_fitted_ = validated
        stage("importance")
        importance = self._importance(validated, features[validate], outcome[validate])
        # Ship the same procedure one slice later: trained up to validation, calibrated on it.
        stage("fitting")
        self.fitted_ = self._fit_target(
            features,
            outcome,
            chosen,
            train | calibrate,
            validate,
            calibrating=partial(stage, "calibrating"),
        )
        return self._record(
            chosen,
            moment,
            target,
            len(leads),
            split.as_dict(),
            (train, calibrate, validate),
            report,
            scored,
            importance,
        )

    def _record(
        self,
        chosen: str,
        moment: pd.Timestamp,
        target: str | None,
        rows: int,
        split: dict[str, Any],
        masks: tuple[Any, Any, Any],
        report: evaluation.EvaluationReport,
        scored: Mapping[str, tuple[float, Any, Any]],
        importance: dict[str, float],
    ) -> TrainingReport:
        """What training learned and measured, on the predictor and in its report."""
        self.chosen_type_ = chosen
        self.as_of_ = moment
        self.target_ = target
        train, calibrate, validate = masks
        self.report_ = TrainingReport(
            model_type=chosen,
            as_of=moment.isoformat(),
            rows=rows,
            split=split,
            slices={
                "train": int(train.sum()),
                "calibration": int(calibrate.sum()),
                "validation": int(validate.sum()),
            },
            validation=report.as_dict(),
            candidates={name: round(value[0], 5) for name, value in scored.items()},
            feature_importance=importance,
            target=target,
        )
        return self.report_

    def _fit_target(
        self,
        features: pd.DataFrame,
        outcome: npt.NDArray[np.int8],
        model_type: str,
        train: npt.NDArray[np.bool_],
        calibrate: npt.NDArray[np.bool_],
        calibrating: Callable[[], None] = lambda: None,
    ) -> _Fitted:
        past = features[train]
        model = HazardModel(model_type, random_state=self.random_state, n_jobs=self.n_jobs)  # type: ignore[arg-type]
        model.fit(single_period(past), outcome[train])
        calibrating()
        raw = model.predict_hazard(single_period(features[calibrate]))
        return _Fitted(model, fit_horizon(raw, outcome[calibrate]), explain.reference_values(past))

    def _fit(
        self,
        leads: pd.DataFrame,
        model_type: str,
        *,
        train_as_of: pd.Timestamp,
        train: pd.Series,
        calibrate: pd.Series,
        as_of: pd.Timestamp,
        calibrating: Callable[[], None] = lambda: None,
    ) -> _Fitted:
        past = leads[train]
        # Training sees the world as it was at train_as_of: later contacts and sales unknown.
        features = build_features(past, as_of=train_as_of, features=self.features)
        rows, labels, weights = person_periods(
            features, past["created_at"], past["sold_at"], train_as_of
        )
        model = HazardModel(model_type, random_state=self.random_state, n_jobs=self.n_jobs)  # type: ignore[arg-type]
        model.fit(rows, labels, weights)
        calibrating()
        later = leads[calibrate]
        raw = model.predict_proba_horizons(
            build_features(later, as_of=as_of, features=self.features)
        )
        calibrator = HorizonCalibrator().fit(
            raw[:, 0], sold_within(later, 14), raw[:, 1], sold_within(later, 30)
        )
        return _Fitted(model, calibrator, explain.reference_values(features))

    def _validate(
        self, leads: pd.DataFrame, fitted: _Fitted, split: TimeSplit, as_of: pd.Timestamp
    ) -> evaluation.EvaluationReport:
        created = leads["created_at"]
        newest = leads[split.validation_mask(created)]
        p14, p30 = self._probabilities(
            fitted, build_features(newest, as_of=as_of, features=self.features)
        )
        base14, base30 = self.base_rates_
        return evaluation.evaluate_horizons(
            sold_within(newest, 14),
            p14,
            sold_within(newest, 30),
            p30,
            base14,
            base30,
            split=split.as_dict(),
        )

    def _permutation_importance(
        self, leads: pd.DataFrame, fitted: _Fitted, split: TimeSplit, as_of: pd.Timestamp
    ) -> dict[str, float]:
        """Rise in validation log loss (30 d) when one feature's values are shuffled."""
        newest = leads[split.validation_mask(leads["created_at"])]
        features = build_features(newest, as_of=as_of, features=self.features)
        return self._importance(fitted, features, sold_within(newest, 30))

    def _importance(
        self, fitted: _Fitted, features: pd.DataFrame, y: npt.ArrayLike
    ) -> dict[str, float]:
        """Rise in log loss of P30 (P(outcome) in target mode) against ``y`` when one
        feature's values are shuffled. On at most IMPORTANCE_SAMPLE leads: the estimate is
        settled long before that, and each feature costs a full scoring pass."""
        rng = np.random.default_rng(self.random_state)
        outcomes = np.asarray(y)
        if len(features) > IMPORTANCE_SAMPLE:
            keep = np.sort(rng.choice(len(features), IMPORTANCE_SAMPLE, replace=False))
            features, outcomes = features.iloc[keep], outcomes[keep]
        y = outcomes
        base = evaluation.horizon_metrics(y, self._probabilities(fitted, features)[1]).log_loss
        importance: dict[str, float] = {}
        for name in self.features:
            shuffled = features.copy()
            columns = ["contact_delay", "contacted"] if name == "contact_delay" else [name]
            order = rng.permutation(len(shuffled))
            for column in columns:
                shuffled[column] = shuffled[column].to_numpy()[order]
            loss = evaluation.horizon_metrics(y, self._probabilities(fitted, shuffled)[1]).log_loss
            importance[name] = round(float(loss - base), 5)
        return dict(sorted(importance.items(), key=lambda item: -item[1]))

    # --- scoring -------------------------------------------------------------------------

    def _probabilities(self, fitted: _Fitted, features: pd.DataFrame) -> tuple[Floats, Floats]:
        """Calibrated (P14, P30); in target mode both are P(outcome)."""
        if isinstance(fitted.calibrator, HorizonMap):
            raw = fitted.model.predict_hazard(single_period(features))
            p = np.clip(fitted.calibrator.apply(raw), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
            return p, p
        horizons = fitted.model.predict_proba_horizons(features)
        return fitted.calibrator.transform(horizons[:, 0], horizons[:, 1])

    def _p30(self, features: pd.DataFrame) -> Floats:
        return self._probabilities(self._fitted(), features)[1]

    def _fitted(self) -> _Fitted:
        fitted: _Fitted | None = getattr(self, "fitted_", None)
        if fitted is None:
            raise RuntimeError("this LeadOutcomePredictor is not trained: call train() or load()")
        return fitted

    def predict(
        self, df: pd.DataFrame, *, as_of: datetime | str | None = None, explain_top: bool = True
    ) -> pd.DataFrame:
        """The input frame with sale_probability_14d, sale_probability_30d, risk_level and
        top_factors added. Leads not yet contacted are scored with the hours waited so far.

        Target mode (trained with ``target=``): there are no horizons, so
        ``sale_probability_14d`` and ``sale_probability_30d`` BOTH hold P(outcome), the
        probability of the target column being 1; they keep their names so that everything
        reading scores works unchanged. An ``outcome_probability`` column (the same value,
        named for what it is) comes before them; risk levels and factors use it too."""
        fitted = self._fitted()
        leads = prepare(df)
        moment = pd.Timestamp(as_of).tz_localize(None) if as_of is not None else latest_time(leads)
        features = build_features(leads, as_of=moment, features=self.features)
        p14, p30 = self._probabilities(fitted, features)
        out = df.copy()
        if fitted.target_mode:
            out[OUTCOME_COLUMN] = np.round(p30, 4)
        out["sale_probability_14d"] = np.round(p14, 4)
        out["sale_probability_30d"] = np.round(p30, 4)
        out["risk_level"] = thresholds.risk_levels(p30, self.risk_levels)
        if explain_top:
            factors = explain.explain(self._p30, features, fitted.reference, top=self.top_factors)
            out["top_factors"] = ["; ".join(f.text for f in row) for row in factors]
        else:
            out["top_factors"] = ""
        return out

    def predict_one(
        self, lead: Mapping[str, Any], *, as_of: datetime | str | None = None
    ) -> dict[str, Any]:
        """Score one lead (a mapping of column names to values). Adds ``cost_of_waiting`` for a
        lead nobody has contacted yet: P30 if contacted now versus in one hour.

        Target mode: ``outcome_probability`` is P(outcome), repeated in both
        ``sale_probability_*`` keys (as in ``predict``), and there is no ``cost_of_waiting``."""
        fitted = self._fitted()
        moment = (
            pd.Timestamp(as_of).tz_localize(None)
            if as_of is not None
            else pd.Timestamp(datetime.now(UTC)).tz_localize(None)
        )
        fast = self._fast_scorer(fitted)
        quick = fast.score(lead, moment.to_pydatetime()) if fast is not None else None
        if quick is not None:
            answer: dict[str, Any] = {
                "sale_probability_14d": round(quick["p14"], 4),
                "sale_probability_30d": round(quick["p30"], 4),
                "risk_level": thresholds.risk_level(quick["p30"], self.risk_levels),
                "top_factors": quick["top_factors"],
            }
            if "cost_of_waiting" in quick:
                answer["cost_of_waiting"] = quick["cost_of_waiting"]
            return answer
        leads = from_mapping(lead)
        features = build_features(leads, as_of=moment, features=self.features)
        p14, p30 = self._probabilities(fitted, features)
        factors = explain.explain(self._p30, features, fitted.reference, top=self.top_factors)[0]
        result: dict[str, Any] = {
            "sale_probability_14d": round(float(p14[0]), 4),
            "sale_probability_30d": round(float(p30[0]), 4),
            "risk_level": thresholds.risk_level(float(p30[0]), self.risk_levels),
            "top_factors": [f.text for f in factors],
        }
        if fitted.target_mode:
            return {OUTCOME_COLUMN: result["sale_probability_30d"], **result}
        if "contacted" in features.columns and features["contacted"].iloc[0] == 0:
            result["cost_of_waiting"] = explain.cost_of_waiting(self._p30, features)
        return result

    def _fast_scorer(self, fitted: _Fitted) -> FastScorer | None:
        """The pandas-free scorer for this model, built once (None where it does not apply)."""
        cached = getattr(self, "_fast", None)
        if cached is not None and cached[0] is fitted:
            return cached[1]  # type: ignore[no-any-return]
        scorer = (
            FastScorer.build(
                fitted.model,
                fitted.calibrator,
                fitted.reference,
                self.features,
                self.top_factors,
                target_mode=fitted.target_mode,
            )
            if isinstance(fitted.calibrator, HorizonCalibrator)
            else None
        )
        self._fast = (fitted, scorer)
        return scorer

    def evaluate(self, df: pd.DataFrame, *, as_of: datetime | str | None = None) -> dict[str, Any]:
        """Metrics of the trained model on leads whose 30-day window has closed by ``as_of``.

        Target mode: on every lead, against its target column, under the key ``"target"``."""
        fitted = self._fitted()
        leads = prepare(df)
        moment = pd.Timestamp(as_of).tz_localize(None) if as_of is not None else latest_time(leads)
        if fitted.target_mode and self.target_ is not None:
            outcome = parse_target(leads, self.target_)
            features = build_features(leads, as_of=moment, features=self.features)
            split = {"as_of": moment.isoformat(), "leads": len(leads), "target": self.target_}
            p = self._probabilities(fitted, features)[1]
            return target_report(outcome, p, self.base_rates_[1], split).as_dict()
        closed = leads[leads["created_at"] <= moment - pd.Timedelta(days=30)]
        if closed.empty:
            raise ValueError(
                "no lead's 30-day window has closed by the as-of date: nothing to score"
            )
        p14, p30 = self._probabilities(
            fitted, build_features(closed, as_of=moment, features=self.features)
        )
        base14, base30 = self.base_rates_
        report = evaluation.evaluate_horizons(
            sold_within(closed, 14),
            p14,
            sold_within(closed, 30),
            p30,
            base14,
            base30,
            split={"as_of": moment.isoformat(), "leads": len(closed)},
        )
        return report.as_dict()

    def optimize_threshold(
        self,
        df: pd.DataFrame,
        *,
        method: str = "cost",
        sale_value: float = 2_500.0,
        escalation_cost: float = 15.0,
        save_rate: float = 0.1,
        per_day: float = 20.0,
        apply: bool = True,
    ) -> dict[str, Any]:
        """Choose the escalation threshold on P30 by cost (the default: value of a saved sale
        against the cost of an escalation), capacity (at most ``per_day`` escalations a day)
        or F1 (which, most leads not selling, escalates nearly everyone); with ``apply`` the
        risk levels are derived from it."""
        scored = self.predict(df, explain_top=False)
        leads = prepare(df)
        p30 = scored["sale_probability_30d"].to_numpy(dtype=np.float64)
        closed = (leads["created_at"] <= latest_time(leads) - pd.Timedelta(days=30)).to_numpy()
        if method == "f1" and self.target_ is not None:
            choice = thresholds.by_f1(parse_target(leads, self.target_), p30)
        elif method == "f1":
            choice = thresholds.by_f1(sold_within(leads[closed], 30), p30[closed])
        elif method == "cost":
            choice = thresholds.by_cost(
                None,
                p30,
                sale_value=sale_value,
                escalation_cost=escalation_cost,
                save_rate=save_rate,
            )
        elif method == "capacity":
            choice = thresholds.by_capacity(p30, leads["created_at"], per_day=per_day)
        else:
            raise ValueError(f"method must be f1, cost or capacity, not {method!r}")
        result = choice.as_dict()
        if apply:
            self.risk_levels = thresholds.risk_levels_from(choice)
            result["risk_levels"] = dict(self.risk_levels)
        return result

    def feature_importance(self) -> dict[str, float]:
        """Permutation importance on the validation slice: rise in 30-day log loss."""
        if not hasattr(self, "report_"):
            raise RuntimeError("feature importance comes from training: call train() first")
        return dict(self.report_.feature_importance)

    # --- model files ---------------------------------------------------------------------

    def save(
        self,
        store: ModelStore | None = None,
        *,
        activate: bool = True,
        now: datetime | None = None,
    ) -> ModelInfo:
        """Save as a new version (and make it the active one); default store: the models
        folder of LEADWATCH_HOME."""
        store = store or home_store()
        fitted = self._fitted()
        payload = {
            "model": fitted.model,
            "calibrator": fitted.calibrator.to_dict(),
            "reference": fitted.reference,
            "features": list(self.features),
            "risk_levels": dict(self.risk_levels),
            "model_type": self.chosen_type_,
            "top_factors": self.top_factors,
            "base_rates": list(self.base_rates_),
            "target": self.target_,
        }
        metadata = {
            "model_type": self.chosen_type_,
            "target": self.target_,
            "features": list(self.features),
            "as_of": self.as_of_.isoformat(),
            "report": self.report_.as_dict() if hasattr(self, "report_") else None,
            "python": platform.python_version(),
        }
        info = store.save(payload, metadata, now=now or datetime.now(UTC))
        if activate:
            store.activate(info.version)
        if hasattr(self, "report_"):
            self.report_.version = info.version
        self.version_ = info.version
        return info

    @classmethod
    def load(
        cls, version: str | None = None, *, store: ModelStore | None = None
    ) -> LeadOutcomePredictor:
        """The model ``version``, or the active one (None), from ``store`` (default: the
        models folder of LEADWATCH_HOME). The file is verified before it is read."""
        payload, info = (store or home_store()).load(version)
        if not isinstance(payload, dict) or "model" not in payload:
            raise ValueError(f"model {info.version} is not a LeadOutcomePredictor file")
        predictor = cls(
            payload["model_type"],
            features=payload["features"],
            risk_levels=payload["risk_levels"],
            top_factors=payload.get("top_factors", 3),
        )
        target = payload.get("target")  # files from before target mode have no key
        calibrator: HorizonCalibrator | HorizonMap = (
            HorizonMap.from_dict(payload["calibrator"])
            if target is not None
            else HorizonCalibrator.from_dict(payload["calibrator"])
        )
        predictor.fitted_ = _Fitted(payload["model"], calibrator, payload["reference"])
        predictor.target_ = None if target is None else str(target)
        predictor.chosen_type_ = payload["model_type"]
        predictor.base_rates_ = tuple(payload["base_rates"])
        predictor.as_of_ = pd.Timestamp(str(info.metadata.get("as_of")))
        predictor.version_ = info.version
        return predictor


class _Stages:
    """Turns training's stages into (stage, fraction done) calls of a progress callback.

    The candidates share the first 60 % of the way (fitting, calibrating, validating each),
    importance comes next, and the model that ships is refitted in the last quarter."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.candidates = 1

    def __call__(self, stage: str, candidate: int | None = None) -> None:
        if self.progress is None:
            return
        if stage == "preparing":
            fraction = 0.0
        elif stage == "importance":
            fraction = 0.65
        elif candidate is None:  # the refit of the model that ships
            fraction = 0.75 if stage == "fitting" else 0.9
        else:
            step = {"fitting": 0.0, "calibrating": 0.5, "validating": 0.75}[stage]
            fraction = 0.05 + 0.6 * (candidate + step) / self.candidates
        self.progress(stage, round(fraction, 3))


def _base_rates(leads: pd.DataFrame, split: TimeSplit) -> tuple[float, float]:
    """The naive baseline: the training slice's observed sale rates, as one constant each."""
    closed = leads[leads["created_at"] < split.cal_start - pd.Timedelta(days=split.horizon_days)]
    if closed.empty:
        return 0.0, 0.0
    return float(sold_within(closed, 14).mean()), float(sold_within(closed, 30).mean())


def home_store() -> ModelStore:
    """The models folder of LEADWATCH_HOME, signed with LEADWATCH_SECRET_KEY or the key file
    there: what the CLI and the server use, for calls from Python that name no store."""
    from leadwatch.config import Settings

    settings = Settings()
    return store_for(settings.home, settings.secret_key_value)
