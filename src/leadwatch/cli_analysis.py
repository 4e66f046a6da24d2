"""`leadwatch analyze`: the lead flow analysis of a CSV file or of the leads in the database,
as a terminal report, JSON (--json) or a standalone HTML file (--html)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.bar import Bar
from rich.table import Table

from leadwatch.cli_support import err, fail, out

if TYPE_CHECKING:
    import pandas as pd

    from leadwatch.analysis import FlowReport
    from leadwatch.core.calendar import WorkingHours

TERMINAL_ROWS = 15  # per group table; --json has every group
FLOW_COLUMNS = frozenset(
    {"created_at", "lead_source", "rep", "vehicle_make", "vehicle_model", "dealership"}
    | {"dealership_timezone", "contacted_at", "appointment_at", "test_drive_at", "offer_at"}
    | {"sold_at", "delivered_at", "lost_at"}
)


def analyze_command(
    data: Annotated[
        Path | None,
        typer.Option(help="Lead CSV (canonical or CRM headings); default: the stored leads."),
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="Column mapping file for --data.")] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Judge the leads as of this moment (default: the latest in the data)."),
    ] = None,
    dealership: Annotated[
        str | None, typer.Option(help="Only the leads of this dealership.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the analysis as JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained HTML report to this file.")
    ] = None,
    min_group: Annotated[
        int, typer.Option(min=1, help="Smaller groups are listed but not ranked.")
    ] = 30,
    cohort: Annotated[str, typer.Option(help="Funnel cohorts by 'month' or 'week'.")] = "month",
    target: Annotated[
        list[str] | None,
        typer.Option(
            help="A stage's target time from the stage before, e.g. 'contacted=5m' or "
            "'appointment=1d' (m, h or d; repeat for more stages)."
        ),
    ] = None,
    hours: Annotated[
        str | None,
        typer.Option(
            help="Business hours, e.g. 'mon-fri 09:00-20:00; sat 09:00-18:00' (default: the "
            "escalation settings for stored leads, Mon-Sat 09:00-20:00 for a CSV)."
        ),
    ] = None,
) -> None:
    """How leads flow: conversion by source, rep, vehicle, hour, weekday and dealership (only
    leads whose window has closed are judged), speed to lead, the stage funnel with its
    bottlenecks, aged open leads and recommendations backed by their numbers."""
    from leadwatch.analysis import FlowConfig, FlowInputError, analyze_flow
    from leadwatch.analysis.funnel import Cohort

    if cohort not in ("month", "week"):
        raise fail(f"--cohort {cohort!r}: use 'month' or 'week'")
    moment = _as_of(as_of)
    chosen_hours = _hours(hours) if hours else None
    known: dict[str, WorkingHours] = {}
    if data is not None:
        frame = _csv_frame(data, mapping, dealership)
    else:
        frame, known = _stored_frame(dealership)
    if chosen_hours is not None:
        known = {}  # --hours wins over the settings
    config_args: dict[str, Any] = {"hours": known, "hours_source": "escalation settings"}
    if target:
        config_args["targets"] = _targets(target)
    if chosen_hours is not None:
        config_args["default_hours"] = chosen_hours
        config_args["default_hours_source"] = "--hours"
    try:
        config = FlowConfig(min_group=min_group, cohort=cast(Cohort, cohort), **config_args)
        with err.status(f"analysing {len(frame):,} leads..."):
            report = analyze_flow(frame, as_of=moment, config=config)
    except (FlowInputError, ValueError) as exc:
        raise fail(f"{data or 'stored leads'}: {exc}") from None
    if html is not None:
        _write_html(report, html)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
        return
    print_report(report)
    if html is not None:
        out.print(f"HTML report written to {html}")


def _as_of(value: str | None) -> Any:
    if value is None:
        return None
    import pandas as pd

    try:
        moment = pd.Timestamp(value)
    except ValueError:
        moment = None
    if moment is None or pd.isna(moment):  # not a date, or an empty --as-of
        raise fail(f"--as-of {value!r} is not a date (e.g. 2025-06-30T00:00)")
    return moment


def _hours(spec: str) -> WorkingHours:
    """'mon-fri 09:00-20:00; sat 09:00-12:00 13:00-18:00' -> WorkingHours (days not named
    are closed)."""
    from leadwatch.core.calendar import WEEKDAYS, CalendarError, WorkingHours

    weekly: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        days, _, times = part.partition(" ")
        names: list[str] = []
        for piece in days.lower().split(","):
            first, _, last = piece.partition("-")
            if first not in WEEKDAYS or (last and last not in WEEKDAYS):
                raise fail(f"--hours {part!r}: days are {', '.join(WEEKDAYS)} (e.g. mon-fri)")
            start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
            names += list(WEEKDAYS[start : end + 1])
        for name in names:
            weekly.setdefault(name, []).extend(times.replace(",", " ").split())
    try:
        return WorkingHours.from_spec("UTC", weekly)
    except CalendarError as exc:
        raise fail(f"--hours: {exc}") from None


def read_flow_csv(path: Path, mapping: Path | None = None) -> pd.DataFrame:
    """The columns of a lead CSV the analysis reads (names, emails and VINs are half the file),
    under their canonical names."""
    from leadwatch.cli_model import _canonical_columns, read_leads

    renames = _canonical_columns(path, mapping) if path.is_file() else {}
    return read_leads(
        path, mapping, wanted=lambda heading: renames.get(heading, heading) in FLOW_COLUMNS
    )


def _targets(texts: list[str]) -> dict[str, float]:
    """['contacted=5m', 'appointment=1d'] -> the default targets with these in minutes."""
    from leadwatch.analysis.funnel import DEFAULT_TARGETS

    units = {"m": 1.0, "h": 60.0, "d": 1440.0}
    targets = dict(DEFAULT_TARGETS)
    for text in texts:
        stage, _, amount = text.partition("=")
        stage, amount = stage.strip(), amount.strip().lower()
        if stage not in targets:
            raise fail(f"--target {text!r}: stages are {', '.join(targets)}")
        try:
            targets[stage] = float(amount[:-1]) * units[amount[-1]]
        except (KeyError, IndexError, ValueError):
            raise fail(f"--target {text!r}: give a time such as {stage}=30m, 4h or 2d") from None
    return targets


def _csv_frame(path: Path, mapping: Path | None, dealership: str | None) -> pd.DataFrame:
    with err.status(f"reading {path}..."):
        frame = read_flow_csv(path, mapping)
    if dealership is not None:
        if "dealership" not in frame.columns:
            raise fail(f"--dealership: {path} has no dealership column")
        names = frame["dealership"].astype("object").fillna("").str.strip()
        chosen = names.str.casefold() == dealership.strip().casefold()
        if not chosen.any():
            known = ", ".join(sorted(set(names) - {""})[:10]) or "none"
            raise fail(f"--dealership {dealership!r}: no such dealership in {path} ({known})")
        frame = frame.loc[chosen.to_numpy()]
    return frame


def _stored_frame(dealership: str | None) -> tuple[pd.DataFrame, dict[str, WorkingHours]]:
    """The stored leads and each dealership's working hours from the escalation settings."""
    from sqlalchemy import select

    from leadwatch.cli import _engine
    from leadwatch.cli_support import load_settings
    from leadwatch.core.calendar import CalendarError
    from leadwatch.db.engine import make_session_factory, unit_of_work
    from leadwatch.escalations import settings as settings_service
    from leadwatch.leads.export import lead_frame
    from leadwatch.leads.models import Dealership

    factory = make_session_factory(_engine(load_settings()))
    with err.status("reading the stored leads..."), unit_of_work(factory) as db_session:
        ids = None
        if dealership is not None:
            stores = {d.name.casefold(): d.id for d in db_session.scalars(select(Dealership))}
            found = stores.get(dealership.strip().casefold())
            if found is None:
                raise fail(
                    f"--dealership {dealership!r}: no such dealership (leadwatch dealership list)"
                )
            ids = [found]
        try:
            frame = lead_frame(db_session=db_session, dealership_ids=ids)
            pairs = frame[["dealership", "dealership_timezone"]].drop_duplicates()
            known = settings_service.working_hours_of(
                db_session=db_session, stores=pairs.itertuples(index=False)
            )
        except CalendarError as exc:
            raise fail(
                f"stored leads: {exc} (fix it: leadwatch dealership set NAME --timezone ZONE)"
            ) from None
    return frame, known


