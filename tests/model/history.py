"""Demo histories with known truth, as DataFrames, for the model tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from leadwatch.demo.generator import GeneratorConfig, generate_rows

END = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)  # late evening local time in both stores
TIME_COLUMNS = ("created_at", "contacted_at", "sold_at", "lost_at")


@dataclass(frozen=True)
class History:
    leads: pd.DataFrame  # the lead CSV columns, times parsed (naive local)
    truth: pd.DataFrame  # p_sale_14d, p_sale_30d (floats), sold_within_* ("" while open)
    as_of: pd.Series  # END in each lead's dealership local time, naive like the lead times


def make_history(leads: int, seed: int, days: int) -> History:
    config = GeneratorConfig(leads=leads, seed=seed, end=END, days=days)
    rows = list(generate_rows(config))
    frame = pd.DataFrame([row for row, _ in rows])
    for column in TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column].replace("", None))
    frame["vehicle_price"] = pd.to_numeric(frame["vehicle_price"])
    truth = pd.DataFrame([t for _, t in rows])
    truth[["p_sale_14d", "p_sale_30d"]] = truth[["p_sale_14d", "p_sale_30d"]].astype(float)
    zones = dict(config.dealerships)
    local_end = {
        name: END.astimezone(ZoneInfo(zone)).replace(tzinfo=None) for name, zone in zones.items()
    }
    as_of = pd.to_datetime(frame["dealership"].map(local_end))
    return History(leads=frame, truth=truth, as_of=as_of)
