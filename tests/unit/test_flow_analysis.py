"""The lead flow analysis on frames with known truth: time-respecting rates, Wilson intervals,
small groups, the funnel with skipped stages, business hours, bottlenecks, recommendations."""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadwatch.analysis import FlowConfig, FlowInputError, FlowReport, analyze_flow
from leadwatch.analysis.conversion import rate_of, wilson
from leadwatch.analysis.funnel import reached
from leadwatch.analysis.hours import describe, open_at
from leadwatch.core.calendar import WorkingHours
from tests.model.history import make_history

AS_OF = pd.Timestamp("2025-06-30 12:00")
MONDAY = pd.Timestamp("2025-03-03 10:00")  # a Monday, 10:00: open under the default hours


def lead(created: pd.Timestamp, **stages: float | None) -> dict[str, Any]:
    """A lead row; ``stages`` are minutes after creation (``contacted=5``), None for never."""
    row: dict[str, Any] = {"created_at": created}
    for stage, minutes in stages.items():
        if stage in ("lead_source", "rep", "dealership", "vehicle_make", "vehicle_model"):
            row[stage] = minutes
        elif minutes is not None:
            row[f"{stage}_at"] = created + pd.Timedelta(minutes=minutes)
    return row


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = ["created_at", "contacted_at", "appointment_at", "test_drive_at", "offer_at"]
    columns += ["sold_at", "delivered_at", "lost_at", "lead_source", "rep", "dealership"]
    out = pd.DataFrame(rows)
    for column in columns:
        if column not in out.columns:
            out[column] = pd.NaT if column.endswith("_at") else None
    return out


def old_leads(count: int, sold_every: int, source: str, start: int = 0) -> list[dict[str, Any]]:
    """``count`` leads created 40 to 100 days before AS_OF; every ``sold_every``-th sells on
    day 3, so the 14- and 30-day rate is exactly 1 / sold_every."""
    rows = []
    for i in range(count):
        created = AS_OF - pd.Timedelta(days=40 + (start + i) % 60, hours=i % 24)
        sold = 3 * 1440 if i % sold_every == 0 else None
        rows.append(lead(created, contacted=4, sold=sold, lead_source=source))
    return rows


def analyze(rows: list[dict[str, Any]], **config: Any) -> FlowReport:
    return analyze_flow(frame(rows), as_of=AS_OF, config=FlowConfig(**config))


def group(report: FlowReport, dimension: str, name: str) -> Any:
    return next(row for row in report.breakdown(dimension).rows if row.name == name)


def test_a_group_with_a_known_rate_is_measured_exactly() -> None:
    report = analyze(old_leads(500, 5, "Website") + old_leads(400, 20, "Facebook", start=7))
    website, facebook = group(report, "source", "Website"), group(report, "source", "Facebook")
    assert (website.d30.n, website.d30.count, website.d30.rate) == (500, 100, 0.2)
    assert (facebook.d30.n, facebook.d30.count, facebook.d30.rate) == (400, 20, 0.05)
    assert website.d14.rate == 0.2  # sold on day 3: inside both windows
    assert report.overall.d30.rate == round(120 / 900, 4)
    assert (website.rank, facebook.rank) == (1, 2)
    assert (website.versus_overall, facebook.versus_overall) == ("above", "below")
    assert website.d30.low is not None and website.d30.low < 0.2 < (website.d30.high or 0)


def test_young_leads_are_not_counted_as_failures() -> None:
    """Leads arrive evenly over 120 days; every fourth sells 20 days after arriving. The last
    20 days of leads cannot have sold yet: counting them as failures (the naive rate) says
    about 21 %, the time-respecting rate (judging only leads at least 30 days old) exactly 25 %."""
    rows = []
    for i in range(1200):
        created = AS_OF - pd.Timedelta(hours=i * 2.4)  # 10 a day over 120 days
        rows.append(lead(created, contacted=10, sold=20 * 1440 if i % 4 == 0 else None))
    report = analyze(rows)
    naive = report.overall.naive_30d
    assert report.overall.d30.rate == 0.25
    assert report.overall.d30.n == sum(1 for i in range(1200) if i * 2.4 >= 30 * 24)
    assert naive == pytest.approx(0.25 * 100 / 120, abs=0.001)  # biased down
    # 14 days: a sale on day 20 is outside the window, whatever the lead's age
    assert report.overall.d14.rate == 0.0