def _write_html(report: FlowReport, path: Path) -> None:
    from leadwatch.web.flow_report import render_html

    try:
        path.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise fail(f"--html {path}: {exc.strerror or exc}") from None


# --- the terminal report ---------------------------------------------------------------------


def print_report(report: FlowReport) -> None:
    from leadwatch.analysis.recommend import percent
    from leadwatch.web.flow_report import view

    v = view(report)
    out.rule(f"[bold]Lead flow[/] as of {report.as_of}")
    for label, value in v["headline"]:
        out.print(f"{label}: [bold]{value}[/]", highlight=False)
    if v["excluded"]:
        out.print(f"Left out: {', '.join(v['excluded'])}")
    out.print()
    out.print("[bold]Recommendations[/]")
    for number, text in enumerate(v["recommendations"], start=1):
        out.print(f" {number}. {text}", highlight=False)
    if not v["recommendations"]:
        out.print(" Nothing stands out with enough leads behind it to say so.")
    _speed_tables(report, v)
    _funnel_tables(v)
    for table, data in zip(report.breakdowns, v["breakdowns"], strict=True):
        limit = 24 if table.dimension == "hour" else TERMINAL_ROWS
        grid = Table(title=f"30-day conversion by {table.title.lower()}", title_justify="left")
        for column in (table.title, "rank", "leads", "14 d", "30 d", "of", "95 % interval"):
            grid.add_column(column, justify="left" if column == table.title else "right")
        grid.add_column("", min_width=12)
        grid.add_column("note")
        top = max((row.d30.high or 0.0 for row in table.rows), default=0.0) or 1.0
        for row, shown in zip(table.rows[:limit], data["rows"], strict=False):
            bar = Bar(size=top, begin=0, end=row.d30.rate or 0.0, width=12)
            style = "dim" if row.small else ""
            grid.add_row(
                shown["name"],
                str(shown["rank"]),
                shown["leads"],
                shown["d14"],
                shown["d30"],
                shown["n30"],
                shown["interval"],
                bar,
                shown["note"],
                style=style,
            )
        out.print()
        out.print(grid)
        if len(table.rows) > limit:
            out.print(f"  ... and {len(table.rows) - limit} more (--json lists them all)")
    out.print()
    out.print(f"Overall 30-day rate for comparison: {percent(report.overall.d30.rate)}")


