"""CLI for escalations: preview, list, show, claim, statistics, the settings file, the worker."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from leadwatch.cli_support import err, fail, load_settings, now, out
from leadwatch.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from leadwatch.escalations.jobs import RuntimeSource

escalation_app = typer.Typer(
    help="Escalations: preview what would happen, list, show, claim, statistics.",
    no_args_is_help=True,
)
settings_app = typer.Typer(
    help="Lead Escalation settings: show, export and import as a file, history.",
    no_args_is_help=True,
)


def _factory(settings: Settings) -> sessionmaker[Session]:
    from leadwatch.cli import _engine
    from leadwatch.db.engine import make_session_factory

    return make_session_factory(_engine(settings))


def _runtime(settings: Settings) -> RuntimeSource:
    from leadwatch.escalations.jobs import RuntimeSource
    from leadwatch.leads.scoring import ActiveModel
    from leadwatch.prediction.artifacts import store_for

    return RuntimeSource(
        settings, ActiveModel(lambda: store_for(settings.home, settings.secret_key_value))
    )


def _parse_time(text: str | None, zone: ZoneInfo) -> datetime:
    if text is None:
        return now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-11-27T18:30)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


@escalation_app.command("preview")
def preview_command(
    lead: Annotated[
        Path,
        typer.Option(
            "--lead", exists=True, dir_okay=False, help="The lead, as JSON (the API's shape)."
        ),
    ],
    at: Annotated[
        str | None,
        typer.Option(help="Start time, ISO 8601; no zone = the dealership's. Default: now."),
    ] = None,
    probability: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Use this sale probability instead of the model's."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What escalation would do with a lead from --at on, if nobody claimed or called it.
    Nothing is stored or sent."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations.preview import PreviewError, preview
    from leadwatch.leads.directory import DealershipDirectory
    from leadwatch.leads.schemas import LeadCreate

    settings = load_settings()
    try:
        body = LeadCreate.model_validate_json(lead.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(lead)'}: {e['msg']}" for e in exc.errors()
        )
        raise fail(escape(f"{lead}: not a valid lead: {problems}")) from None
    runtime = _runtime(settings)
    with unit_of_work(_factory(settings)) as db_session:
        directory = DealershipDirectory(
            default_name=settings.default_dealership, default_timezone=settings.default_timezone
        ).load(db_session=db_session)
        dealership = body.dealership or settings.default_dealership
        zone = ZoneInfo(str(directory.tz_for(dealership)))
        try:
            result = preview(
                body.to_lead_in(zone),
                runtime=runtime(db_session),
                dealership=dealership,
                timezone=str(zone),
                at=_parse_time(at, zone),
                probability=probability,
                predictor=runtime.active_model.get() if probability is None else None,
            )
        except PreviewError as exc:
            raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    out.print(
        f"[bold]{result['level']}[/] (P {result['probability']:.2f}): {escape(result['reason'])}",
        highlight=False,
    )
    table = Table("when (local)", "action", "recipients", "channels", "why")
    for step in result["steps"]:
        local = datetime.fromisoformat(step["at"]).astimezone(zone)
        table.add_row(
            local.strftime("%a %d %b %H:%M"),
            step["action"],
            escape(", ".join(step["recipients"])) or "-",
            ", ".join(step["channels"]) or "-",
            escape(step["reason"]),
        )
    if result["steps"]:
        out.print(table)


_STATUSES = ("live", "active", "claimed", "stopped", "exhausted")


@escalation_app.command("list")
def list_command(
    status: Annotated[
        str | None, typer.Option(help="live, active, claimed, stopped or exhausted.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The newest escalations."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations import service

    if status is not None and status not in _STATUSES:
        raise fail(f"--status {status!r}: use live, active, claimed, stopped or exhausted")
    settings = load_settings()
    with unit_of_work(_factory(settings)) as db_session:
        rows: list[dict[str, Any]] = [
            {
                "id": e.id,
                "lead_id": e.lead_id,
                "level": e.level,
                "status": e.status,
                "depth": e.depth,
                "started_at": e.started_at.isoformat(),
                "due_at": e.due_at.isoformat() if e.due_at else None,
                "claimed_by": e.claimed_by,
                "end_reason": e.end_reason,
            }
            for e in service.list_escalations(db_session=db_session, limit=limit, status=status)
        ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("id", "lead", "level", "status", "depth", "started", "next due", "ended because")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["lead_id"]),
            r["level"],
            r["status"],
            str(r["depth"]),
            r["started_at"][:16],
            (r["due_at"] or "-")[:16],
            escape(r["end_reason"] or ""),
        )
    out.print(table)


@escalation_app.command("show")
def show_command(escalation_id: Annotated[int, typer.Argument(help="Escalation id.")]) -> None:
    """One escalation with every decision and its reason."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations import service

    settings = load_settings()
    with unit_of_work(_factory(settings)) as db_session:
        try:
            esc = service.get(db_session=db_session, escalation_id=escalation_id)
        except service.EscalationNotFoundError as exc:
            raise fail(str(exc)) from None
        log = service.decisions(db_session=db_session, escalation_id=escalation_id)
        out.print(
            f"escalation {esc.id}: lead {esc.lead_id}, {esc.level}, {esc.status}, "
            f"settings v{esc.settings_version}",
            highlight=False,
        )
        table = Table("at (UTC)", "action", "step", "to", "why")
        for d in log:
            to = ", ".join(f"{r['name']} ({r['channel']})" for r in d.recipients)
            step = "" if d.step is None else str(d.step + 1)
            table.add_row(
                d.at.strftime("%Y-%m-%d %H:%M:%S"), d.action, step, escape(to), escape(d.reason)
            )
        out.print(table)


