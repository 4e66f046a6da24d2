"""The pandas-free single-lead path gives exactly what the pandas path gives."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from leadwatch import LeadOutcomePredictor
from tests.model.history import make_history


@pytest.fixture(scope="module")
def predictor_and_leads() -> tuple[LeadOutcomePredictor, list[dict[str, Any]]]:
    history = make_history(leads=9_000, seed=6, days=365)
    predictor = LeadOutcomePredictor("gradient_boosting", n_jobs=2)
    predictor.train(history.leads)
    leads = history.leads.tail(400).copy()
    for column in ("created_at", "contacted_at", "sold_at", "lost_at"):
        text = leads[column].dt.strftime("%Y-%m-%dT%H:%M:%S")
        leads[column] = text.where(leads[column].notna(), None)
    records: list[dict[str, Any]] = leads.to_dict("records")
    records += [
        {"created_at": "2025-06-01T09:00:00", "rep": "Nobody We Know", "lead_source": None},
        {"created_at": "2025-06-01T09:00:00+02:00", "vehicle_make": "Ford"},
        {"created_at": "2025-06-01T09:00:00", "contacted_at": "2025-06-01T08:00:00"},
    ]
    return predictor, records


def slow(predictor: LeadOutcomePredictor, lead: dict[str, Any], as_of: str) -> dict[str, Any]:
    saved = getattr(predictor, "_fast", None)
    predictor._fast = (predictor.fitted_, None)  # no fast scorer: the pandas path answers
    try:
        return predictor.predict_one(lead, as_of=as_of)
    finally:
        predictor._fast = saved


@pytest.mark.parametrize("as_of", ["2025-06-01T12:00:00", "2025-06-10T08:30:00"])
def test_fast_and_pandas_paths_agree(
    predictor_and_leads: tuple[LeadOutcomePredictor, list[dict[str, Any]]], as_of: str
) -> None:
    predictor, leads = predictor_and_leads
    assert predictor._fast_scorer(predictor.fitted_) is not None
    waiting = 0
    for lead in leads:
        fast, reference = predictor.predict_one(lead, as_of=as_of), slow(predictor, lead, as_of)
        assert fast.keys() == reference.keys(), lead
        for key in ("sale_probability_14d", "sale_probability_30d", "risk_level", "top_factors"):
            assert fast[key] == reference[key], (key, lead)
        if "cost_of_waiting" in fast:
            waiting += 1
            for key, value in reference["cost_of_waiting"].items():
                assert fast["cost_of_waiting"][key] == pytest.approx(value, abs=1e-12)
    assert waiting > 0


def test_dates_only_pandas_reads_fall_back(
    predictor_and_leads: tuple[LeadOutcomePredictor, list[dict[str, Any]]],
) -> None:
    predictor, _ = predictor_and_leads
    lead = {"created_at": "06/01/2025 9:00 AM", "lead_source": "Website"}
    result = predictor.predict_one(lead, as_of="2025-06-01T12:00:00")
    assert result == slow(predictor, lead, "2025-06-01T12:00:00")
    assert pd.notna(result["sale_probability_30d"])