def test_events_after_the_as_of_are_unknown_then() -> None:
    rows = [lead(AS_OF - pd.Timedelta(days=60), contacted=5, sold=50 * 1440)]
    rows += old_leads(40, 2, "Website")
    earlier = pd.Timestamp(AS_OF - pd.Timedelta(days=15))
    later = analyze_flow(frame(rows), as_of=AS_OF)
    sooner = analyze_flow(frame(rows), as_of=earlier)
    assert later.overall.open == sooner.overall.open - 1  # the sale had not happened yet
    too_early = AS_OF - pd.Timedelta(days=400)
    with pytest.raises(FlowInputError, match="no lead was created by the as-of"):
        analyze_flow(frame(rows), as_of=too_early)


def test_default_as_of_is_the_latest_time_in_the_data() -> None:
    rows = old_leads(50, 5, "Website")
    latest = max(row.get("sold_at", row["created_at"]) for row in rows)
    assert analyze_flow(frame(rows)).as_of == latest.isoformat(sep=" ")


def test_wilson_interval_known_values() -> None:
    low, high = wilson(np.array([5.0, 0.0, 10.0]), np.array([10.0, 10.0, 10.0]))
    assert low[0] == pytest.approx(0.2366, abs=1e-4) and high[0] == pytest.approx(0.7634, abs=1e-4)
    assert low[1] == 0.0 and high[1] == pytest.approx(0.2775, abs=1e-4)
    assert low[2] == pytest.approx(0.7225, abs=1e-4) and high[2] == pytest.approx(1.0)
    empty = rate_of(0, 0)
    assert (empty.rate, empty.low, empty.high) == (None, None, None)


@given(st.integers(min_value=1, max_value=100_000), st.data())
def test_wilson_interval_holds_the_rate_inside_zero_one(n: int, data: st.DataObject) -> None:
    count = data.draw(st.integers(min_value=0, max_value=n))
    rate = rate_of(count, n)
    assert rate.low is not None and rate.high is not None and rate.rate is not None
    assert 0.0 <= rate.low <= rate.rate <= rate.high <= 1.0


def test_small_groups_are_flagged_listed_and_never_ranked_or_recommended() -> None:
    rows = old_leads(600, 8, "Website") + old_leads(12, 1, "Referral", start=3)
    report = analyze(rows, min_group=30)
    referral = group(report, "source", "Referral")
    assert referral.small and referral.rank is None and referral.versus_overall == ""
    assert referral.d30.rate == 1.0  # a perfect record, on too few leads to mean anything
    assert report.breakdown("source").rows[-1].name == "Referral"  # listed after the ranked
    assert not any("Referral" in item.text for item in report.recommendations)
    assert not group(analyze(rows, min_group=10), "source", "Referral").small


def test_recommendations_carry_their_numbers() -> None:
    rows = old_leads(2000, 8, "Website") + old_leads(800, 25, "Facebook", start=11)
    report = analyze(rows)
    found = [r for r in report.recommendations if r.figures.get("group") == "Facebook"]
    assert len(found) == 1
    item = found[0]
    assert item.kind == "group" and item.figures["n"] == 800
    assert item.figures["rate_30d"] == 0.04
    assert "Facebook leads convert at 4 % within 30 days versus" in item.text
    assert "(n = 800," in item.text
    overall = report.overall.d30.rate
    assert overall is not None and item.figures["overall_30d"] == overall
    assert f"versus {overall * 100:.1f}".removesuffix(".0") in item.text
    json.dumps([r.figures for r in report.recommendations])  # plain numbers and text


