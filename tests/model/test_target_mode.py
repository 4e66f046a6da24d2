"""LeadOutcomePredictor with an explicit 0/1 outcome column (``train(df, target=...)``), and
the choice of model type by ``auto``."""

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
from tests.model.history import make_history

KEY = b"k" * 32
PROBABILITIES = ["outcome_probability", "sale_probability_14d", "sale_probability_30d"]


@pytest.fixture(scope="module")
def bought() -> pd.DataFrame:
    """Leads with ``bought`` = sold within 30 days; leads whose window is still open dropped."""
    history = make_history(leads=6_000, seed=3, days=200)
    leads = history.leads
    closed = leads["created_at"] <= history.as_of - pd.Timedelta(days=30)
    sold = (leads["sold_at"] - leads["created_at"]) <= pd.Timedelta(days=30)  # NaT: False
    return leads.assign(bought=sold.astype(int))[closed].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(bought: pd.DataFrame) -> dict[str, LeadOutcomePredictor]:
    predictors = {}
    for model_type in ("gradient_boosting", "logistic"):
        predictor = LeadOutcomePredictor(model_type, n_jobs=2)
        predictor.train(bought, target="bought")
        predictors[model_type] = predictor
    return predictors


@pytest.mark.parametrize("model_type", ["gradient_boosting", "logistic"])
def test_target_mode_validates_on_the_newest_leads(
    trained: dict[str, LeadOutcomePredictor], bought: pd.DataFrame, model_type: str
) -> None:
    predictor = trained[model_type]
    report = predictor.report_
    assert predictor.target_ == "bought" and report.target == "bought"
    assert report.model_type == model_type
    assert set(report.validation["model"]) == {"target"}
    model, baseline = report.validation["model"]["target"], report.validation["baseline"]["target"]
    assert model["roc_auc"] > 0.6
    assert model["log_loss"] < baseline["log_loss"]
    # slices by creation time only: ~65 / 15 / 20 %, oldest first, no gap needed
    slices = report.slices
    assert sum(slices.values()) == len(bought)
    assert slices["train"] / len(bought) == pytest.approx(0.65, abs=0.02)
    assert slices["validation"] / len(bought) == pytest.approx(0.20, abs=0.02)
    split = {k: pd.Timestamp(v) for k, v in report.split.items() if k != "mode"}
    assert split["start"] < split["cal_start"] < split["val_start"] <= split["end"]
    # the baseline is the training slice's rate of the outcome
    train = bought[bought["created_at"] < split["cal_start"]]
    assert report.validation["baseline_rates"]["target"] == pytest.approx(train["bought"].mean())
    assert set(report.feature_importance) == set(predictor.features)
    assert report.as_dict()["target"] == "bought"


@pytest.mark.parametrize("model_type", ["gradient_boosting", "logistic"])
def test_target_mode_predictions(
    trained: dict[str, LeadOutcomePredictor], bought: pd.DataFrame, model_type: str
) -> None:
    predictor = trained[model_type]
    leads = bought.tail(1_000)
    scored = predictor.predict(leads)
    assert list(scored.columns[: len(leads.columns)]) == list(leads.columns)
    assert list(scored.columns[len(leads.columns) :]) == [
        *PROBABILITIES,
        "risk_level",
        "top_factors",
    ]
    p = scored["outcome_probability"]
    assert ((p >= 0) & (p <= 1)).all()
    assert (p == scored["sale_probability_14d"]).all()
    assert (p == scored["sale_probability_30d"]).all()
    assert set(scored["risk_level"]) <= {"critical", "high", "medium", "low"}
    assert scored["top_factors"].str.contains("pts?").mean() > 0.5
    # higher scores, more buyers
    high = p >= p.median()
    assert leads["bought"][high.to_numpy()].mean() > leads["bought"][~high.to_numpy()].mean()

    one = predictor.predict_one(
        {"created_at": "2025-05-01T10:00", "rep": "Somebody New", "lead_source": "Website"},
        as_of="2025-05-01T11:00",
    )
    assert 0 <= one["outcome_probability"] <= 1
    assert one["outcome_probability"] == one["sale_probability_14d"] == one["sale_probability_30d"]
    assert one["risk_level"] in {"critical", "high", "medium", "low"}
    assert isinstance(one["top_factors"], list)
    assert "cost_of_waiting" not in one

    evaluated = predictor.evaluate(bought)
    assert set(evaluated["model"]) == {"target"}
    assert evaluated["model"]["target"]["n"] == len(bought)


