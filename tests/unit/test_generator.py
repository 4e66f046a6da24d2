"""The demo-history generator: format, consistency of the funnel, and exactness of the truth."""

from __future__ import annotations

import csv
import inspect
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from leadwatch.demo.generator import (
    CSV_COLUMNS,
    STAGES,
    TRUTH_COLUMNS,
    GeneratorConfig,
    generate_rows,
    vin_check_digit,
    write_history,
)

# No daylight-saving change near END, END - 14 d or END - 30 d, so converting the naive local
# times back to UTC is unambiguous at the window boundaries the tests look at.
END = datetime(2025, 6, 15, 17, 30, tzinfo=UTC)
ZONES = {
    "Riverside Motors": ZoneInfo("America/Chicago"),
    "Lakeshore Auto": ZoneInfo("America/New_York"),
}
STAGE_COLUMNS = [f"{stage}_at" for stage in STAGES]

Row = dict[str, str]


def _config(leads: int, seed: int = 11) -> GeneratorConfig:
    return GeneratorConfig(leads=leads, seed=seed, end=END)


def _utc(row: Row, column: str) -> datetime:
    """A naive local timestamp read the intake's way: in the dealership's time zone."""
    return (
        datetime.fromisoformat(row[column]).replace(tzinfo=ZONES[row["dealership"]]).astimezone(UTC)
    )


@pytest.fixture(scope="module")
def history() -> list[tuple[Row, Row]]:
    return list(generate_rows(_config(8_000)))


def test_columns_are_exactly_the_canonical_ones(history: list[tuple[Row, Row]]) -> None:
    assert CSV_COLUMNS[:4] == ("lead_id", "source_system", "dealership", "created_at")
    assert len(CSV_COLUMNS) == 25 and len(set(CSV_COLUMNS)) == 25
    assert TRUTH_COLUMNS == (
        "lead_id",
        "p_sale_14d",
        "p_sale_30d",
        "sold_within_14d",
        "sold_within_30d",
    )
    for row, truth in history[:50]:
        assert tuple(row) == CSV_COLUMNS
        assert tuple(truth) == TRUTH_COLUMNS
        assert row["lead_id"] == truth["lead_id"]


def test_field_formats(history: list[tuple[Row, Row]]) -> None:
    ids = [row["lead_id"] for row, _ in history]
    assert len(set(ids)) == len(ids)
    assert ids[:2] == ["DMS-000001", "DMS-000002"]
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
    for row, _ in history:
        assert row["source_system"] == "demo-crm"
        assert iso.match(row["created_at"])
        assert all(row[c] == "" or iso.match(row[c]) for c in STAGE_COLUMNS[1:] + ["lost_at"])
        assert re.fullmatch(r"[A-HJ-NPR-Z0-9]{17}", row["vehicle_vin"])
        assert vin_check_digit(row["vehicle_vin"]) == row["vehicle_vin"][8]
        assert re.fullmatch(r"\(\d{3}\) 5[5-7]\d-\d{4}", row["customer_phone"])
        assert re.fullmatch(r"[a-z._]+\d+@[a-z.]+", row["customer_email"])
        assert 10_000 < int(row["vehicle_price"]) < 100_000
        assert row["status"] in {*STAGES[1:], "new", "lost"}


def test_known_vin_check_digit() -> None:
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"  # the textbook example
    assert vin_check_digit("11111111111111111") == "1"


def test_stage_timestamps_are_strictly_ordered_and_match_status(
    history: list[tuple[Row, Row]],
) -> None:
    for row, _ in history:
        reached = [c for c in STAGE_COLUMNS if row[c]]
        times = [_utc(row, c) for c in reached]
        assert times == sorted(times) and len(set(times)) == len(times), row
        if row["lost_at"]:
            assert not row["sold_at"]
            assert _utc(row, "lost_at") > times[-1]
            assert timedelta(days=20) <= _utc(row, "lost_at") - times[0] <= timedelta(days=45)
            assert row["status"] == "lost"
        else:
            assert row["status"] == ("new" if reached == ["created_at"] else reached[-1][:-3])
        if row["delivered_at"]:
            assert (
                timedelta(0) < _utc(row, "delivered_at") - _utc(row, "sold_at") <= timedelta(days=5)
            )