def test_funnel_counts_a_skipped_stage_as_passed_and_never_exceeds_100_percent() -> None:
    created = AS_OF - pd.Timedelta(days=50)
    rows = [
        lead(created, contacted=5, appointment=60, test_drive=120, offer=180, sold=240),
        lead(created, sold=600),  # bought without any recorded earlier stage
        lead(created, contacted=5, offer=2000),  # no appointment or test drive
        lead(created),  # never reached
    ]
    report = analyze(rows)
    overall = report.funnel.overall
    # the third lead passed appointment and test drive on its way to an offer
    assert overall.reached == [4, 3, 3, 3, 3, 2, 0]
    assert all(0 <= share <= 1 for share in overall.share if share is not None)
    assert all(step is None or step <= 1 for step in overall.step)
    timings = {t.stage: t for t in report.funnel.stage_times}
    # first contact of the walk-in buyer is its sale: 600 minutes after creation
    assert timings["contacted"].reached == 3
    assert timings["contacted"].median_minutes == 5.0
    assert timings["offer"].median_minutes == pytest.approx((60 + 1995) / 2)


@settings(max_examples=60)
@given(st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=40))
def test_funnel_is_monotone_whatever_stages_are_skipped(present: list[list[bool]]) -> None:
    created = AS_OF - pd.Timedelta(days=45)
    stages = ("contacted", "appointment", "test_drive", "offer", "sold", "delivered")
    rows = [
        lead(
            created,
            **{
                s: 10.0 * (k + 1) if on else None
                for k, (s, on) in enumerate(zip(stages, flags, strict=True))
            },
        )
        for flags in present
    ]
    report = analyze(rows)
    for row in [report.funnel.overall, *report.funnel.cohorts]:
        assert row.reached == sorted(row.reached, reverse=True)
        assert all(share is None or 0 <= share <= 1 for share in row.share)
        assert all(step is None or 0 <= step <= 1 for step in row.step)


def test_reached_marks_every_stage_before_the_furthest() -> None:
    nan = np.nan
    stages = np.array([[0.0, nan, nan, 5.0], [0.0, 1.0, nan, nan]])
    assert reached(stages).tolist() == [[True, True, True, True], [True, True, False, False]]


def test_business_hours_split_speed_to_lead() -> None:
    sunday = MONDAY - pd.Timedelta(days=1)  # closed under the default Mon-Sat hours
    rows = []
    for week in range(15):
        shift = pd.Timedelta(weeks=week)
        rows.append(lead(MONDAY + shift, contacted=3))  # business hours, reached at once
        rows.append(lead(MONDAY + shift + pd.Timedelta(hours=12), contacted=600))  # 22:00
        rows.append(lead(sunday + shift, contacted=600))  # Sunday 10:00
    report = analyze(rows, min_group=10)
    speed = report.speed
    within5 = next(s for s in speed.contacted_within if s.within_minutes == 5)
    assert (within5.business_hours.n, within5.business_hours.rate) == (15, 1.0)
    assert (within5.after_hours.n, within5.after_hours.rate) == (30, 0.0)
    assert speed.wait_business_hours.median_minutes == 3.0
    assert speed.wait_after_hours.median_minutes == 600.0
    # waits are measured on leads whose 30-day window closed: 13 Sundays and 13 Mondays
    assert speed.wait_after_hours.contacted == 26
    assert speed.hours[0].hours == "Mon-Sat 09:00-20:00, Sun closed"
    assert speed.hours[0].source == "default"
    after = next(r for r in report.recommendations if r.kind == "after hours")
    assert "wait a median 10.0 h" in after.text and "(n = 26)" in after.text


