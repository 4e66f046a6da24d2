"""Synthetic dealership lead history with known sale probabilities.

The history trains and tests the sale-probability model, so every lead's chance of selling is
drawn from an explicit model and written next to it as ground truth:

* each lead has a log-odds ``eta`` = dealership + rep + vehicle + lead source + hour + weekday
  + speed-to-lead (``-0.4 * ln(1 + contact delay / 5 min)``);
* the chance of selling on day ``d`` after creation (d = 0..59) is ``sigmoid(eta + shape[d])``,
  a discrete-time hazard; ``p_sale_14d = 1 - prod(1 - h_d, d < 14)`` and the same for 30 days;
* the realised sale day is drawn from exactly that hazard, so realised outcomes are unbiased
  draws of the truth columns.

Leads are produced in chronological chunks of ``CHUNK`` leads, vectorised with numpy, so a
million-lead history streams in bounded memory. Times are whole minutes since the epoch (UTC)
inside the generator and written in the dealership's local time without an offset, which is how
the intake reads naive times. Local offsets are looked up per UTC hour, which is exact for every
zone whose daylight-saving changes fall on the hour (all US zones).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice, repeat
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Strings = npt.NDArray[np.str_]

CSV_COLUMNS: tuple[str, ...] = (
    "lead_id", "source_system", "dealership", "created_at", "rep",
    "vehicle_year", "vehicle_make", "vehicle_model", "vehicle_trim", "vehicle_stock",
    "vehicle_vin", "vehicle_price", "lead_source",
    "customer_first_name", "customer_last_name", "customer_email", "customer_phone",
    "status", "contacted_at", "appointment_at", "test_drive_at", "offer_at",
    "sold_at", "delivered_at", "lost_at",
)  # fmt: skip
TRUTH_COLUMNS: tuple[str, ...] = (
    "lead_id", "p_sale_14d", "p_sale_30d", "sold_within_14d", "sold_within_30d",
)  # fmt: skip
# Stage columns in funnel order; a lead's status is the furthest one it has reached.
STAGES: tuple[str, ...] = (
    "created", "contacted", "appointment", "test_drive", "offer", "sold", "delivered",
)  # fmt: skip

CHUNK = 10_000
PROGRESS_EVERY = 10_000
HORIZON_DAYS = 60
DAY = 1440  # minutes
_MISSING = np.iinfo(np.int64).max  # "stage never happens"; also sorts after any `end`

# --- the model -------------------------------------------------------------------------------
_BASE_LOGIT = -3.44  # tuned so that about 12.5% of leads sell within 30 days
_DAY_SHAPE = -0.7 * np.log1p(np.arange(HORIZON_DAYS, dtype=np.float64))  # intent fades
_SPEED_EFFECT = -0.35  # per unit of ln(1 + delay / 5 min): odds fall ~2.3x over the first hour
_NEVER_CONTACTED_DELAY = 3.0 * DAY  # a lead nobody calls back behaves like a call 3 days late

# (name, share of volume, effect on the log-odds): referrals and walk-ins are ready to buy,
# aggregator and social leads are often tyre-kickers.
_SOURCES = (
    ("Website", 0.20, 0.25),
    ("AutoTrader", 0.12, -0.25),
    ("Cars.com", 0.11, -0.30),
    ("CarGurus", 0.14, -0.35),
    ("Facebook", 0.10, -0.80),
    ("Referral", 0.05, 1.00),
    ("Walk-in/Phone", 0.09, 0.00),
    ("TrueCar", 0.10, -0.55),
    ("Dealer.com chat", 0.09, 0.05),
)
_WALK_IN = 6
_SOURCE_EFFECT = np.array([effect for _, _, effect in _SOURCES])
# Source choice by whether the showroom is open (row 1) or closed (row 0: nobody walks in).
_SOURCE_CDF = np.cumsum(
    [[0.0 if i == _WALK_IN else share for i, (_, share, _) in enumerate(_SOURCES)],
     [share for _, share, _ in _SOURCES]],
    axis=1,
)  # fmt: skip
_PORTALS = np.array([0, 1, 2, 3, 4, 7], dtype=np.int64)  # where a repeat shopper comes back from

# (make, model, trim, price USD, age in years (0 = new), popularity, effect on the log-odds)
_VEHICLES = (
    ("Toyota", "Camry", "SE", 28_500, 0, 1.6, 0.15),
    ("Toyota", "RAV4", "XLE", 33_500, 0, 1.8, 0.20),
    ("Toyota", "Corolla", "LE", 22_800, 0, 1.2, 0.10),
    ("Toyota", "Tacoma", "TRD Sport", 41_000, 0, 0.9, 0.10),
    ("Honda", "Civic", "EX", 26_500, 0, 1.3, 0.10),
    ("Honda", "CR-V", "EX-L", 36_500, 0, 1.5, 0.15),
    ("Honda", "Accord", "Sport", 30_500, 0, 1.0, 0.05),
    ("Ford", "F-150", "XLT", 52_000, 0, 1.9, 0.20),
    ("Ford", "Explorer", "XLT", 44_500, 0, 0.8, -0.05),
    ("Ford", "Mustang", "GT", 44_000, 0, 0.5, -0.35),
    ("Chevrolet", "Silverado 1500", "LT", 51_500, 0, 1.4, 0.15),
    ("Chevrolet", "Equinox", "LT", 30_500, 0, 0.9, -0.05),
    ("Chevrolet", "Tahoe", "LT", 64_000, 0, 0.5, -0.10),
    ("Jeep", "Wrangler", "Sport S", 38_500, 0, 0.8, -0.15),
    ("Jeep", "Grand Cherokee", "Limited", 49_000, 0, 0.7, -0.10),
    ("Ram", "1500", "Big Horn", 50_500, 0, 1.0, 0.10),
    ("Nissan", "Rogue", "SV", 31_500, 0, 0.9, -0.10),
    ("Hyundai", "Tucson", "SEL", 30_000, 0, 0.8, 0.00),
    ("Kia", "Telluride", "EX", 44_000, 0, 0.7, 0.20),
    ("Subaru", "Outback", "Premium", 32_000, 0, 0.7, 0.05),
    ("BMW", "X5", "xDrive40i", 70_500, 0, 0.4, -0.30),
    ("Mercedes-Benz", "GLE", "450 4MATIC", 72_000, 0, 0.35, -0.40),
    ("Lexus", "RX", "350 Premium", 54_000, 0, 0.45, -0.15),
    ("Honda", "Civic", "LX", 18_900, 5, 0.9, 0.25),
    ("Ford", "F-150", "XLT", 36_500, 4, 0.8, 0.20),
    ("Toyota", "RAV4", "LE", 24_500, 4, 0.8, 0.25),
)
_VEHICLE_CDF = np.cumsum([v[5] for v in _VEHICLES])
_VEHICLE_EFFECT = np.array([v[6] for v in _VEHICLES])
_WMI = {
    "Toyota": "4T1", "Honda": "1HG", "Ford": "1FT", "Chevrolet": "1GC", "Jeep": "1C4",
    "Ram": "1C6", "Nissan": "5N1", "Hyundai": "KM8", "Kia": "5XY", "Subaru": "4S4",
    "BMW": "5UX", "Mercedes-Benz": "4JG", "Lexus": "2T2",
}  # fmt: skip

# Relative lead volume by local hour and by weekday (Monday first): busy business hours,
# some evening traffic, a busy Saturday and a quiet Sunday.
_HOUR_VOLUME = np.array([
    0.15, 0.08, 0.05, 0.04, 0.04, 0.06, 0.15, 0.35, 0.65, 0.95, 1.10, 1.15,
    1.10, 1.10, 1.10, 1.05, 1.00, 0.95, 0.85, 0.80, 0.75, 0.60, 0.45, 0.28,
])  # fmt: skip
_WEEKDAY_VOLUME = np.array([1.05, 1.0, 0.98, 0.98, 0.95, 1.15, 0.5])
# Daytime and Saturday shoppers are closer to buying than 3 a.m. browsers.
_HOUR_EFFECT = np.array([-0.25] * 6 + [-0.05] * 3 + [0.10] * 9 + [0.0] * 4 + [-0.15] * 2)
_WEEKDAY_EFFECT = np.array([0.05, 0.0, 0.0, 0.0, -0.05, 0.15, -0.10])
# Opening hours [open, close) in local hours, Monday first.
_OPENING = ((9, 20),) * 5 + ((9, 18), (11, 17))

_FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Carlos Karen Daniel Lisa Matthew Nancy Anthony "
    "Maria Mark Sandra Jose Ashley Kevin Emily Brian Michelle Luis Amanda Wei Priya Andre Aisha"
).split()
_LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Nguyen Patel Kim Chen"
).split()
_EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com")
_EMAIL_DOMAIN_CDF = np.cumsum([0.46, 0.16, 0.11, 0.10, 0.13, 0.04])
# Six area codes per store; numbers start at the fictional 555 exchange.
_AREA_CODES = {
    "America/Chicago": ("312", "773", "872", "630", "847", "708"),
    "America/New_York": ("212", "646", "718", "917", "347", "516"),
    "America/Denver": ("303", "720", "983", "719", "970", "385"),
    "America/Los_Angeles": ("213", "310", "323", "424", "818", "626"),
}
_DEFAULT_AREA_CODES = ("202", "404", "512", "615", "704", "919")
_EMAIL_STYLES = ("{f}.{l}", "{f0}{l}", "{f}{l0}", "{f}_{l}")
# Email user names by (first name, last name, style), built once.
_EMAIL_USERS = [
    style.format(f=f.lower(), l=last.lower(), f0=f[0].lower(), l0=last[0].lower())
    for f in _FIRST_NAMES
    for last in _LAST_NAMES
    for style in _EMAIL_STYLES
]
_CLOCK = [f"T{h:02d}:{m:02d}:00" for h in range(24) for m in range(60)]  # by minute of day
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O or Q
_VIN_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"  # 1980, 1981, ... repeating every 30 years


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    leads: int
    seed: int
    end: datetime  # aware; the "now" of the history: the latest lead is created shortly before
    days: int = 365  # span of history
    dealerships: tuple[tuple[str, str], ...] = (
        ("Riverside Motors", "America/Chicago"),
        ("Lakeshore Auto", "America/New_York"),
    )

    def __post_init__(self) -> None:
        if self.leads < 0 or self.seed < 0 or self.days < 1:
            raise ValueError("leads and seed must be >= 0 and days >= 1")
        if self.end.tzinfo is None or self.end.utcoffset() is None:
            raise ValueError("end must be timezone-aware")
        if not self.dealerships:
            raise ValueError("at least one dealership is needed")
        for _, zone in self.dealerships:
            ZoneInfo(zone)  # fail early on an unknown zone


def generate_rows(config: GeneratorConfig) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Yield (csv_row, truth_row) per lead in creation order, one chunk in memory at a time."""
    world = _World.build(config)
    for first in range(0, config.leads, CHUNK):
        yield from _chunk_rows(world, first, min(CHUNK, config.leads - first))