@escalation_app.command("claim")
def claim_command(
    escalation_id: Annotated[int, typer.Argument(help="Escalation id.")],
    by: Annotated[str, typer.Option(help="Who takes the lead.")],
) -> None:
    """Claim a lead: its escalation pauses; it resumes unless contact is logged in time."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations import service

    if not by.strip():
        raise fail("--by must name who takes the lead")
    settings = load_settings()
    runtime = _runtime(settings)
    try:
        with unit_of_work(_factory(settings)) as db_session:
            esc = service.claim(
                db_session=db_session,
                escalation_id=escalation_id,
                by=by.strip(),
                runtime=runtime(db_session),
                now=now(),
            )
            timeout = runtime(db_session).config.rules.claim_timeout_minutes
            out.print(f"claimed by {esc.claimed_by}; log contact within {timeout:g} min")
    except service.EscalationError as exc:
        raise fail(str(exc)) from None


@escalation_app.command("stats")
def stats_command(
    days: Annotated[float, typer.Option(min=0.01, help="Window: the last N days.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Totals, success rate, time to claim and to first contact, by level and channel."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations.stats import escalation_stats

    settings = load_settings()
    end = now()
    with unit_of_work(_factory(settings)) as db_session:
        result = escalation_stats(
            db_session=db_session, since=end - timedelta(days=days), until=end
        )
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    rate = result["success_rate"]
    out.print(
        f"{result['total']} escalations in {days:g} days, {result['live']} live; "
        f"success rate {'-' if rate is None else f'{rate:.0%}'}; "
        f"median time to claim {result['time_to_claim']['median_minutes']} min, "
        f"to first contact {result['time_to_first_contact']['median_minutes']} min",
        highlight=False,
    )
    table = Table("level", "escalations", "succeeded", "success rate")
    for level, row in result["by_level"].items():
        r = row["success_rate"]
        table.add_row(
            level, str(row["total"]), str(row["succeeded"]), "-" if r is None else f"{r:.0%}"
        )
    out.print(table)
    channels = Table("channel", "messages", "by status", "delivered")
    for channel, row in result["by_channel"].items():
        r = row["delivery_rate"]
        statuses = ", ".join(f"{k} {v}" for k, v in row["by_status"].items())
        channels.add_row(channel, str(row["total"]), statuses, "-" if r is None else f"{r:.0%}")
    out.print(channels)


# --- settings -------------------------------------------------------------------------------


@settings_app.command("export")
def settings_export(
    file: Annotated[
        Path | None, typer.Argument(help="Write here (default: standard output).")
    ] = None,
) -> None:
    """The settings in force, as a JSON file you can edit and import."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations import settings as settings_service

    settings = load_settings()
    with unit_of_work(_factory(settings)) as db_session:
        config = settings_service.load(db_session=db_session)
    text = json.dumps(config.document.model_dump(mode="json"), indent=2) + "\n"
    if file is None:
        sys.stdout.write(text)
        return
    file.write_text(text, encoding="utf-8")
    err.print(f"settings version {config.version} written to {file}")