def test_target_mode_save_and_load_round_trip(
    trained: dict[str, LeadOutcomePredictor], bought: pd.DataFrame, tmp_path: Path
) -> None:
    predictor = trained["gradient_boosting"]
    store = ModelStore(tmp_path / "models", KEY)
    info = predictor.save(store)
    assert info.metadata["target"] == "bought"
    assert info.metadata["report"]["validation"]["model"]["target"]["roc_auc"] > 0.6
    loaded = LeadOutcomePredictor.load(store=store)
    assert loaded.target_ == "bought"
    leads = bought.tail(500)
    pd.testing.assert_frame_equal(predictor.predict(leads), loaded.predict(leads))
    lead = {"created_at": "2025-05-01T10:00", "rep": "Somebody New", "lead_source": "Website"}
    assert loaded.predict_one(lead, as_of="2025-05-02") == predictor.predict_one(
        lead, as_of="2025-05-02"
    )
    # the calibrator is stored as plain numbers, not as a pickled object
    payload, _ = store.load(info.version)
    assert isinstance(payload, dict)
    assert payload["target"] == "bought"
    assert isinstance(payload["calibrator"], dict)
    json.dumps(payload["calibrator"])


def test_horizon_mode_has_no_target() -> None:
    assert LeadOutcomePredictor().target_ is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "0", " yes ", "No", "TRUE", "false"], [1, 0, 1, 0, 1, 0]),
        ([True, False, True, False, True, False], [1, 0, 1, 0, 1, 0]),
        ([1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [1, 0, 1, 0, 1, 0]),
    ],
)
def test_target_values_accepted(values: list[object], expected: list[int]) -> None:
    from leadwatch.prediction.target import parse_target

    frame = pd.DataFrame({"outcome": values})
    assert parse_target(frame, "outcome").tolist() == expected


@pytest.mark.parametrize("bad", ["maybe", "", 2, None])
def test_bad_target_values_are_rejected(bought: pd.DataFrame, bad: object) -> None:
    leads = bought.head(400).copy()
    leads["bought"] = leads["bought"].astype(object)
    leads.loc[leads.index[[3, 7, 11]], "bought"] = bad
    with pytest.raises(ValueError, match=r"'bought'.* 3 of 400 rows .*e\.g\. ") as caught:
        LeadOutcomePredictor("logistic").train(leads, target="bought")
    assert repr(bad) in str(caught.value)


def test_a_missing_or_feature_target_is_rejected(bought: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'purchased' is not in the data"):
        LeadOutcomePredictor("logistic").train(bought, target="purchased")
    with pytest.raises(ValueError, match="cannot also be a feature"):
        LeadOutcomePredictor("logistic", features=("rep", "bought")).train(bought, target="bought")
    one_class = bought.assign(bought=0)
    with pytest.raises(ValueError, match="both outcomes"):
        LeadOutcomePredictor("logistic").train(one_class, target="bought")


def test_auto_in_target_mode_keeps_the_best_candidate(bought: pd.DataFrame) -> None:
    predictor = LeadOutcomePredictor("auto", n_jobs=2)
    report = predictor.train(bought, target="bought")
    assert set(report.candidates) == {"random_forest", "gradient_boosting", "logistic"}
    assert report.candidates[report.model_type] == min(report.candidates.values())
    assert predictor.chosen_type_ == report.model_type


def test_cli_train_with_a_target(bought: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "outcomes.csv"
    leads = bought.copy()
    for column in ("created_at", "contacted_at", "sold_at", "lost_at"):
        leads[column] = leads[column].dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("")
    leads["bought"] = np.where(leads["bought"] == 1, "yes", "no")
    leads.to_csv(data, index=False)
    env = {"LEADWATCH_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    args = ["train", "--data", str(data), "--model", "logistic", "--target", "bought"]
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["target"] == "bought" and report["version"]
    assert report["validation"]["model"]["target"]["roc_auc"] > 0.6
    # the table printer copes with the "target" horizon
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.stderr
    assert "target" in result.stdout and "roc_auc" in result.stdout
    listed = runner.invoke(app, ["models", "list"], env=env)
    assert listed.exit_code == 0, listed.stderr
    # a bad outcome column fails with the reason, not a traceback
    leads.loc[leads.index[0], "bought"] = "perhaps"
    leads.to_csv(data, index=False)
    result = runner.invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 2
    assert "'bought'" in result.stderr and "'perhaps'" in result.stderr


def test_auto_in_horizon_mode_keeps_the_lowest_validation_log_loss() -> None:
    history = make_history(leads=6_000, seed=8, days=365)
    predictor = LeadOutcomePredictor("auto", n_jobs=2)
    report = predictor.train(history.leads)
    assert predictor.target_ is None and report.target is None
    assert set(report.candidates) == {"random_forest", "gradient_boosting", "logistic"}
    assert report.candidates[report.model_type] == min(report.candidates.values())
    assert report.validation["model"]["30d"]["log_loss"] == pytest.approx(
        report.candidates[report.model_type], abs=1e-5
    )
