"""LeadOutcomePredictor end to end on a year of generated history with known truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadwatch import LeadOutcomePredictor
from leadwatch.cli import app
from leadwatch.prediction.artifacts import ModelStore
from leadwatch.prediction.splits import HistoryTooShortError
from tests.model.history import History, make_history

KEY = b"k" * 32


@pytest.fixture(scope="module")
def year() -> History:
    return make_history(leads=9_000, seed=5, days=365)


@pytest.fixture(scope="module")
def trained(year: History) -> LeadOutcomePredictor:
    predictor = LeadOutcomePredictor("gradient_boosting", n_jobs=2)
    predictor.train(year.leads)
    return predictor


def test_validation_is_out_of_time_with_a_gap(trained: LeadOutcomePredictor) -> None:
    split = {k: pd.Timestamp(v) for k, v in trained.report_.split.items() if k != "horizon_days"}
    assert split["start"] < split["cal_start"] < split["cal_end"] < split["val_start"]
    assert split["val_start"] < split["val_end"] <= split["as_of"] - pd.Timedelta(days=30)
    # nothing training saw (up to cal_start) is within a horizon of the first validation lead
    assert split["val_start"] - split["cal_start"] >= pd.Timedelta(days=30)
    assert min(trained.report_.slices.values()) > 500


def test_model_beats_the_naive_baseline(trained: LeadOutcomePredictor) -> None:
    validation = trained.report_.validation
    for horizon in ("14d", "30d"):
        model, baseline = validation["model"][horizon], validation["baseline"][horizon]
        assert model["roc_auc"] > 0.65
        assert model["log_loss"] < baseline["log_loss"]
        assert model["brier"] < baseline["brier"]
        assert model["ece"] < 0.05  # calibrated on a later slice
        assert model["lift_top_decile"] > 1.5
    importance = trained.feature_importance()
    assert set(importance) == {
        "rep",
        "vehicle",
        "source",
        "hour_created",
        "day_created",
        "contact_delay",
    }
    assert max(importance, key=importance.__getitem__) in {"contact_delay", "source"}


def test_predict_adds_the_four_columns(trained: LeadOutcomePredictor, year: History) -> None:
    leads = year.leads.tail(2_000)
    scored = trained.predict(leads)
    assert list(scored.columns[-4:]) == [
        "sale_probability_14d",
        "sale_probability_30d",
        "risk_level",
        "top_factors",
    ]
    assert list(scored.columns[:-4]) == list(leads.columns)
    p14, p30 = scored["sale_probability_14d"], scored["sale_probability_30d"]
    assert ((p14 <= p30) & (p14 >= 0) & (p30 <= 1)).all()
    assert set(scored["risk_level"]) <= {"critical", "high", "medium", "low"}
    assert scored["top_factors"].str.contains("pts?").mean() > 0.8
    # calibrated probabilities track the truth the generator used
    truth = year.truth.loc[leads.index, "p_sale_30d"]
    assert np.corrcoef(p30, truth)[0, 1] > 0.7


def test_predict_one_for_a_lead_nobody_has_called(trained: LeadOutcomePredictor) -> None:
    lead = {
        "created_at": "2025-06-01T09:00:00",
        "rep": "Somebody New",
        "vehicle_make": "Toyota",
        "vehicle_model": "Camry",
        "lead_source": "Website",
    }
    result = trained.predict_one(lead, as_of="2025-06-01T09:30:00")
    assert 0 <= result["sale_probability_14d"] <= result["sale_probability_30d"] <= 1
    assert result["risk_level"] in {"critical", "high", "medium", "low"}
    assert isinstance(result["top_factors"], list)
    waiting = result["cost_of_waiting"]
    assert waiting["now"] >= waiting["in_1h"]


def test_saved_model_scores_identically(
    trained: LeadOutcomePredictor, year: History, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "models", KEY)
    info = trained.save(store)
    assert store.active_version() == info.version
    loaded = LeadOutcomePredictor.load(store=store)
    leads = year.leads.tail(500)
    before = trained.predict(leads, explain_top=False)
    after = loaded.predict(leads, explain_top=False)
    pd.testing.assert_frame_equal(before, after)
    assert info.metadata["report"]["validation"]["model"]["30d"]["roc_auc"] > 0.6


def test_thresholds_feed_the_risk_levels(trained: LeadOutcomePredictor, year: History) -> None:
    copy = LeadOutcomePredictor("gradient_boosting")
    copy.fitted_, copy.base_rates_ = trained.fitted_, trained.base_rates_
    copy.chosen_type_ = trained.chosen_type_
    choice = copy.optimize_threshold(year.leads, method="capacity", per_day=5)
    levels = choice["risk_levels"]
    assert 0 < levels["critical"] < levels["high"] < levels["medium"] < 1
    assert choice["escalations_per_day"] <= 5


def test_evaluate_reports_model_and_baseline(trained: LeadOutcomePredictor, year: History) -> None:
    report = trained.evaluate(year.leads)
    assert report["model"]["30d"]["n"] > 1_000
    assert report["model"]["30d"]["roc_auc"] > report["baseline"]["30d"]["roc_auc"]


def test_a_short_history_is_refused_with_the_reason() -> None:
    short = make_history(leads=1_000, seed=2, days=60)
    with pytest.raises(HistoryTooShortError, match="out-of-time"):
        LeadOutcomePredictor().train(short.leads)


def test_cli_train_models_and_score(year: History, tmp_path: Path) -> None:
    data = tmp_path / "history.csv"
    leads = year.leads.copy()
    for column in ("created_at", "contacted_at", "sold_at", "lost_at"):
        leads[column] = leads[column].dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("")
    leads.to_csv(data, index=False)
    env = {"LEADWATCH_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["train", "--data", str(data), "--model", "logistic", "--json"]
        + ["--threshold", "capacity", "--per-day", "5"],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model_type"] == "logistic" and report["version"]
    levels = report["risk_levels"]
    assert 0 < levels["critical"] < levels["high"] < levels["medium"] < 1
    assert report["threshold"]["method"] == "capacity"
    assert report["rescored_open_leads"] == 0  # a fresh database: nothing to re-score
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"], env=env).stdout)
    assert [m["active"] for m in listed] == [True]
    scored = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", str(data), "--out", str(scored), "--no-factors"], env=env)
    assert result.exit_code == 0, result.stderr
    frame = pd.read_csv(scored)
    assert len(frame) == len(leads)
    assert {"sale_probability_14d", "sale_probability_30d", "risk_level"} <= set(frame.columns)
    result = runner.invoke(app, ["models", "activate", "../elsewhere"], env=env)
    assert result.exit_code == 2 and "refused" in result.stderr


def test_empty_slices_are_refused_with_the_sizes(year: History) -> None:
    # as of long after the last lead: the validation window holds no lead at all
    with pytest.raises(HistoryTooShortError, match="validation"):
        LeadOutcomePredictor().train(year.leads, as_of="2026-03-01T00:00:00")


def test_save_and_load_default_to_leadwatch_home(
    trained: LeadOutcomePredictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADWATCH_HOME", str(tmp_path))
    info = trained.save()
    assert info.path.parent == tmp_path / "models"
    loaded = LeadOutcomePredictor.load()
    assert loaded.version_ == info.version
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_score_keeps_every_input_line_even_with_quoted_line_breaks(
    year: History, tmp_path: Path
) -> None:
    env = {"LEADWATCH_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    data = tmp_path / "history.csv"
    leads = year.leads.copy()
    for column in ("created_at", "contacted_at", "sold_at", "lost_at"):
        leads[column] = leads[column].dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("")
    leads.to_csv(data, index=False)
    assert (
        runner.invoke(app, ["train", "--data", str(data), "--model", "logistic"], env=env).exit_code
        == 0
    )
    sample = leads.tail(50).copy()
    sample["comments"] = "plain"
    sample.iloc[3, sample.columns.get_loc("comments")] = 'wants "tint",\nand mats'
    for name, frame in (("plain", sample.drop(columns=["comments"])), ("quoted", sample)):
        source, scored = tmp_path / f"{name}.csv", tmp_path / f"{name}.scored.csv"
        frame.to_csv(source, index=False)
        result = runner.invoke(app, ["score", str(source), "--out", str(scored)], env=env)
        assert result.exit_code == 0, result.stderr
        back = pd.read_csv(scored, dtype=str, keep_default_na=False)
        assert len(back) == 50
        original = pd.read_csv(source, dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(back[list(original.columns)], original)
        assert back["risk_level"].isin(["critical", "high", "medium", "low"]).all()
        assert back["top_factors"].str.len().gt(0).mean() > 0.5
