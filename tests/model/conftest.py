from __future__ import annotations

import pandas as pd
import pytest

from leadwatch.prediction.features import build_features
from leadwatch.prediction.labels import person_periods
from leadwatch.prediction.model import MODEL_TYPES, HazardModel
from tests.model.history import History, make_history


@pytest.fixture(scope="session")
def short_history() -> History:
    """60 days of history: about half the leads' 30-day windows are still open at the end."""
    return make_history(leads=8_000, seed=11, days=60)


@pytest.fixture(scope="session")
def short_features(short_history: History) -> pd.DataFrame:
    return build_features(short_history.leads, as_of=short_history.as_of)


@pytest.fixture(scope="session")
def fitted(short_history: History, short_features: pd.DataFrame) -> dict[str, HazardModel]:
    """Every model type fitted once on the short history (shared: fitting is the slow part)."""
    leads = short_history.leads
    rows, labels, weights = person_periods(
        short_features, leads["created_at"], leads["sold_at"], short_history.as_of
    )
    return {
        model_type: HazardModel(model_type, random_state=0, n_jobs=2).fit(rows, labels, weights)
        for model_type in MODEL_TYPES
    }