def test_nothing_happens_after_end_and_recent_leads_are_open(
    history: list[tuple[Row, Row]],
) -> None:
    for row, _ in history:
        assert all(_utc(row, c) <= END for c in STAGE_COLUMNS + ["lost_at"] if row[c])
    latest = max(_utc(row, "created_at") for row, _ in history)
    assert END - latest < timedelta(days=1)
    recent = [row for row, _ in history if END - _utc(row, "created_at") < timedelta(days=3)]
    assert recent and not any(row["lost_at"] for row in recent)


def test_truth_probabilities_are_ordered(history: list[tuple[Row, Row]]) -> None:
    for _, truth in history:
        p14, p30 = float(truth["p_sale_14d"]), float(truth["p_sale_30d"])
        assert 0.0 < p14 <= p30 < 1.0


def test_outcomes_are_empty_exactly_while_the_window_is_open(
    history: list[tuple[Row, Row]],
) -> None:
    for row, truth in history:
        created = _utc(row, "created_at")
        for days in (14, 30):
            outcome = truth[f"sold_within_{days}d"]
            if created + timedelta(days=days) > END:
                assert outcome == ""
            else:
                assert outcome in {"0", "1"}
                # The realised outcome is the CSV's own story: a sale inside the window.
                sold = bool(row["sold_at"]) and _utc(row, "sold_at") - created < timedelta(
                    days=days
                )
                assert outcome == ("1" if sold else "0"), (row, truth)


@pytest.mark.parametrize("days", [14, 30])
def test_realised_conversion_matches_the_truth(history: list[tuple[Row, Row]], days: int) -> None:
    closed = [t for _, t in history if t[f"sold_within_{days}d"]]
    assert len(closed) > 6_000
    p = [float(t[f"p_sale_{days}d"]) for t in closed]
    realised = sum(int(t[f"sold_within_{days}d"]) for t in closed)
    # Outcomes are independent Bernoulli(p_i) draws, so the count has sd sqrt(sum p(1-p)),
    # 25-27 sales on these ~7,400 leads (~720 / ~930 expected sales); four sd is a 1-in-15,000
    # false alarm and still catches probabilities off by 15% or the 14/30-day columns swapped
    # (~210 sales apart). Day-exact agreement with sold_at is checked row by row elsewhere.
    sd = math.sqrt(sum(q * (1 - q) for q in p))
    assert abs(realised - sum(p)) < 4 * sd


def test_overall_conversion_is_realistic(history: list[tuple[Row, Row]]) -> None:
    p30 = [float(t["p_sale_30d"]) for _, t in history]
    assert 0.10 <= sum(p30) / len(p30) <= 0.15


def test_faster_contact_means_higher_sale_probability(history: list[tuple[Row, Row]]) -> None:
    by_speed: dict[str, list[float]] = {"fast": [], "slow": [], "never": []}
    for row, truth in history:
        if row["lead_source"] == "Walk-in/Phone" or not row["lost_at"] and not row["sold_at"]:
            continue  # walk-ins are instant by nature; keep leads whose contact story is known
        if not row["contacted_at"]:
            by_speed["never"].append(float(truth["p_sale_30d"]))
            continue
        delay = _utc(row, "contacted_at") - _utc(row, "created_at")
        if delay <= timedelta(minutes=10):
            by_speed["fast"].append(float(truth["p_sale_30d"]))
        elif timedelta(hours=2) <= delay <= timedelta(days=2):
            by_speed["slow"].append(float(truth["p_sale_30d"]))
    mean = {k: sum(v) / len(v) for k, v in by_speed.items()}
    assert mean["fast"] > 1.5 * mean["slow"] > 1.5 * mean["never"]


