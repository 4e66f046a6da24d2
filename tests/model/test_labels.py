from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from leadwatch.prediction.labels import (
    N_PERIODS,
    PERIOD_COLUMN,
    PERIOD_EDGES_DAYS,
    naive_labels,
    person_periods,
)

AS_OF = pd.Timestamp("2025-06-01T00:00")


def expand(
    created_days_ago: list[float], sold_after_days: list[float | None]
) -> tuple[pd.DataFrame, npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """Person-period rows for leads created that many days before AS_OF."""
    created = pd.Series([AS_OF - pd.Timedelta(days=d) for d in created_days_ago])
    sold = pd.Series(
        [
            pd.NaT if s is None else c + pd.Timedelta(days=s)
            for c, s in zip(created, sold_after_days, strict=True)
        ]
    )
    features = pd.DataFrame({"lead": range(len(created))})
    return person_periods(features, created, sold, AS_OF)


def test_sale_ends_the_rows_with_an_event() -> None:
    rows, labels, weights = expand([40.0], [2.5])
    assert rows[PERIOD_COLUMN].tolist() == [0, 1]
    assert labels.tolist() == [0, 1]
    assert weights.tolist() == [1.0, 1.0]


def test_closed_window_without_sale_is_six_non_events() -> None:
    rows, labels, _ = expand([40.0], [None])
    assert rows[PERIOD_COLUMN].tolist() == list(range(N_PERIODS))
    assert labels.tolist() == [0] * N_PERIODS


def test_sale_after_30_days_is_no_event_within_the_window() -> None:
    _, labels, _ = expand([50.0], [31.0])
    assert labels.tolist() == [0] * N_PERIODS


def test_open_window_is_censored_not_a_no_sale() -> None:
    # Five days old: periods 0-1 and 1-3 are complete, 3-7 is still running.
    rows, labels, _ = expand([5.0, 5.0, 0.5], [None, 4.0, 0.2])
    assert rows["lead"].tolist() == [0, 0, 1, 1]  # the half-day-old lead gives nothing yet
    # The sale on day 4 falls in the running period, which is dropped whole: counting the sale
    # but not the leads still waiting in that period would bias its hazard up.
    assert labels.tolist() == [0, 0, 0, 0]


def test_missing_creation_time_gives_no_rows() -> None:
    features = pd.DataFrame({"lead": [0]})
    rows, labels, _ = person_periods(features, pd.Series([pd.NaT]), pd.Series([pd.NaT]), AS_OF)
    assert len(rows) == 0 and len(labels) == 0


def test_naive_labels_count_open_windows_as_no_sale() -> None:
    created = pd.Series([AS_OF - pd.Timedelta(days=d) for d in (40, 40, 3)])
    sold = pd.Series([created[0] + pd.Timedelta(days=10), pd.NaT, pd.NaT])
    assert naive_labels(created, sold).tolist() == [1, 0, 0]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 60.0), st.one_of(st.none(), st.floats(0.0, 60.0))),
        min_size=1,
        max_size=30,
    )
)
def test_rows_never_look_past_as_of(leads: list[tuple[float, float | None]]) -> None:
    ages = [age for age, _ in leads]  # times round to nanoseconds: 1e-6 day slack below
    rows, labels, _ = expand(ages, [sale for _, sale in leads])
    for key, group in rows.groupby("lead"):
        lead = int(str(key))
        periods = group[PERIOD_COLUMN].to_numpy()
        events = labels[group.index.to_numpy()]
        assert periods.tolist() == list(range(len(periods)))  # consecutive from the start
        assert PERIOD_EDGES_DAYS[periods[-1] + 1] <= ages[lead] + 1e-6  # only complete periods
        assert events.sum() <= 1 and (events.sum() == 0 or events[-1] == 1)
        sale = leads[lead][1]
        if events.sum() == 1:
            assert sale is not None and sale < ages[lead] + 1e-6  # a sale seen by as_of
            assert PERIOD_EDGES_DAYS[periods[-1]] <= sale < PERIOD_EDGES_DAYS[periods[-1] + 1]
    assert np.all((labels == 0) | (labels == 1))
