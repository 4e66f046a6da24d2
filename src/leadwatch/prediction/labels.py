"""Discrete-time hazard labels that respect time (right censoring).

Each lead becomes one row per period of its first 30 days (``PERIOD_EDGES_DAYS``):

    period   0     1     2     3      4       5
    days    0-1   1-3   3-7   7-14   14-21   21-30

Short periods early, where most sales happen and the hazard changes fastest; 14 is an edge so
P(sale within 14 days) is a product over whole periods. A row's label is 1 if the sale falls in
that period (time from creation in [start, end)); rows stop after the sale.

Censoring: a period is used only if it had fully elapsed by ``as_of``. The period that is still
running is dropped *even if a sale already happened in it*: whether a period is complete
depends only on the creation time, not on the outcome, so dropping it keeps the per-period
hazard estimates unbiased. Counting the open part as "no sale" (or keeping only its sales)
would bias them down (or up). A lead still open at ``as_of`` therefore contributes exactly the
periods it has been watched through and never counts as a "no sale" for the rest.

``lost_at`` is deliberately not used: a lead marked lost can still come back and buy, and in
the demo history "lost" is only ever recorded for leads that never sell, which would leak.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadwatch.prediction.features import AsOf, hours_between

PERIOD_EDGES_DAYS: tuple[int, ...] = (0, 1, 3, 7, 14, 21, 30)
N_PERIODS = len(PERIOD_EDGES_DAYS) - 1
PERIOD_COLUMN = "period"
# Periods whose product gives P(sale within 14 days) and within 30 days.
HORIZON_PERIODS: dict[int, int] = {14: PERIOD_EDGES_DAYS.index(14), 30: N_PERIODS}


def person_periods(
    features: pd.DataFrame, created: pd.Series, sold_at: pd.Series, as_of: AsOf
) -> tuple[pd.DataFrame, npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """Expand leads into (X_pp, y_pp, weights) person-period training rows.

    ``features`` comes from ``build_features`` (one row per lead); ``created`` and ``sold_at``
    are aligned datetimes (``sold_at`` NaT when unsold); ``as_of`` is when the history was
    taken, one timestamp or a Series aligned with the leads. X_pp is ``features`` repeated
    once per usable period plus an integer ``period`` column, y_pp is 1 in the period of the
    sale, and the weights are 1 per row (kept in the signature so that callers can later
    down-weight, e.g. old history, without changing the interface). Leads with a missing
    creation time contribute nothing: their periods cannot be placed in time.
    """
    start = np.asarray(PERIOD_EDGES_DAYS[:-1], dtype=np.float64)
    end = np.asarray(PERIOD_EDGES_DAYS[1:], dtype=np.float64)
    # Days from creation to as_of and to the sale (inf when not sold, NaN when unknown).
    watched = hours_between(created, as_of).to_numpy(dtype=np.float64, na_value=np.nan) / 24.0
    sale = hours_between(created, sold_at).to_numpy(dtype=np.float64, na_value=np.nan) / 24.0
    sale = np.where(sold_at.isna().to_numpy(), np.inf, sale)
    # A sale logged at or before creation (bad clock) counts in the first period.
    sale = np.clip(sale, 0.0, None)

    complete = end[None, :] <= watched[:, None]  # NaN compares False: no rows
    at_risk = start[None, :] <= sale[:, None]  # not sold before the period starts
    event = (sale[:, None] < end[None, :]) & at_risk
    # A sale in an incomplete period is dropped (counted nowhere) together with the period.
    keep = complete & at_risk
    lead_index, period = np.nonzero(keep)

    rows = features.iloc[lead_index].reset_index(drop=True)
    rows[PERIOD_COLUMN] = period.astype(np.int64)
    labels = event[lead_index, period].astype(np.int8)
    return rows, labels, np.ones(len(rows), dtype=np.float64)


def all_periods(features: pd.DataFrame) -> pd.DataFrame:
    """Every lead in every period, lead-major: rows ``i * N_PERIODS + k`` (for scoring)."""
    rows = features.iloc[np.repeat(np.arange(len(features)), N_PERIODS)].reset_index(drop=True)
    rows[PERIOD_COLUMN] = np.tile(np.arange(N_PERIODS, dtype=np.int64), len(features))
    return rows


def naive_labels(created: pd.Series, sold_at: pd.Series, days: int = 30) -> npt.NDArray[np.int8]:
    """ "Sold within ``days``" with open windows counted as no sale: the biased baseline.

    Only for comparison in tests and reports; never train the product on it.
    """
    sold = (sold_at - created) < pd.Timedelta(days=days)  # NaT compares False: unsold
    return np.asarray(sold.to_numpy(dtype=bool), dtype=np.int8)
