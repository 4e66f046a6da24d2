"""Leads as the analysis reads them: every time as float minutes on the dealership's own clock
(NaN where a stage was not reached by the as-of moment), one as-of per lead, and group labels
as integer codes.

Float minutes keep the whole analysis in numpy: a comparison with NaN is false, so "not reached
yet" drops out of every mask without a special case, and a million leads take a few hundred
milliseconds rather than a loop per lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from leadwatch.prediction.frames import latest_time, prepare

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

DAY = 1440.0  # minutes
# Funnel order. "contacted" is the first contact of any kind: a lead whose first recorded
# stage is an appointment or a sale was reached then, even without a "contacted" time.
STAGES: tuple[str, ...] = (
    "created",
    "contacted",
    "appointment",
    "test_drive",
    "offer",
    "sold",
    "delivered",
)
SOLD = STAGES.index("sold")
UNKNOWN = "(unknown)"
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class FlowInputError(ValueError):
    """The leads cannot be analysed; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Timeline:
    frame: pd.DataFrame  # the leads as given, in their original columns
    kept: Bools  # the rows of ``frame`` analysed (created by the as-of)
    created: Floats
    stages: Floats  # (leads, len(STAGES)) minutes; NaN: not reached by the as-of
    lost: Floats
    as_of: Floats  # per lead, on its dealership's clock
    as_of_text: str
    excluded: dict[str, int]  # why leads were left out -> how many

    def __len__(self) -> int:
        return len(self.created)

    @property
    def first_contact(self) -> Floats:
        return self.stages[:, 1]

    @property
    def sold(self) -> Floats:
        return self.stages[:, SOLD]

    def still_open(self) -> Bools:
        """Neither sold, delivered nor lost by the as-of."""
        return np.isnan(self.stages[:, SOLD:]).all(axis=1) & np.isnan(self.lost)

    def window_closed(self, days: float) -> Bools:
        """Leads old enough at the as-of to be judged on ``days``: younger ones have not failed
        yet, they are still open."""
        return self.created + days * DAY <= self.as_of

    def sold_within(self, days: float) -> Bools:
        return self.sold - self.created <= days * DAY

    def groups(self, columns: Sequence[str]) -> tuple[Ints, list[str]]:
        """Group codes of the analysed leads by ``columns`` (see ``labels``)."""
        codes, names = labels(self.frame, columns)
        return codes[self.kept], names


def build(frame: pd.DataFrame, as_of: object = None) -> Timeline:
    """The timeline of ``frame`` (times parsed or as text) at ``as_of`` (default: the latest
    time in the data; an aware moment is taken to each dealership's clock)."""
    if "created_at" not in frame.columns:
        shown = ", ".join(str(c) for c in list(frame.columns)[:12]) or "none"
        raise FlowInputError(
            "the leads need a 'created_at' column (when each lead arrived); the columns are: "
            f"{shown}. Name yours in a mapping file (--mapping), e.g. 'CreateDate = created_at'"
        )
    if frame.empty:
        raise FlowInputError(
            "there are no leads to analyse: import some (leadwatch import FILE) or give a CSV "
            "with one row per lead (--data FILE)"
        )
    names = ["created_at", *(f"{stage}_at" for stage in STAGES[1:]), "lost_at"]
    try:  # only the time columns: parsing is most of the work, copying the rest is waste
        times = prepare(frame[[name for name in names if name in frame.columns]])
        stamp = pd.Timestamp(latest_time(times) if as_of is None else as_of)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise FlowInputError(str(exc).strip("'\"")) from None
    as_of_all = _as_of_minutes(frame, stamp)
    columns = {
        name: minutes(times[name]) if name in times.columns else _blank(len(frame))
        for name in names
    }
    no_time = np.isnan(columns["created_at"])
    late = columns["created_at"] > as_of_all
    kept = ~(no_time | late)
    excluded = {"no creation time": int(no_time.sum()), "created after the as-of": int(late.sum())}
    if not kept.any():
        raise FlowInputError(
            f"no lead was created by the as-of {stamp.isoformat(sep=' ')} "
            f"({excluded['no creation time']} without a creation time, "
            f"{excluded['created after the as-of']} after it): choose a later --as-of"
        )
    as_of_now = as_of_all[kept]
    stages = np.column_stack([columns[name][kept] for name in names[:-1]])
    stages[stages > as_of_now[:, None]] = np.nan  # what happened after the as-of is unknown then
    stages[:, 1] = np.fmin.reduce(stages[:, 1:], axis=1)  # fmin skips NaN
    lost = columns["lost_at"][kept]
    lost[lost > as_of_now] = np.nan
    return Timeline(
        frame=frame,
        kept=kept,
        created=stages[:, 0].copy(),
        stages=stages,
        lost=lost,
        as_of=as_of_now,
        as_of_text=stamp.isoformat(sep=" "),
        excluded={reason: count for reason, count in excluded.items() if count},
    )


def text_time(value: float) -> str:
    """Float minutes -> 'YYYY-MM-DD HH:MM' on the same clock."""
    return str(np.datetime64(int(round(value * 60)), "s").astype("datetime64[m]")).replace("T", " ")


def minutes(column: pd.Series) -> Floats:
    """Datetimes -> float minutes since 1970 on the same clock, NaN for missing."""
    values = column.to_numpy(dtype="datetime64[s]")
    out = values.astype(np.int64).astype(np.float64) / 60.0
    out[np.isnat(values)] = np.nan
    return out


def _blank(length: int) -> Floats:
    return np.full(length, np.nan)


def _as_of_minutes(leads: pd.DataFrame, stamp: pd.Timestamp) -> Floats:
    if stamp.tzinfo is None:
        return np.full(len(leads), _minute(stamp))
    out = np.full(len(leads), _minute(stamp.tz_convert("UTC").tz_localize(None)))
    if "dealership_timezone" in leads.columns:
        zones = leads["dealership_timezone"].astype("object")
        for zone in zones.dropna().unique():
            if str(zone):
                try:
                    local = stamp.tz_convert(str(zone)).tz_localize(None)
                except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
                    raise FlowInputError(
                        f"time zone {zone!r} of some leads' dealership is not one this system "
                        "knows: correct the dealership's zone (e.g. America/Chicago)"
                    ) from None
                out[(zones == zone).to_numpy()] = _minute(local)
    return out


def _minute(stamp: pd.Timestamp) -> float:
    return float(stamp.value) / 60e9  # .value: nanoseconds since 1970


def labels(frame: pd.DataFrame, columns: Sequence[str]) -> tuple[Ints, list[str]]:
    """Group codes (0..k-1) and their names for the values of ``columns`` joined by spaces;
    blanks (or missing columns) are UNKNOWN, and values differing only in outer spaces are one
    group. Factorised column by column, so a million rows never build a million strings."""
    codes = np.zeros(len(frame), dtype=np.int64)
    names = [""]
    for column in columns:
        if column not in frame.columns:
            continue
        part, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        texts = [_text(value) for value in uniques] + [""]
        width = len(texts)
        part = np.where(part < 0, width - 1, part).astype(np.int64)
        combined, seen = pd.factorize(codes * width + part)
        codes = combined.astype(np.int64)
        names = [
            " ".join(p for p in (names[int(v) // width], texts[int(v) % width]) if p) for v in seen
        ]
    merged, unique_names = pd.factorize(np.array([n or UNKNOWN for n in names], dtype=object))
    return merged.astype(np.int64)[codes], [str(name) for name in unique_names]


def _text(value: object) -> str:
    return "" if pd.isna(value) else str(value).strip()  # type: ignore[call-overload]