def test_dealership_hours_and_holidays_are_used() -> None:
    rows = [lead(MONDAY, contacted=3, dealership="Lakeshore Auto") for _ in range(3)]
    rows += [lead(MONDAY, contacted=3, dealership="Riverside Motors") for _ in range(2)]
    closed_monday = WorkingHours.from_spec(
        "America/New_York", {"tue": ["09:00-17:00"]}, holidays=[date(2025, 3, 4)]
    )
    report = analyze(rows, hours={"lakeshore auto": closed_monday}, hours_source="settings")
    within5 = report.speed.contacted_within[0]
    assert (within5.business_hours.n, within5.after_hours.n) == (2, 3)
    used = {u.dealership: (u.hours, u.source) for u in report.speed.hours}
    assert used["Lakeshore Auto"] == (
        "Mon closed, Tue 09:00-17:00, Wed-Sun closed, 1 holiday(s)",
        "settings",
    )
    assert used["Riverside Motors"][1] == "default"


def test_open_at_is_vectorised_over_local_minutes() -> None:
    hours = WorkingHours.from_spec("UTC", {"mon": ["09:00-12:00", "13:00-24:00"]}, ["2025-03-10"])
    times = pd.to_datetime(
        ["2025-03-03 08:59", "2025-03-03 09:00", "2025-03-03 12:30", "2025-03-03 23:59",
         "2025-03-04 10:00", "2025-03-10 10:00"]
    )  # fmt: skip
    minutes = times.to_numpy(dtype="datetime64[s]").astype(np.int64) / 60.0
    assert open_at(minutes, hours).tolist() == [False, True, False, True, False, False]
    assert describe(hours).startswith("Mon 09:00-12:00, 13:00-24:00, Tue-Sun closed")


def test_speed_buckets_and_bottlenecks_against_targets() -> None:
    created = AS_OF - pd.Timedelta(days=60)
    rows = [lead(created, contacted=3, appointment=3 + 3 * 1440) for _ in range(60)]
    rows += [lead(created, contacted=300) for _ in range(20)]
    rows += [lead(created) for _ in range(10)]
    report = analyze(rows)
    buckets = {b.name: b.leads for b in report.speed.buckets}
    assert (buckets["< 5 min"], buckets["4-24 h"], buckets["never contacted"]) == (60, 20, 10)
    timing = {t.stage: t for t in report.funnel.stage_times}
    assert timing["appointment"].median_minutes == 3 * 1440
    assert timing["appointment"].status == "bottleneck"  # default target: 2 days
    assert timing["contacted"].status == "slow tail"  # median 3 min, p90 5 h: target 15 min
    relaxed = analyze(rows, targets={"appointment": 4 * 1440, "contacted": 600})
    status = {t.stage: t.status for t in relaxed.funnel.stage_times}
    assert (status["appointment"], status["contacted"]) == ("ok", "ok")
    bottleneck = next(r for r in report.recommendations if r.kind == "bottleneck")
    assert bottleneck.figures["stage"] == "appointment" and bottleneck.figures["n"] == 60
    with pytest.raises(ValueError, match="unknown stages"):
        FlowConfig(targets={"signed": 5.0})


def test_aged_open_leads_by_age_with_uncontacted() -> None:
    rows = [lead(AS_OF - pd.Timedelta(days=d)) for d in (0.5, 2, 2, 10, 45, 120)]
    rows += [lead(AS_OF - pd.Timedelta(days=2), contacted=5)]
    rows += [
        lead(AS_OF - pd.Timedelta(days=10), sold=60),
        lead(AS_OF - pd.Timedelta(days=10), lost=60),
    ]
    report = analyze(rows)
    aged = {b.age: (b.open, b.uncontacted) for b in report.funnel.aged_open}
    assert aged["< 1 day"] == (1, 1) and aged["1-3 days"] == (3, 2)
    assert (
        aged["7-14 days"] == (1, 1) and aged["30-90 days"] == (1, 1) and aged["> 90 days"] == (1, 1)
    )
    assert report.overall.open == 7
    aged_rec = next(r for r in report.recommendations if r.kind == "aged")
    assert aged_rec.figures == {"uncontacted_over_1_day": 5, "uncontacted_over_7_days": 3}


