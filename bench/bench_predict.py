"""Benchmarks of the sale-probability model.

- single-lead scoring with `predict_one`, p50 and p99, against a seed-style baseline in the same
  run: a scikit-learn Pipeline of one-hot encoding and RandomForestClassifier(100 trees, depth
  10) predicting on a one-row DataFrame;
- training on N leads (`leadwatch train`, its own process: seconds and peak memory);
- batch scoring of N leads CSV to CSV (`leadwatch score`, its own process);
- accuracy on generated data with known truth: AUC of the model against the AUC of the true
  probabilities, and calibration against the true probabilities.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from bench_import import LEADWATCH, WORK, history_file

CATEGORICAL = ["rep", "vehicle_model", "lead_source"]


def _timed_process(args: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    started = time.perf_counter()
    process = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args[1]} failed with status {status}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, output


def _percentiles(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1000.0
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99))}


def single_lead(home: Path, history: pd.DataFrame, calls: int = 5_000) -> dict[str, Any]:
    from leadwatch import LeadOutcomePredictor
    from leadwatch.prediction.artifacts import store_for

    predictor = LeadOutcomePredictor.load(store=store_for(home, None))
    leads = history.tail(calls).to_dict("records")
    predictor.predict_one(leads[0], as_of="2025-06-30T00:00")  # warm-up
    # Both loops run with the cyclic collector paused (collected before), so that a GC pass
    # landing in one call does not decide either side's p99.
    gc.collect()
    gc.disable()
    ours = []
    for lead in leads:
        started = time.perf_counter()
        predictor.predict_one(lead, as_of="2025-06-30T00:00")
        ours.append(time.perf_counter() - started)
    gc.enable()

    train = history.head(100_000)
    baseline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]),
            ),
            (
                "forest",
                RandomForestClassifier(n_estimators=100, max_depth=10, n_jobs=1, random_state=0),
            ),
        ]
    ).fit(train[CATEGORICAL], train["sold_at"].ne(""))
    baseline.predict_proba(pd.DataFrame([leads[0]])[CATEGORICAL])  # warm-up
    gc.collect()
    gc.disable()
    theirs = []
    for lead in leads:
        frame = pd.DataFrame([lead])[CATEGORICAL]
        started = time.perf_counter()
        baseline.predict_proba(frame)
        theirs.append(time.perf_counter() - started)
    gc.enable()
    result = {"leadwatch": _percentiles(ours), "baseline": _percentiles(theirs)}
    result["speedup_p99"] = result["baseline"]["p99_ms"] / result["leadwatch"]["p99_ms"]
    return result


def accuracy(home: Path, rows: int) -> dict[str, Any]:
    """AUC and calibration of the active model against the generator's true probabilities."""
    from leadwatch import LeadOutcomePredictor
    from leadwatch.prediction.artifacts import store_for

    path = history_file(rows)
    truth = pd.read_csv(path.with_suffix(".truth.csv"))
    leads = pd.read_csv(path, dtype=str, keep_default_na=False)
    closed = truth["sold_within_30d"].notna()
    sample = leads[closed].tail(50_000)
    predictor = LeadOutcomePredictor.load(store=store_for(home, None))
    scored = predictor.predict(sample, explain_top=False)
    p30 = scored["sale_probability_30d"].to_numpy()
    true30 = truth.loc[sample.index, "p_sale_30d"].to_numpy()
    outcome = truth.loc[sample.index, "sold_within_30d"].to_numpy()
    return {
        "auc_model": float(roc_auc_score(outcome, p30)),
        "auc_truth": float(roc_auc_score(outcome, true30)),
        "mean_abs_gap_to_truth": float(np.mean(np.abs(p30 - true30))),
        "mean_p30_model": float(p30.mean()),
        "mean_p30_truth": float(true30.mean()),
    }


def run(rows: int) -> list[dict[str, Any]]:
    path = history_file(rows)
    home = WORK / f"predict-home-{rows}"
    env = {"LEADWATCH_HOME": str(home), "LEADWATCH_DATABASE_URL": ""}
    records: list[dict[str, Any]] = []

    seconds, peak, output = _timed_process(
        [str(LEADWATCH), "train", "--data", str(path), "--json"], env
    )
    report = json.loads(output)
    records.append(
        {
            "benchmark": "training",
            "rows": rows,
            "seconds": round(seconds, 1),
            "peak_mb": round(peak),
            "model": report["model_type"],
        }
    )
    print(f"train on {rows:,} leads: {seconds:.1f} s, peak {peak:.0f} MB", flush=True)

    scored = WORK / f"scored-{rows}.csv"
    seconds, peak, _ = _timed_process(
        [str(LEADWATCH), "score", str(path), "--out", str(scored), "--no-factors"], env
    )
    records.append(
        {
            "benchmark": "batch scoring, no factors",
            "rows": rows,
            "seconds": round(seconds, 1),
            "peak_mb": round(peak),
        }
    )
    print(f"score {rows:,} leads (no factors): {seconds:.1f} s, peak {peak:.0f} MB", flush=True)

    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    history = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=200_000)
    latency = single_lead(home, history)
    records.append({"benchmark": "predict_one", **latency})
    print(f"predict_one: {latency}", flush=True)
    quality = accuracy(home, rows)
    records.append({"benchmark": "accuracy vs truth", **quality})
    print(f"accuracy: {quality}", flush=True)
    return records
