"""The lead flow report as HTML: the figures formatted for reading, the charts drawn on the
server as inline SVG, and the standalone report file (`leadwatch analyze --html FILE`) with its
CSS inline, so it opens anywhere, fetches nothing and needs no JavaScript.

The web page (flow_pages) and the file share one view and one set of template sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from leadwatch.analysis import FlowReport
from leadwatch.analysis.conversion import Breakdown, GroupRow, Rate
from leadwatch.analysis.recommend import STAGE_WORDS, duration, percent
from leadwatch.web import charts_flow

TABLE_ROWS = 30  # rows per group table; the JSON output has them all
CHART_ROWS = 15
_environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)


def interval(rate: Rate) -> str:
    """'26-38 %'."""
    if rate.low is None or rate.high is None:
        return "-"
    return f"{percent(rate.low).removesuffix(' %')}-{percent(rate.high)}"


def view(report: FlowReport) -> dict[str, Any]:
    """What the report sections show: plain strings and SVG, no logic left for templates."""
    overall = report.overall
    base = overall.d30.rate
    return {
        "as_of": _moment(report.as_of),
        "leads": f"{report.leads:,}",
        "excluded": [f"{count:,} {reason}" for reason, count in report.excluded.items()],
        "min_group": report.min_group,
        "headline": [
            ("Leads analysed", f"{report.leads:,} ({overall.open:,} still open)"),
            ("Created", f"{overall.first_created} to {overall.last_created}"),
            ("Sold within 14 days", _rate_text(overall.d14)),
            ("Sold within 30 days", _rate_text(overall.d30)),
            (
                "30-day rate counting young leads as failures (biased)",
                percent(overall.naive_30d),
            ),
        ],
        "recommendations": [item.text for item in report.recommendations],
        "breakdowns": [_breakdown(table, base, report.min_group) for table in report.breakdowns],
        "speed": _speed(report),
        "funnel": _funnel(report),
        "hours": [
            f"{used.dealership}: {used.hours} ({used.source})" for used in report.speed.hours
        ],
    }


def _rate_text(rate: Rate) -> str:
    if rate.rate is None:
        return "no lead old enough yet"
    return f"{percent(rate.rate)} (95 % interval {interval(rate)}, n = {rate.n:,})"


def _note(row: GroupRow) -> str:
    if row.small:
        return "small: not ranked"
    return {"above": "above overall", "below": "below overall"}.get(row.versus_overall, "")


def _breakdown(table: Breakdown, base: float | None, min_group: int) -> dict[str, Any]:
    rows = [
        {
            "name": row.name,
            "rank": row.rank or "-",
            "leads": f"{row.leads:,}",
            "d14": percent(row.d14.rate),
            "d30": percent(row.d30.rate),
            "n30": f"{row.d30.n:,}",
            "interval": interval(row.d30),
            "note": _note(row),
            "small": row.small,
        }
        for row in table.rows
    ]
    ordered = table.dimension in ("hour", "weekday")
    picked = table.rows if ordered else table.rows[:CHART_ROWS]
    points = [(r.name, r.d30.rate, r.d30.low, r.d30.high) for r in picked]
    title = f"30-day conversion by {table.title.lower()}"
    muted = [r.name for r in picked if r.small]
    chart = (
        charts_flow.rate_columns(title, points, reference=base, muted=muted)
        if ordered
        else charts_flow.rate_bars(title, points, reference=base, muted=muted)
    )
    return {
        "title": table.title,
        "dimension": table.dimension,
        "rows": rows[:TABLE_ROWS],
        "more": max(0, len(rows) - TABLE_ROWS),
        "small": sum(1 for row in table.rows if row.small),
        "min_group": min_group,
        "chart": chart,
    }


def _speed(report: FlowReport) -> dict[str, Any]:
    speed, base = report.speed, report.overall.d30.rate
    waits = []
    for label, wait in (
        ("business hours", speed.wait_business_hours),
        ("after hours", speed.wait_after_hours),
    ):
        waits.append(
            f"Created in {label}: median wait {duration(wait.median_minutes)}, one in ten over "
            f"{duration(wait.p90_minutes)} ({wait.contacted:,} contacted, "
            f"{wait.uncontacted:,} never contacted)"
        )
    return {
        "buckets": [
            {
                "name": bucket.name,
                "leads": f"{bucket.leads:,}",
                "d30": percent(bucket.d30.rate),
                "n30": f"{bucket.d30.n:,}",
                "interval": interval(bucket.d30),
            }
            for bucket in speed.buckets
        ],
        "within": [
            {
                "within": f"{share.within_minutes} min",
                "business": f"{percent(share.business_hours.rate)} of {share.business_hours.n:,}",
                "after": f"{percent(share.after_hours.rate)} of {share.after_hours.n:,}",
            }
            for share in speed.contacted_within
        ],
        "waits": waits,
        "curve": charts_flow.rate_columns(
            "30-day conversion by time to first contact",
            [(b.name, b.d30.rate, b.d30.low, b.d30.high) for b in speed.buckets],
            reference=base,
            muted=[b.name for b in speed.buckets if b.d30.n < report.min_group],
        ),
        "within_chart": charts_flow.paired_bars(
            "Share of leads contacted within 5, 15 and 60 minutes",
            [
                (f"{s.within_minutes} min", s.business_hours.rate, s.after_hours.rate)
                for s in speed.contacted_within
            ],
        ),
    }


def _funnel(report: FlowReport) -> dict[str, Any]:
    flow = report.funnel
    names = [STAGE_WORDS[stage] for stage in flow.stages]
    timings = {timing.stage: timing for timing in flow.stage_times}
    stages = []
    for index, stage in enumerate(flow.stages):
        timing = timings.get(stage)
        stages.append(
            {
                "name": names[index],
                "reached": f"{flow.overall.reached[index]:,}",
                "share": percent(flow.overall.share[index]),
                "step": percent(flow.overall.step[index]),
                "median": duration(timing.median_minutes) if timing else "",
                "p90": duration(timing.p90_minutes) if timing else "",
                "target": duration(timing.target_minutes) if timing else "",
                "status": timing.status if timing else "",
            }
        )
    return {
        "basis": flow.basis,
        "stages": stages,
        "names": names[1:],
        "cohorts": [
            {
                "cohort": row.cohort,
                "leads": f"{row.leads:,}",
                "shares": [percent(share) for share in row.share[1:]],
                "complete": row.complete,
            }
            for row in flow.cohorts
        ],
        "aged": [
            {"age": b.age, "open": f"{b.open:,}", "uncontacted": f"{b.uncontacted:,}"}
            for b in flow.aged_open
        ],
        "chart": charts_flow.funnel(
            "Stage funnel (" + flow.basis + ")",
            list(zip(names, flow.overall.reached, strict=True)),
        ),
    }


def render_html(report: FlowReport, *, title: str = "Lead flow") -> str:
    """The standalone report: one HTML file with inline CSS and SVG, nothing fetched."""
    template = _environment.get_template("flow_report.html")
    return template.render(title=title, v=view(report))


def _moment(text: str) -> str:
    """'2026-11-26 02:09:38.165151+00:00' -> '2026-11-26 02:09 UTC' for people to read."""
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is None:  # on the stores' own clocks
        return stamp.strftime("%Y-%m-%d %H:%M")
    return stamp.tz_convert("UTC").strftime("%Y-%m-%d %H:%M UTC")