def test_cohorts_by_month_and_week() -> None:
    rows = old_leads(100, 5, "Website")
    months = analyze(rows).funnel.cohorts
    assert [c.cohort for c in months] == sorted(c.cohort for c in months)
    assert all(len(c.cohort) == 7 and c.complete for c in months)
    assert sum(c.leads for c in months) == 100
    weeks = analyze(rows, cohort="week").funnel.cohorts
    assert all(pd.Timestamp(c.cohort).weekday() == 0 for c in weeks)


def test_bad_input_is_refused_with_what_to_do() -> None:
    with pytest.raises(FlowInputError, match="'created_at' column.*mapping"):
        analyze_flow(pd.DataFrame({"CreateDate": ["2025-01-01"]}))
    with pytest.raises(FlowInputError, match="no leads to analyse"):
        analyze_flow(pd.DataFrame({"created_at": []}))
    with pytest.raises(FlowInputError, match="created_at are not dates"):
        analyze_flow(pd.DataFrame({"created_at": ["2025-01-01 10:00", "yesterday"]}))


def test_text_times_blanks_and_offsets_are_read() -> None:
    text = pd.DataFrame(
        {
            "created_at": ["2025-01-01T10:00:00", "2025-01-02T10:00:00", ""],
            "contacted_at": ["2025-01-01T10:03:00", "", ""],
            "sold_at": ["", "2025-01-05T10:00:00", ""],
            "lead_source": ["Website", " Website ", ""],
        }
    )
    report = analyze_flow(text, as_of="2025-03-01")
    assert report.leads == 2 and report.excluded == {"no creation time": 1}
    assert [(r.name, r.leads) for r in report.breakdown("source").rows] == [("Website", 2)]


def test_the_report_is_plain_json() -> None:
    report = analyze(old_leads(60, 4, "Website"))
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert set(data) >= {"as_of", "overall", "breakdowns", "speed", "funnel", "recommendations"}
    dimensions = [b["dimension"] for b in data["breakdowns"]]
    assert dimensions == ["source", "rep", "vehicle", "dealership", "hour", "weekday"]


def test_generated_history_shows_the_effects_the_generator_put_in() -> None:
    """The demo generator makes referrals convert best and Facebook worst, and speed to lead
    matter: the analysis must find both."""
    history = make_history(leads=6000, seed=5, days=240)
    report = analyze_flow(history.leads)
    sources = report.breakdown("source")
    ranked = [row.name for row in sources.rows if row.rank is not None]
    assert ranked[0] == "Referral" and ranked[-1] in ("Facebook", "TrueCar")
    buckets = {b.name: b.d30 for b in report.speed.buckets}
    fast, slow = buckets["< 5 min"], buckets["4-24 h"]
    assert fast.low is not None and slow.high is not None and fast.low > slow.high
    assert any(r.kind == "speed" for r in report.recommendations)
    for table in report.breakdowns:
        for row in table.rows:
            assert row.d30.n <= row.d14.n <= row.leads  # longer windows close later
            assert all(r is None or 0 <= r <= 1 for r in (row.d30.rate, row.d30.low, row.d30.high))
    assert not math.isnan(report.overall.d30.rate or math.nan)


def test_a_dealership_zone_the_system_does_not_know_is_a_clear_error() -> None:
    rows = old_leads(50, 5, "Website")
    leads = frame(rows).assign(dealership_timezone="Nowhere/Zone")
    with pytest.raises(FlowInputError, match="'Nowhere/Zone'.*correct the dealership's zone"):
        analyze_flow(leads, as_of=pd.Timestamp("2025-03-01T00:00Z"))


def test_the_confidence_level_chosen_applies_to_speed_to_lead_too() -> None:
    leads = frame(old_leads(200, 40, "Website"))
    wide = analyze_flow(leads).speed
    narrow = analyze_flow(leads, config=FlowConfig(z=1.0)).speed

    def width(rate: Any) -> float:
        return float(rate.high - rate.low)

    assert width(narrow.buckets[0].d30) < width(wide.buckets[0].d30)
    shares = zip(narrow.contacted_within, wide.contacted_within, strict=True)
    assert all(width(a.business_hours) < width(b.business_hours) for a, b in shares)