def write_history(
    config: GeneratorConfig,
    out: Path,
    truth_out: Path,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the lead CSV and the truth CSV; returns the number of leads written."""
    written = 0
    with (
        out.open("w", newline="", encoding="utf-8") as lead_file,
        truth_out.open("w", newline="", encoding="utf-8") as truth_file,
    ):
        # Rows carry exactly these keys, so skip DictWriter's per-row check for extra ones.
        leads = csv.DictWriter(lead_file, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        truths = csv.DictWriter(truth_file, fieldnames=TRUTH_COLUMNS, extrasaction="ignore")
        leads.writeheader()
        truths.writeheader()
        rows = generate_rows(config)
        # writerows on a batch keeps the per-row Python overhead (and memory) small.
        while batch := list(islice(rows, PROGRESS_EVERY)):
            leads.writerows(row for row, _ in batch)
            truths.writerows(truth for _, truth in batch)
            written += len(batch)
            if progress is not None:
                progress(written)
    return written


def _pick(cdf: Floats, u: Floats) -> Ints:
    """Inverse-CDF choice; ``cdf`` is one CDF (k,) or one per draw (n, k)."""
    if cdf.ndim == 1:
        index = np.searchsorted(cdf, u * cdf[-1], side="right")
    else:
        index = (u[:, None] * cdf[:, -1:] >= cdf).sum(axis=1)
    return np.asarray(np.minimum(index, cdf.shape[-1] - 1), dtype=np.int64)


def _sigmoid(x: Floats) -> Floats:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True, slots=True)
class _World:
    """Everything fixed for a whole history: calendar, staff, inventory; built from the seed."""

    config: GeneratorConfig
    end_minute: int
    first_hour: int  # epoch hour of calendar bin 0
    offset: Ints  # (dealer, hour bin): local UTC offset in minutes
    is_open: Bools  # (dealer, hour bin)
    next_open: Ints  # (dealer, hour bin): minute the showroom next opens
    open_before: Ints  # (dealer, bin edge): open minutes from the calendar start
    open_search: Ints  # open_before[:, 1:] of all dealers end to end, each offset by a stride
    open_stride: int
    arrival_cdf: Floats  # (arrival bin,)
    arrival_span: Floats  # (arrival bin, 2): start and end second of each arrival bin
    dealer_cdf: Floats  # (arrival bin, dealer)
    dealer_effect: Floats
    rep_names: Strings  # (dealer, rep)
    rep_cdf: Floats  # (dealer, rep): workload
    rep_effect: Floats
    rep_speed: Floats  # multiplies contact delays
    rep_never: Floats  # chance the rep never contacts a lead
    units: Strings  # (dealer, vehicle, unit, 4): year, stock, vin, price
    unit_count: Ints  # (dealer, vehicle)
    area_codes: Strings  # (dealer, 6)
    first_day: int  # epoch day of dates[0]
    dates: list[str]  # "YYYY-MM-DD" for every local day the calendar covers

    @classmethod
    def build(cls, config: GeneratorConfig) -> _World:
        rng = np.random.default_rng([config.seed, 0])
        end_second = int(config.end.timestamp())
        start_second = end_second - config.days * 86_400
        first_hour = start_second // 3600
        # The calendar runs past `end` so that future sales, deliveries and losses have a place.
        hours = np.arange(first_hour, end_second // 3600 + (HORIZON_DAYS + 10) * 24, dtype=np.int64)
        offset = np.array([_utc_offsets(hours, zone) for _, zone in config.dealerships])
        local = hours[None, :] * 60 + offset
        hour, weekday = (local // 60) % 24, (local // DAY + 3) % 7  # epoch day 0 was a Thursday
        opening = np.array(_OPENING)
        is_open = (hour >= opening[weekday, 0]) & (hour < opening[weekday, 1])
        arrivals = cls._arrival_intensity(rng, hours, hour, weekday, start_second, end_second)
        n_dealers, n_reps = len(config.dealerships), 12
        workload = rng.lognormal(0.0, 0.3, (n_dealers, n_reps))
        units, unit_count = _inventory(config, rng)
        open_before = np.concatenate(
            [np.zeros((n_dealers, 1), np.int64), np.cumsum(is_open * 60, axis=1)], axis=1
        )
        stride = int(open_before[:, -1].max()) + 1
        return cls(
            config=config,
            end_minute=end_second // 60,
            first_hour=int(first_hour),
            offset=offset,
            is_open=is_open,
            next_open=_next_open(is_open, first_hour),
            open_before=open_before,
            # One searchsorted serves all dealers: their cumulative open minutes end to end.
            open_search=(open_before[:, 1:] + stride * np.arange(n_dealers)[:, None]).ravel(),
            open_stride=stride,
            arrival_cdf=np.cumsum(arrivals.sum(axis=0)),
            arrival_span=np.clip(
                np.stack([hours * 3600, hours * 3600 + 3600], axis=1), start_second, end_second
            ).astype(np.float64),
            dealer_cdf=np.cumsum(arrivals, axis=0).T,
            # Staff effects are centred (workload-weighted within each store) so the overall
            # conversion rate stays near its target whatever the seed.
            dealer_effect=_centred(rng.normal(0.0, 0.15, (1, n_dealers)), np.ones((1, n_dealers)))[
                0
            ],
            rep_names=np.array([_rep_names(rng, n_reps) for _ in config.dealerships]),
            rep_cdf=np.cumsum(workload, axis=1),
            rep_effect=_centred(rng.normal(0.0, 0.35, (n_dealers, n_reps)), workload),
            rep_speed=np.exp(_centred(rng.normal(0.0, 0.5, (n_dealers, n_reps)), workload)),
            rep_never=np.clip(0.075 * rng.lognormal(0.0, 0.5, (n_dealers, n_reps)), 0.01, 0.25),
            units=units,
            unit_count=unit_count,
            area_codes=np.array(
                [_AREA_CODES.get(zone, _DEFAULT_AREA_CODES) for _, zone in config.dealerships]
            ),
            first_day=int(local.min() // DAY),
            dates=np.datetime_as_string(
                np.arange(local.min() // DAY, local.max() // DAY + 1).astype("datetime64[D]")
            ).tolist(),
        )

    @staticmethod
    def _arrival_intensity(
        rng: np.random.Generator,
        hours: Ints,
        hour: Ints,
        weekday: Ints,
        start_second: int,
        end_second: int,
    ) -> Floats:
        """Expected leads per (dealer, hour bin): daily rhythm x season x day-to-day noise."""
        n_dealers, n_bins = hour.shape
        inside = np.clip(
            np.minimum(hours * 3600 + 3600, end_second) - np.maximum(hours * 3600, start_second),
            0,
            3600,
        )
        day_of_year = (hours // 24) % 365.25
        season = 1.0 + 0.15 * np.sin(2 * np.pi * (day_of_year - 80) / 365.25)  # spring/summer
        day_noise = rng.lognormal(0.0, 0.2, (n_dealers, n_bins // 24 + 1))[
            :, np.arange(n_bins) // 24
        ]
        size = 1.0 / (1.0 + 0.25 * np.arange(n_dealers))[:, None]  # the first store is busiest
        volume = _HOUR_VOLUME[hour] * _WEEKDAY_VOLUME[weekday] * season * day_noise * size
        return np.asarray(volume * inside / 3600.0, dtype=np.float64)

    def bins(self, minutes: Ints) -> Ints:
        """Calendar hour bin of each minute (clipped to the calendar)."""
        last = self.offset.shape[1] - 1
        return np.clip(minutes // 60 - self.first_hour, 0, last).astype(np.int64)

    def open_minutes_until(self, dealer: Ints, minutes: Ints) -> Ints:
        """Open minutes from the calendar start to ``minutes`` at each lead's dealership."""
        b = self.bins(minutes)
        into_bin = minutes - (self.first_hour + b) * 60
        inside = self.is_open[dealer, b] * np.clip(into_bin, 0, 60)
        return np.asarray(self.open_before[dealer, b] + inside, dtype=np.int64)

    def open_between(self, dealer: Ints, lo: Ints, hi: Ints, fraction: Floats) -> Ints:
        """A minute ``fraction`` of the way through the opening hours between lo and hi.

        Showroom events (visits, sales, deliveries) happen while the store is open; when
        there are no opening hours in the interval it falls back to clock time.
        """
        a, b = self.open_minutes_until(dealer, lo), self.open_minutes_until(dealer, hi)
        target = a + fraction * (b - a)
        n_bins = self.is_open.shape[1]
        shifted = target + self.open_stride * dealer
        found = np.searchsorted(self.open_search, shifted, side="left") - dealer * n_bins
        found = np.clip(found, 0, n_bins - 1)
        at = (self.first_hour + found) * 60 + (target - self.open_before[dealer, found])
        clock = lo + fraction * (hi - lo)
        return np.clip(np.floor(np.where(b - a >= 1, at, clock)), lo, hi).astype(np.int64)


def _centred(effects: Floats, weights: Floats) -> Floats:
    """Effects minus their weighted mean in each row."""
    mean = (effects * weights).sum(axis=1, keepdims=True) / weights.sum(axis=1, keepdims=True)
    return np.asarray(effects - mean, dtype=np.float64)


def _utc_offsets(hours: Ints, zone: str) -> Ints:
    tz = ZoneInfo(zone)
    offsets = []
    for hour in hours.tolist():
        delta = datetime.fromtimestamp(hour * 3600, tz).utcoffset()
        offsets.append(0 if delta is None else int(delta.total_seconds()) // 60)
    return np.array(offsets, dtype=np.int64)


def _next_open(is_open: Bools, first_hour: int) -> Ints:
    n_bins = is_open.shape[1]
    index = np.where(is_open, np.arange(n_bins), n_bins - 1)
    following = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1]
    return np.asarray((first_hour + following) * 60, dtype=np.int64)


def _rep_names(rng: np.random.Generator, count: int) -> list[str]:
    picks = rng.choice(len(_FIRST_NAMES) * len(_LAST_NAMES), count, replace=False)
    return [
        f"{_FIRST_NAMES[p // len(_LAST_NAMES)]} {_LAST_NAMES[p % len(_LAST_NAMES)]}" for p in picks
    ]


def _inventory(config: GeneratorConfig, rng: np.random.Generator) -> tuple[Strings, Ints]:
    """3-8 stock units per catalogue vehicle per store: (year, stock number, VIN, price)."""
    n_dealers, most = len(config.dealerships), 8
    units = np.full((n_dealers, len(_VEHICLES), most, 4), "", dtype="<U17")
    counts = rng.integers(3, most + 1, (n_dealers, len(_VEHICLES)))
    serial = 10_000 + int(rng.integers(0, 50_000))
    for d, (name, _) in enumerate(config.dealerships):
        prefix = "".join(word[0] for word in name.split()).upper()[:3]
        for v, (make, _, _, price, age, _, _) in enumerate(_VEHICLES):
            for u in range(counts[d, v]):
                year = config.end.year - age - (int(rng.random() < 0.3) if age == 0 else 0)
                spread = 0.035 if age == 0 else 0.08
                asking = round(price * (1.0 + rng.normal(0.0, spread)), -2) - 5
                stock = f"{prefix}{serial}{'' if age == 0 else 'U'}"
                units[d, v, u] = (str(year), stock, _vin(rng, make, year), str(int(asking)))
                serial += 1
    return units, counts.astype(np.int64)


def _vin(rng: np.random.Generator, make: str, year: int) -> str:
    """A well-formed VIN: maker prefix, random body, model-year code, serial, valid check digit."""
    body = "".join(_VIN_CHARS[i] for i in rng.integers(0, len(_VIN_CHARS), 5))
    plant = _VIN_CHARS[int(rng.integers(0, 23))]
    serial = f"{int(rng.integers(0, 1_000_000)):06d}"
    vin = f"{_WMI[make]}{body}0{_VIN_YEAR_CODES[(year - 1980) % 30]}{plant}{serial}"
    return vin[:8] + vin_check_digit(vin) + vin[9:]


def vin_check_digit(vin: str) -> str:
    """The ISO 3779 / 49 CFR 565 check character (position 9) of a 17-character VIN."""
    values = {c: (i % 9) + 1 for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
    values.update({"S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9})
    weights = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
    total = sum(weights[i] * (int(c) if c.isdigit() else values[c]) for i, c in enumerate(vin))
    return "X" if total % 11 == 10 else str(total % 11)


def _chunk_rows(
    world: _World, first: int, count: int
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Simulate leads ``first .. first + count - 1`` and yield their rows."""
    rng = np.random.default_rng([world.config.seed, 1, first])
    g = np.arange(first, first + count, dtype=np.int64)
    created, dealer = _arrivals(world, rng, g)
    # Who the shopper is and what they want; a repeat shopper copies all of it from an earlier lead.
    shopper = np.stack([
        g, rng.integers(0, len(_FIRST_NAMES), count), rng.integers(0, len(_LAST_NAMES), count),
        rng.integers(0, len(_EMAIL_STYLES), count), _pick(_EMAIL_DOMAIN_CDF, rng.random(count)),
        _pick(_VEHICLE_CDF, rng.random(count)), dealer,
    ])  # fmt: skip
    original = _repeat_shoppers(rng, created)
    again = original >= 0
    shopper[:, again] = shopper[:, original[again]]
    who, model, dealer = shopper[0], shopper[5], shopper[6]
    unit = (rng.random(count) * world.unit_count[dealer, model]).astype(np.int64)
    unit[again] = unit[original[again]]

    b = world.bins(created)
    local = created + world.offset[dealer, b]
    hour, weekday, is_open = (local // 60) % 24, (local // DAY + 3) % 7, world.is_open[dealer, b]
    source = _pick(_SOURCE_CDF[is_open.astype(np.int64)], rng.random(count))
    source[again] = _second_portal(rng, source[original[again]])
    rep = _pick(world.rep_cdf[dealer], rng.random(count))

    contacted, never = _contact(world, rng, created, dealer, rep, source, is_open, b)
    delay = np.where(never, _NEVER_CONTACTED_DELAY, contacted - created)
    eta = (
        _BASE_LOGIT
        + world.dealer_effect[dealer]
        + world.rep_effect[dealer, rep]
        + _VEHICLE_EFFECT[model]
        + _SOURCE_EFFECT[source]
        + _HOUR_EFFECT[hour]
        + _WEEKDAY_EFFECT[weekday]
        + _SPEED_EFFECT * np.log1p(delay / 5.0)
    )
    # The daily hazard h_d = sigmoid(eta + shape_d); P(sold by end of day d) = 1 - prod(1 - h).
    hazard = _sigmoid(np.asarray(eta[:, None] + _DAY_SHAPE[None, :], dtype=np.float64))
    sold_by = np.asarray(1.0 - np.cumprod(1.0 - hazard, axis=1), dtype=np.float64)
    sale_day = (sold_by <= rng.random(count)[:, None]).sum(axis=1)  # HORIZON_DAYS: no sale
    times = _stage_times(world, rng, created, contacted, never, dealer, sale_day)

    columns = _format_leads(world, g, dealer, rep, model, unit, source, who, shopper, times)
    truth = _format_truth(world, g, created, sold_by, sale_day)
    assert len(columns) == len(CSV_COLUMNS) and len(truth) == len(TRUTH_COLUMNS)
    # map(dict, map(zip, ...)) builds the row dicts without a Python-level loop body.
    leads = map(dict, map(zip, repeat(CSV_COLUMNS), zip(*columns, strict=True)))
    truths = map(dict, map(zip, repeat(TRUTH_COLUMNS), zip(*truth, strict=True)))
    yield from zip(leads, truths, strict=True)


def _arrivals(world: _World, rng: np.random.Generator, g: Ints) -> tuple[Ints, Ints]:
    """Creation minute and dealership of leads ``g``, in chronological order.

    Lead i sits at quantile (i + U) / n of the arrival intensity (stratified sampling), so
    every chunk knows its own slice of the timeline without seeing the others.
    """
    cdf = world.arrival_cdf
    u = (g + rng.random(len(g))) / world.config.leads * cdf[-1]
    k = np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
    before = np.where(k > 0, cdf[k - 1], 0.0)
    within = np.clip((u - before) / np.maximum(cdf[k] - before, 1e-300), 0.0, 1.0)
    lo, hi = world.arrival_span[k, 0], world.arrival_span[k, 1]
    second = np.minimum(lo + within * (hi - lo), hi - 1.0)
    dealer = _pick(world.dealer_cdf[k], rng.random(len(g)))
    return (second // 60).astype(np.int64), dealer


def _repeat_shoppers(rng: np.random.Generator, created: Ints) -> Ints:
    """For ~2% of leads, the index of an earlier lead (within 72 h) by the same shopper, else -1."""
    count = len(created)
    window_start = np.searchsorted(created, created - 72 * 60, side="left")
    earlier = np.searchsorted(created, created, side="left")  # strictly earlier leads
    choice = window_start + (rng.random(count) * (earlier - window_start)).astype(np.int64)
    wanted = (rng.random(count) < 0.021) & (earlier > window_start)
    original = np.where(wanted, choice, -1)
    # The original must be a first-time lead itself, so every repeat links to a real shopper.
    original[wanted] = np.where(original[original[wanted]] < 0, original[wanted], -1)
    return original


def _second_portal(rng: np.random.Generator, first_source: Ints) -> Ints:
    """A portal other than the one the shopper used first."""
    pick = _PORTALS[rng.integers(0, len(_PORTALS) - 1, len(first_source))]
    return np.where(pick == first_source, _PORTALS[-1], pick)


def _contact(
    world: _World,
    rng: np.random.Generator,
    created: Ints,
    dealer: Ints,
    rep: Ints,
    source: Ints,
    is_open: Bools,
    b: Ints,
) -> tuple[Ints, Bools]:
    """Minute of the first contact, and whether the rep never makes one.

    Open hours: minutes (median ~6 min, long tail). Closed: the morning backlog after opening.
    Walk-ins and phone-ups are talking to someone already.
    """
    count = len(created)
    speed = world.rep_speed[dealer, rep]
    walk_in = source == _WALK_IN
    never = (rng.random(count) < world.rep_never[dealer, rep]) & ~walk_in
    quick = rng.lognormal(math.log(6.0), 1.0, count) * speed
    backlog = (
        world.next_open[dealer, b] - created + rng.lognormal(math.log(25.0), 0.8, count) * speed
    )
    delay = np.where(walk_in, rng.uniform(1.0, 4.0, count), np.where(is_open, quick, backlog))
    return created + np.maximum(np.floor(delay), 1).astype(np.int64), never


def _stage_times(
    world: _World,
    rng: np.random.Generator,
    created: Ints,
    contacted: Ints,
    never: Bools,
    dealer: Ints,
    sale_day: Ints,
) -> dict[str, Ints]:
    """Minute of each funnel stage (``_MISSING`` if not reached or after ``end``), plus "lost"."""
    count = len(created)
    sold = sale_day < HORIZON_DAYS

    def draw() -> Floats:
        return rng.random(count)

    # The sale lands in business hours on its hazard day, at least an hour after contact
    # (a never-called shopper who buys reached out on their own, so anchor on creation).
    anchor = np.where(never, created + 10, contacted)
    day_start = created + sale_day * DAY + 1
    day_end = created + (sale_day + 1) * DAY - 1
    lo = np.maximum(day_start, anchor + 60)
    # Contact late in day 0 can leave no business hours that day: the sale slips to the next.
    hi = np.where(
        world.open_minutes_until(dealer, day_end) - world.open_minutes_until(dealer, lo) < 1,
        lo + DAY,
        day_end,
    )
    sale = world.open_between(dealer, lo, hi, draw())

    # Buyers visit, drive and get an offer between contact and sale.
    visit = np.sort(rng.random((count, 3)), axis=1)
    appointment = np.clip(
        world.open_between(dealer, anchor, sale, visit[:, 0]), anchor + 1, sale - 3
    )
    test_drive = np.clip(
        world.open_between(dealer, anchor, sale, visit[:, 1]), appointment + 1, sale - 2
    )
    offer = np.clip(world.open_between(dealer, anchor, sale, visit[:, 2]), test_drive + 1, sale - 1)
    # Everyone else: some book a visit within a week of contact, a few drive and get an offer.
    browse = world.open_between(dealer, contacted + 30, contacted + 7 * DAY, draw())
    browse_drive = browse + rng.integers(10, 40, count)
    browse_offer = browse_drive + rng.integers(20, 90, count)

    has_appointment = sold | (~never & (draw() < 0.30))
    has_test_drive = np.where(sold, draw() < 0.92, has_appointment & (draw() < 0.55))
    has_offer = np.where(sold, True, has_test_drive & (draw() < 0.45))
    self_contact = appointment - rng.integers(1, 10, count)
    times = {
        "created": created,
        "contacted": np.where(never, np.where(sold, self_contact, _MISSING), contacted),
        "appointment": np.where(has_appointment, np.where(sold, appointment, browse), _MISSING),
        "test_drive": np.where(has_test_drive, np.where(sold, test_drive, browse_drive), _MISSING),
        "offer": np.where(has_offer, np.where(sold, offer, browse_offer), _MISSING),
        "sold": np.where(sold, sale, _MISSING),
        "delivered": np.where(
            sold & (draw() < 0.95),
            world.open_between(dealer, sale + DAY, sale + 5 * DAY, draw()),
            _MISSING,
        ),
        # Unsold leads are closed out 20-45 days in; by then any visit is long past.
        "lost": np.where(
            sold,
            _MISSING,
            world.open_between(dealer, created + 20 * DAY, created + 45 * DAY, draw()),
        ),
    }
    # Nothing that happens after `end` is known yet.
    return {stage: np.where(t <= world.end_minute, t, _MISSING) for stage, t in times.items()}


def _local_text(world: _World, dealer: Ints, minutes: Ints) -> list[str]:
    """ISO local times without offset ("2025-03-04T14:05:00"); "" where the stage is missing."""
    text = [""] * len(minutes)
    present = np.flatnonzero(minutes != _MISSING)
    local = minutes[present] + world.offset[dealer[present], world.bins(minutes[present])]
    day, minute = np.divmod(local - world.first_day * DAY, DAY)
    # Table look-ups and one string join per value: much faster than datetime formatting.
    dates = world.dates
    for i, d, m in zip(present.tolist(), day.tolist(), minute.tolist(), strict=True):
        text[i] = dates[d] + _CLOCK[m]
    return text


def _format_leads(
    world: _World,
    g: Ints,
    dealer: Ints,
    rep: Ints,
    model: Ints,
    unit: Ints,
    source: Ints,
    who: Ints,
    shopper: Ints,
    times: dict[str, Ints],
) -> list[list[str]]:
    """Column-wise text of the lead CSV, in ``CSV_COLUMNS`` order."""
    count = len(g)
    status = np.full(count, "new", dtype="<U11")
    for stage in STAGES[1:]:
        status[times[stage] != _MISSING] = stage
    status[times["lost"] != _MISSING] = "lost"  # only unsold leads are ever lost
    first = [_FIRST_NAMES[i] for i in shopper[1].tolist()]
    last = [_LAST_NAMES[i] for i in shopper[2].tolist()]
    # Emails carry a number unique per shopper (a bijection of the lead index below 10^6),
    # so two different shoppers never share one.
    number = ((who * 7919 + world.config.seed * 104_729) % 1_000_000).tolist()
    user = ((shopper[1] * len(_LAST_NAMES) + shopper[2]) * len(_EMAIL_STYLES) + shopper[3]).tolist()
    emails = [
        f"{_EMAIL_USERS[u]}{n}@{_EMAIL_DOMAINS[d]}"
        for u, n, d in zip(user, number, shopper[4].tolist(), strict=True)
    ]
    # Phones reuse that bijection: six area codes times exchanges 555, 556, ... keep them unique
    # too, since the intake links leads that share a phone number.
    area = world.area_codes[dealer, np.asarray(number) % 6].tolist()
    rest = (np.asarray(number) // 6).tolist()
    phones = [
        f"({a}) {555 + r // 10_000}-{r % 10_000:04d}" for a, r in zip(area, rest, strict=True)
    ]
    stock = world.units[dealer, model, unit]
    return [
        [f"DMS-{i + 1:06d}" for i in g.tolist()],
        ["demo-crm"] * count,
        [world.config.dealerships[d][0] for d in dealer.tolist()],
        _local_text(world, dealer, times["created"]),
        world.rep_names[dealer, rep].tolist(),
        stock[:, 0].tolist(),
        [_VEHICLES[m][0] for m in model.tolist()],
        [_VEHICLES[m][1] for m in model.tolist()],
        [_VEHICLES[m][2] for m in model.tolist()],
        stock[:, 1].tolist(),
        stock[:, 2].tolist(),
        stock[:, 3].tolist(),
        [_SOURCES[s][0] for s in source.tolist()],
        first,
        last,
        emails,
        phones,
        status.tolist(),
        *(_local_text(world, dealer, times[stage]) for stage in (*STAGES[1:], "lost")),
    ]


def _format_truth(
    world: _World, g: Ints, created: Ints, sold_by: Floats, sale_day: Ints
) -> list[list[str]]:
    """Column-wise text of the truth CSV; an outcome is "" while its window is still open."""
    columns: list[list[str]] = [
        [f"DMS-{i + 1:06d}" for i in g.tolist()],
        [f"{p:.6f}" for p in sold_by[:, 13].tolist()],
        [f"{p:.6f}" for p in sold_by[:, 29].tolist()],
    ]
    end_second = int(world.config.end.timestamp())
    for days in (14, 30):
        closed = created * 60 + days * 86_400 <= end_second
        outcome = np.where(sale_day < days, "1", "0")
        columns.append(np.where(closed, outcome, "").tolist())
    return columns