@settings_app.command("import")
def settings_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON settings file.")],
    author: Annotated[
        str | None, typer.Option(help="Who makes the change (default: your login name).")
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Why.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and show the changes only.")
    ] = False,
) -> None:
    """Check a settings file and save it as the next version. Escalations already running
    keep the policy they started with."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations import settings as settings_service
    from leadwatch.escalations.document import settings_changes

    settings = load_settings()
    try:
        document = settings_service.parse(file.read_bytes())
    except settings_service.SettingsError as exc:
        raise fail(escape(f"{file}: {exc}")) from None
    who = author or os.environ.get("USER") or os.environ.get("USERNAME") or "cli"
    with unit_of_work(_factory(settings)) as db_session:
        if dry_run:
            old = settings_service.load(db_session=db_session).document
            changes = settings_changes(old, document)
            out.print("\n".join(changes) if changes else "no changes", markup=False)
            return
        try:
            row = settings_service.save(
                db_session=db_session, document=document, author=who, now=now(), comment=comment
            )
        except settings_service.SettingsConflictError as exc:
            raise fail(str(exc)) from None
        out.print(f"saved settings version {row.version} by {escape(who)}")
        for change in row.changes:
            out.print(f"  {change}", highlight=False, markup=False)


@settings_app.command("history")
def settings_history(limit: Annotated[int, typer.Option(min=1, max=500)] = 20) -> None:
    """Who changed the settings, what and when."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations import settings as settings_service

    settings = load_settings()
    table = Table("version", "when (UTC)", "who", "changes", "comment")
    with unit_of_work(_factory(settings)) as db_session:
        for row in settings_service.history(db_session=db_session, limit=limit):
            table.add_row(
                str(row.version),
                row.created_at.strftime("%Y-%m-%d %H:%M"),
                escape(row.author),
                escape("\n".join(row.changes)) or "-",
                escape(row.comment or ""),
            )
    out.print(table)


# --- worker ---------------------------------------------------------------------------------


def worker_command(
    once: Annotated[
        bool, typer.Option("--once", help="Run what is due now and one sweep, then exit.")
    ] = False,
    deliver: Annotated[
        bool,
        typer.Option("--deliver/--no-deliver", help="Also send the outbox (the default)."),
    ] = True,
) -> None:
    """Run due escalation steps, the re-scoring sweep and message delivery until stopped
    (Ctrl-C or SIGTERM). Run as many as you like against PostgreSQL: each step runs once and
    each message is claimed by one worker at a time."""
    from leadwatch.cli import _engine
    from leadwatch.escalations.jobs import background_runner

    settings = load_settings()
    runner = background_runner(settings, _engine(settings), _runtime(settings), deliver=deliver)
    if once:
        result = runner.tick()
        out.print(
            f"ran {result.ran} due steps ({result.failed} failed); swept {result.swept} leads: "
            f"{result.started} started, {result.upgraded} moved up, {result.stopped} stopped; "
            f"delivered {result.delivered} messages ({result.dead} dead)"
        )
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err.print(f"escalation worker running (poll every {settings.worker_poll_seconds:g} s)")
    try:
        runner.serve_forever(stop)
    except KeyboardInterrupt:
        pass
    err.print("escalation worker stopped")