def test_sources_differ_in_quality_and_volume(history: list[tuple[Row, Row]]) -> None:
    p30: dict[str, list[float]] = {}
    for row, truth in history:
        p30.setdefault(row["lead_source"], []).append(float(truth["p_sale_30d"]))
    mean = {source: sum(v) / len(v) for source, v in p30.items()}
    assert max(mean, key=mean.__getitem__) == "Referral"
    assert mean["Facebook"] < mean["Website"]
    assert len(p30["Website"]) > 2 * len(p30["Referral"])


def test_arrivals_follow_the_week(history: list[tuple[Row, Row]]) -> None:
    local = [datetime.fromisoformat(row["created_at"]) for row, _ in history]
    weekdays = Counter(t.weekday() for t in local)
    assert weekdays[5] > weekdays[2] > weekdays[6]  # busy Saturday, quiet Sunday
    hours = Counter(t.hour for t in local)
    assert hours[11] > 1.3 * hours[20] and hours[20] > 3 * hours[3]  # some evening traffic
    dealerships = Counter(row["dealership"] for row, _ in history)
    assert set(dealerships) == set(ZONES)


def test_some_shoppers_come_back_through_a_second_portal(history: list[tuple[Row, Row]]) -> None:
    first_seen: dict[str, Row] = {}
    repeats = 0
    for row, _ in history:
        earlier = first_seen.get(row["customer_email"])
        if earlier is None:
            first_seen[row["customer_email"]] = row
            continue
        repeats += 1
        assert row["customer_phone"] == earlier["customer_phone"]
        assert row["vehicle_vin"] == earlier["vehicle_vin"]
        assert row["lead_source"] != earlier["lead_source"]
        gap = _utc(row, "created_at") - _utc(earlier, "created_at")
        assert timedelta(0) < gap <= timedelta(hours=72)
    assert 0.01 < repeats / len(history) < 0.03


def test_same_seed_same_bytes_other_seed_other_history(tmp_path: Path) -> None:
    paths = [(tmp_path / f"leads{i}.csv", tmp_path / f"truth{i}.csv") for i in range(3)]
    for (out, truth), seed in zip(paths, (5, 5, 6), strict=True):
        write_history(_config(2_500, seed=seed), out, truth)
    assert paths[0][0].read_bytes() == paths[1][0].read_bytes()
    assert paths[0][1].read_bytes() == paths[1][1].read_bytes()
    assert paths[0][0].read_bytes() != paths[2][0].read_bytes()


def test_streaming_write(tmp_path: Path) -> None:
    assert inspect.isgenerator(generate_rows(_config(10)))
    # A million-lead history hands over its first row without building the rest.
    first_row, _ = next(generate_rows(_config(1_000_000)))
    assert first_row["lead_id"] == "DMS-000001"

    calls: list[int] = []
    out, truth_out = tmp_path / "leads.csv", tmp_path / "truth.csv"
    assert write_history(_config(20_000), out, truth_out, progress=calls.append) == 20_000
    assert calls == [10_000, 20_000]
    with out.open(newline="") as leads, truth_out.open(newline="") as truths:
        lead_rows, truth_rows = list(csv.DictReader(leads)), list(csv.DictReader(truths))
    assert len(lead_rows) == len(truth_rows) == 20_000
    assert lead_rows[-1]["lead_id"] == truth_rows[-1]["lead_id"] == "DMS-020000"
    # Chunks continue one timeline. (An hour of slack: the naive local times of the hour
    # repeated when daylight saving ends read back as its first pass.)
    created = [_utc(row, "created_at") for row in lead_rows]
    assert all(b >= a - timedelta(hours=1) for a, b in zip(created, created[1:], strict=False))
    assert created[0] < created[9_999] < created[10_000] < created[-1]


@pytest.mark.parametrize(
    "changes",
    [{"leads": -1}, {"days": 0}, {"end": datetime(2025, 6, 15)}, {"dealerships": ()}],
)
def test_invalid_configs_are_rejected(changes: dict[str, object]) -> None:
    settings: dict[str, object] = {"leads": 10, "seed": 1, "end": END, **changes}
    with pytest.raises(ValueError):
        GeneratorConfig(**settings)  # type: ignore[arg-type]