def _speed_tables(report: FlowReport, v: dict[str, Any]) -> None:
    grid = Table(title="Speed to lead: 30-day conversion", title_justify="left")
    for column in ("first contact", "leads", "30 d", "of", "95 % interval"):
        grid.add_column(column, justify="left" if column == "first contact" else "right")
    grid.add_column("", min_width=20)
    top = max((b.d30.high or 0.0 for b in report.speed.buckets), default=0.0) or 1.0
    for bucket, row in zip(report.speed.buckets, v["speed"]["buckets"], strict=True):
        bar = Bar(size=top, begin=0, end=bucket.d30.rate or 0.0, width=20)
        grid.add_row(row["name"], row["leads"], row["d30"], row["n30"], row["interval"], bar)
    out.print()
    out.print(grid)
    within = Table(title="Contacted within", title_justify="left")
    for column in ("within", "created in business hours", "created after hours"):
        within.add_column(column)
    for row in v["speed"]["within"]:
        within.add_row(row["within"], row["business"], row["after"])
    out.print(within)
    for text in v["speed"]["waits"]:
        out.print(f" {text}", highlight=False)
    out.print(f" Business hours: {'; '.join(v['hours'])}", highlight=False)


def _funnel_tables(v: dict[str, Any]) -> None:
    funnel = v["funnel"]
    grid = Table(title=f"Stage funnel ({funnel['basis']})", title_justify="left")
    for column in ("stage", "reached", "of all", "step", "median", "p90", "target", "status"):
        grid.add_column(column, justify="left" if column in ("stage", "status") else "right")
    for row in funnel["stages"]:
        flagged = row["status"] in ("bottleneck", "slow tail")
        grid.add_row(
            row["name"],
            row["reached"],
            row["share"],
            row["step"],
            row["median"],
            row["p90"],
            row["target"],
            f"[bold red]{row['status']}[/]" if flagged else row["status"],
        )
    out.print()
    out.print(grid)
    cohorts = Table(title="Funnel by cohort (share reaching each stage)", title_justify="left")
    cohorts.add_column("cohort", no_wrap=True)
    for column in ("leads", *funnel["names"], "final"):
        cohorts.add_column(column, justify="right")
    for row in funnel["cohorts"][-12:]:
        cohorts.add_row(
            row["cohort"], row["leads"], *row["shares"], "yes" if row["complete"] else "no"
        )
    out.print(cohorts)
    aged = Table(title="Open leads by age", title_justify="left")
    for column in ("age", "open", "never contacted"):
        aged.add_column(column, justify="left" if column == "age" else "right")
    for row in funnel["aged"]:
        aged.add_row(row["age"], row["open"], row["uncontacted"])
    out.print(aged)
