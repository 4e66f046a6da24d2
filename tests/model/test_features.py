from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadwatch.prediction.features import DEFAULT_FEATURES, MAX_WAIT_HOURS, build_features

AS_OF = pd.Timestamp("2025-05-10T12:00:00")


def leads() -> pd.DataFrame:
    t = pd.Timestamp
    return pd.DataFrame(
        {
            "created_at": [t("2025-05-10T09:30"), t("2025-05-10T11:00"), t("2025-03-01T08:00")]
            + [t("2025-05-10T10:00")],
            # contacted after 45 min; not yet; never (old lead); logged after as_of
            "contacted_at": [t("2025-05-10T10:15"), pd.NaT, pd.NaT, t("2025-05-10T13:00")],
            "rep": ["Ann Lee", "Bo Kim", None, "Ann Lee"],
            "vehicle_make": ["Toyota", "Ford", "Ford", None],
            "vehicle_model": ["RAV4", "F-150", "F-150", "Camry"],
            "lead_source": ["Website", "Referral", "Facebook", "Website"],
            "vehicle_price": [33_500.0, np.nan, 52_000.0, 28_500.0],
            "dealership": ["A", "B", "A", "B"],
        }
    )


def test_derived_features() -> None:
    features = build_features(leads(), as_of=AS_OF)
    assert list(features.columns) == [*DEFAULT_FEATURES, "contacted"]
    assert features["vehicle"].tolist()[:3] == ["Toyota RAV4", "Ford F-150", "Ford F-150"]
    assert pd.isna(features["vehicle"].iloc[3])  # make unknown: vehicle unknown
    assert pd.isna(features["rep"].iloc[2])
    assert features["source"].tolist() == ["Website", "Referral", "Facebook", "Website"]
    assert features["hour_created"].tolist() == [9.0, 11.0, 8.0, 10.0]
    assert features["day_created"].tolist() == [5.0, 5.0, 5.0, 5.0]  # all Saturdays
    # Contacted: the real delay. Not contacted by as_of (including a contact logged later):
    # the time waited so far, capped.
    assert features["contact_delay"].tolist() == [0.75, 1.0, MAX_WAIT_HOURS, 2.0]
    assert features["contacted"].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_as_of_per_lead() -> None:
    as_of = pd.Series([AS_OF, AS_OF + pd.Timedelta(hours=1)] * 2)
    features = build_features(leads(), as_of=as_of)
    assert features["contact_delay"].tolist() == [0.75, 2.0, MAX_WAIT_HOURS, 3.0]
    assert features["contacted"].tolist() == [1.0, 0.0, 0.0, 1.0]  # fourth: 13:00 <= 13:00


def test_other_columns_taken_as_is() -> None:
    features = build_features(leads(), as_of=AS_OF, features=("vehicle_price", "dealership"))
    assert list(features.columns) == ["vehicle_price", "dealership"]
    assert features["vehicle_price"].dtype == np.float64
    assert np.isnan(features["vehicle_price"].iloc[1])
    assert features["dealership"].dtype == object


def test_unknown_feature_is_an_error() -> None:
    with pytest.raises(KeyError, match="shoe_size"):
        build_features(leads(), as_of=AS_OF, features=("shoe_size",))
