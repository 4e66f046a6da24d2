"""The `leadwatch` command line. Settings are read here, at the entry point, and passed down."""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from leadwatch import __version__
from leadwatch.cli_analysis import analyze_command
from leadwatch.cli_escalation import escalation_app, settings_app, worker_command
from leadwatch.cli_model import evaluate_command, models_app, score_command, train_command
from leadwatch.cli_notifications import notifications_app, outbox_app
from leadwatch.cli_support import err, fail, load_settings, now, out
from leadwatch.cli_users import user_app
from leadwatch.config import Settings
from leadwatch.core.leads import RejectedRecord
from leadwatch.db.engine import make_engine, make_session_factory, unit_of_work
from leadwatch.db.migrate import current_revision, head_revision, upgrade

app = typer.Typer(
    name="leadwatch",
    help="LeadWatch: take in dealership leads, predict which will sell, escalate the ones at risk.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for intake and integrations.", no_args_is_help=True)
dealer_app = typer.Typer(help="Dealerships and their time zones.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
app.add_typer(dealer_app, name="dealership")
app.add_typer(models_app, name="models")
app.add_typer(escalation_app, name="escalation")
app.add_typer(settings_app, name="settings")
app.command("worker")(worker_command)
app.add_typer(outbox_app, name="outbox")
app.add_typer(notifications_app, name="notifications")
app.add_typer(user_app, name="user")
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("score")(score_command)
app.command("analyze")(analyze_command)

# ADF documents are parsed whole (they are email bodies, rarely over a few KB); a file larger
# than this is refused with a clear error rather than read into memory.
ADF_FILE_LIMIT = 100 * 1024 * 1024


class WorkerIn(StrEnum):
    process = "process"
    thread = "thread"


_engines: list[Engine] = []


def _new_engine(settings: Settings) -> Engine:
    """An engine that is disposed when the command ends (see `_root`)."""
    engine = make_engine(settings)
    _engines.append(engine)
    return engine


def _dispose_engines() -> None:
    while _engines:
        _engines.pop().dispose()


def _engine(settings: Settings, *, upgrade_embedded: bool = True) -> Engine:
    """The engine, with the schema checked: the embedded database is upgraded in place;
    a PostgreSQL database must be upgraded explicitly (`leadwatch db upgrade`)."""
    engine = _new_engine(settings)
    try:
        if settings.is_embedded and upgrade_embedded:
            upgrade(engine)
        elif current_revision(engine) != head_revision(engine):
            raise fail("the database schema is not up to date: run `leadwatch db upgrade` first")
    except OperationalError as exc:
        raise fail(f"cannot reach the database: {exc.orig}") from None
    return engine


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    ctx.call_on_close(_dispose_engines)
    if version:
        out.print(__version__)
        raise typer.Exit()


# --- db ------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = load_settings()
    engine = _new_engine(settings)
    try:
        upgrade(engine, revision)
    except OperationalError as exc:
        raise fail(f"cannot reach the database: {exc.orig}") from None
    out.print(f"database at revision {current_revision(engine)} ({engine.url.render_as_string()})")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one this version knows."""
    engine = _new_engine(load_settings())
    out.print(f"current: {current_revision(engine)}  head: {head_revision(engine)}")


# --- import --------------------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """Counts the bytes read so the progress bar can follow a streamed file."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


@app.command("import")
def import_command(
    file: Annotated[
        Path | None, typer.Argument(help="CSV export or ADF/XML file (.xml, .adf).")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(help="Column mapping file (JSON, TOML or `Their Column = field` lines)."),
    ] = None,
    source_system: Annotated[
        str | None, typer.Option(help="Source system for rows without one (default: file name).")
    ] = None,
    dealership: Annotated[
        str | None, typer.Option(help="Dealership for rows without one (default: settings).")
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of a CSV file.")] = "utf-8-sig",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="List quarantined records instead of importing.")
    ] = False,
    limit: Annotated[int, typer.Option(help="How many quarantined records to list.")] = 50,
) -> None:
    """Import leads from a CSV export or an ADF/XML file. Idempotent: importing the same file
    again updates leads and never duplicates them. Rejected rows are quarantined with their
    reasons (list them with `leadwatch import --rejected`)."""
    settings = load_settings()
    if rejected:
        _list_rejected(settings, limit=limit, as_json=as_json)
        return
    if file is None:
        raise fail("give a FILE to import, or --rejected to list quarantined records")
    if not file.is_file():
        raise fail(f"{file}: no such file")
    counts = _run_file_import(
        settings,
        file,
        mapping=mapping,
        source_system=source_system,
        dealership=dealership,
        encoding=encoding,
        quiet=as_json,
    )
    result = counts.as_dict()
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    out.print(
        f"[green]{result['imported']} imported[/], {result['updated']} updated, "
        f"{result['linked']} linked to an earlier lead of the same shopper, "
        f"[{'red' if result['rejected'] else 'green'}]{result['rejected']} rejected[/]"
    )
    for error in result["errors"][:20]:
        out.print(f"  {file}:{error['row']}: {error['field']}: {error['message']}", highlight=False)
    if len(result["errors"]) > 20:
        out.print(f"  ... and {len(result['errors']) - 20} more (leadwatch import --rejected)")


def _run_file_import(
    settings: Settings,
    file: Path,
    *,
    mapping: Path | None,
    source_system: str | None,
    dealership: str | None,
    encoding: str,
    quiet: bool,
) -> Any:
    from leadwatch.intake.adf import AdfDocumentError, parse_adf
    from leadwatch.intake.csv_mapping import MappingError, load_mapping_file
    from leadwatch.leads.importer import run_import
    from leadwatch.leads.service import DealershipDirectory

    engine = _engine(settings)
    factory = make_session_factory(engine)
    directory = DealershipDirectory(
        default_name=dealership or settings.default_dealership,
        default_timezone=settings.default_timezone,
    )
    with unit_of_work(factory) as db_session:
        directory.load(db_session=db_session)
    source = str(file)
    window = timedelta(hours=settings.duplicate_window_hours)
    is_xml = file.suffix.lower() in {".xml", ".adf"}
    try:
        user_mapping = load_mapping_file(mapping) if mapping else None
    except (MappingError, OSError) as exc:
        raise fail(str(exc)) from None

    progress = Progress(
        TextColumn("[bold]importing[/] {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
    )
    size = file.stat().st_size
    with progress, file.open("rb") as raw:
        task = progress.add_task(file.name, total=size, rows=0)
        counter = _CountingReader(raw)
        if is_xml:
            try:
                parsed = parse_adf(
                    raw.read(ADF_FILE_LIMIT + 1),
                    local_tz_for=directory.tz_for,
                    max_bytes=ADF_FILE_LIMIT,
                )
            except AdfDocumentError as exc:
                raise fail(f"{file}: {exc}") from None
            records: Iterator[Any] = iter([*parsed.leads, *parsed.rejected])
            fmt = "adf"
        else:
            records = _csv_records(
                counter,
                encoding=encoding,
                source_system=source_system or file.stem,
                directory=directory,
                user_mapping=user_mapping,
            )
            fmt = "csv"

        def on_chunk(counts: Any) -> None:
            done = counts.imported + counts.updated + counts.linked + counts.rejected
            progress.update(task, completed=counter.count if not is_xml else size, rows=done)

        try:
            return run_import(
                after_store=_intake_scorer(settings),
                session_factory=factory,
                records=records,
                directory=directory,
                source=source,
                fmt=fmt,
                clock=now,
                chunk_size=settings.import_batch_size,
                duplicate_window=window,
                on_chunk=on_chunk,
            )
        except MappingError as exc:
            raise fail(f"{file}: {exc}") from None


def _intake_scorer(settings: Settings) -> Any:
    """Scores each chunk's new, open leads with the active model and lets escalation see them
    (none active: no scoring, and escalation only stops chains on contacts and sales)."""
    from leadwatch.escalations.jobs import RuntimeSource, watch_safely
    from leadwatch.leads.scoring import ActiveModel, score_safely
    from leadwatch.leads.store import worth_watching
    from leadwatch.prediction.artifacts import ModelFileError, store_for

    active = ActiveModel(lambda: store_for(settings.home, settings.secret_key_value))
    try:
        has_model = store_for(settings.home, settings.secret_key_value).active_version()
    except ModelFileError as exc:
        err.print(f"[yellow]leads will be stored unscored:[/] {exc}")
        has_model = None
    runtime = RuntimeSource(settings, active)

    def score(db_session: Any, stored: list[Any]) -> None:
        moment = now()
        if has_model is not None:
            originals = [s.lead_id for s in stored if s.outcome != "linked"]
            score_safely(db_session=db_session, lead_ids=originals, active=active, now=moment)
        watch_hours = runtime.config(db_session).rules.watch_hours
        since = moment - timedelta(hours=watch_hours)
        ids = worth_watching(stored, since=since)
        watch_safely(db_session=db_session, lead_ids=ids, runtime=runtime, now=moment)

    return score


def _csv_records(
    counter: _CountingReader,
    *,
    encoding: str,
    source_system: str,
    directory: Any,
    user_mapping: dict[str, str] | None,
) -> Iterator[Any]:
    from leadwatch.intake.csv_reader import read_csv_leads

    try:
        text = io.TextIOWrapper(
            io.BufferedReader(counter, buffer_size=1 << 20),
            encoding=encoding,
            errors="replace",
            newline="",
        )
    except LookupError:
        raise fail(f"unknown encoding {encoding!r} (try utf-8, cp1252, latin-1)") from None
    for item in read_csv_leads(
        text,
        source_system=source_system,
        local_tz_for=directory.tz_for,
        default_dealership=directory.default_name,
        user_mapping=user_mapping,
    ):
        if isinstance(item, RejectedRecord):
            yield item
        else:
            yield (item.line, item.lead)


def _list_rejected(settings: Settings, *, limit: int, as_json: bool) -> None:
    from leadwatch.leads import service as lead_service

    factory = make_session_factory(_engine(settings))
    with unit_of_work(factory) as db_session:
        items, total = lead_service.list_rejected(db_session=db_session, limit=limit)
        rows: list[dict[str, Any]] = [
            {
                "id": r.id,
                "source": r.source,
                "row": r.row,
                "field": r.field,
                "reason": r.reason,
                "raw": r.raw,
                "created_at": r.created_at.isoformat(),
            }
            for r in items
        ]
    if as_json:
        sys.stdout.write(json.dumps({"total": total, "items": rows}) + "\n")
        return
    table = Table(title=f"Quarantined records ({total} in all, newest first)")
    for column in ("id", "source", "row", "field", "reason", "raw"):
        table.add_column(column, overflow="fold")
    for r in rows:
        raw = r["raw"] if len(r["raw"]) < 80 else r["raw"][:77] + "..."
        table.add_row(str(r["id"]), r["source"], str(r["row"]), r["field"], r["reason"], raw)
    out.print(table)


# --- generate ------------------------------------------------------------------------------


@app.command("generate")
def generate_command(
    leads: Annotated[int, typer.Option(min=1, help="Number of leads.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 7,
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write.")] = Path("leads.csv"),
    truth: Annotated[
        Path | None,
        typer.Option(help="File for the true 14/30-day probabilities (default: OUT.truth.csv)."),
    ] = None,
    days: Annotated[int, typer.Option(min=30, help="Days of history.")] = 365,
    end: Annotated[
        datetime | None, typer.Option(help="End of the history (default: now), ISO 8601.")
    ] = None,
) -> None:
    """Write a realistic dealership lead history, and the true sale probabilities behind it."""
    from leadwatch.demo.generator import GeneratorConfig, write_history

    truth = truth or out_file.with_suffix(".truth.csv")
    end_at = (end.replace(tzinfo=end.tzinfo or UTC) if end else now()).astimezone(UTC)
    config = GeneratorConfig(leads=leads, seed=seed, end=end_at, days=days)
    with Progress(
        TextColumn("[bold]generating[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("leads", total=leads)
        written = write_history(
            config, out_file, truth, progress=lambda n: progress.update(task, completed=n)
        )
    out.print(f"wrote {written} leads to {out_file} and their true probabilities to {truth}")


# --- tokens and dealerships ----------------------------------------------------------------


@token_app.command("create")
def token_create(name: Annotated[str, typer.Argument(help="What the token is for.")]) -> None:
    """Create an API token. It is printed once; only its hash is stored."""
    from leadwatch.auth import service as auth_service

    factory = make_session_factory(_engine(load_settings()))
    with unit_of_work(factory) as db_session:
        row, token = auth_service.create_token(db_session=db_session, name=name, now=now())
        token_id = row.id
    out.print(f"token {token_id} ({name}): {token}", highlight=False)
    err.print("store it now: it cannot be shown again")


@token_app.command("list")
def token_list() -> None:
    """List API tokens (never the tokens themselves)."""
    from leadwatch.auth import service as auth_service

    factory = make_session_factory(_engine(load_settings()))
    table = Table("id", "name", "prefix", "created", "last used", "revoked")
    with unit_of_work(factory) as db_session:
        for row in auth_service.list_tokens(db_session=db_session):
            table.add_row(
                str(row.id),
                row.name,
                row.prefix + "...",
                row.created_at.isoformat(timespec="seconds"),
                row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "-",
                row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "-",
            )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (see `token list`).")],
) -> None:
    """Revoke an API token at once."""
    from leadwatch.auth import service as auth_service

    factory = make_session_factory(_engine(load_settings()))
    with unit_of_work(factory) as db_session:
        found = auth_service.revoke_token(db_session=db_session, token_id=token_id, now=now())
    if not found:
        raise fail(f"no token with id {token_id}")
    out.print(f"token {token_id} revoked")


@dealer_app.command("set")
def dealership_set(
    name: Annotated[str, typer.Argument(help="Dealership name, as in the lead files.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. America/Denver.")],
) -> None:
    """Create a dealership or change its time zone (naive times in files are read in it)."""
    from zoneinfo import ZoneInfoNotFoundError

    from leadwatch.leads import service as lead_service

    factory = make_session_factory(_engine(load_settings()))
    try:
        with unit_of_work(factory) as db_session:
            lead_service.set_dealership_timezone(
                db_session=db_session, name=name, timezone=timezone
            )
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(f"unknown IANA time zone {timezone!r} (e.g. America/Denver)") from None
    out.print(f"{name}: {timezone}")


@dealer_app.command("list")
def dealership_list() -> None:
    """List dealerships and their time zones."""
    from leadwatch.leads import service as lead_service

    factory = make_session_factory(_engine(load_settings()))
    table = Table("id", "name", "time zone")
    with unit_of_work(factory) as db_session:
        for dealer in lead_service.list_dealerships(db_session=db_session):
            table.add_row(str(dealer.id), dealer.name, dealer.timezone)
    out.print(table)


# --- serve and demo ------------------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run the escalation worker with this server (default: yes on the embedded "
            "SQLite, no on PostgreSQL, where `leadwatch worker` processes do it).",
        ),
    ] = None,
    worker_in: Annotated[
        WorkerIn,
        typer.Option(
            help="Where that worker runs: a child process (its own interpreter, on CPU time "
            "the API leaves) or a thread of this process.",
        ),
    ] = WorkerIn.process,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            envvar="LEADWATCH_API_PROCESSES",
            help="API processes sharing the port (default: 2 on a machine with 2 cores or "
            "more, else 1). Each has its own interpreter, so one busy request does not hold "
            "up the others. With --worker-in thread: 1.",
        ),
    ] = None,
) -> None:
    """Serve the API, the web pages and the claim pages."""
    settings = load_settings()
    run_worker = settings.is_embedded if worker is None else worker
    where = worker_in if run_worker else None
    if processes is not None and processes > 1 and where is WorkerIn.thread:
        raise fail(
            "--worker-in thread runs the worker inside the one API process: use --processes 1, "
            "or leave the worker in its own process (the default)"
        )
    _serve(
        settings, host or settings.host, port or settings.port, worker=where, processes=processes
    )


def _serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    worker: WorkerIn | None = WorkerIn.process,
    processes: int | None = None,
) -> None:
    """Serve with the worker beside the API (a child process, or a thread of the one API
    process). Several API processes are children of this one (`api_processes`), which then
    only watches over them. ``processes``: None for the default (one with the worker in a
    thread)."""
    import uvicorn

    from leadwatch.api_processes import (
        ApiProcesses,
        can_share_a_port,
        default_count,
        listening_socket,
        wait_for_stop_signal,
    )
    from leadwatch.app import create_app
    from leadwatch.escalations.worker_process import WorkerProcess, settle_heap

    if processes is None:
        processes = 1 if worker is WorkerIn.thread else default_count()
    engine = _engine(settings)  # the embedded database upgraded before any process uses it
    api: ApiProcesses | None = None
    if processes > 1:
        if not can_share_a_port():
            raise fail("several API processes need Unix sockets to share the port: --processes 1")
        try:
            listener = listening_socket(host, port)
        except OSError as exc:
            problem = f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port"
            raise fail(problem) from None
        engine.dispose()
        api = ApiProcesses(settings, listener, processes)
    out.print(
        f"LeadWatch {__version__} on [bold]http://{host}:{port}[/] (API docs: /docs)"
        + (f", {processes} API processes" if api else "")
    )
    child = WorkerProcess(settings) if worker is WorkerIn.process else None
    if child is not None:
        child.start()
    try:
        if api is not None:
            api.start()
            wait_for_stop_signal()
        else:
            app = create_app(settings, engine=engine, run_worker=worker is WorkerIn.thread)
            app.state.active_model.get()  # the model loaded now, not by the first shopper's lead
            settle_heap()
            uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        if api is not None:
            api.stop()
        if child is not None:
            child.stop()


@app.command("demo")
def demo(
    leads: Annotated[int, typer.Option(min=100, help="Leads of demo history.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Random seed of the demo history.")] = 7,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Prepare the demo and exit without serving.")
    ] = False,
    stream: Annotated[
        bool,
        typer.Option(help="While serving, post a simulated incoming lead every few seconds."),
    ] = True,
    stream_every: Annotated[
        float, typer.Option(min=1.0, help="Seconds between simulated leads (on average).")
    ] = 20.0,
) -> None:
    """Generate demo history, import it into the embedded database, train the model on it,
    score the open leads, staff the stores, and serve the web pages and the API with a stream
    of simulated incoming leads (escalations arrive in the in-app inbox)."""
    from leadwatch.auth import service as auth_service
    from leadwatch.demo.generator import GeneratorConfig, write_history

    settings = load_settings()
    demo_dir = settings.home / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    history, truth = demo_dir / "history.csv", demo_dir / "history.truth.csv"
    config = GeneratorConfig(leads=leads, seed=seed, end=now())
    with err.status("generating demo history..."):
        write_history(config, history, truth)
    counts = _run_file_import(
        settings,
        history,
        mapping=None,
        source_system=None,
        dealership=None,
        encoding="utf-8",
        quiet=False,
    )
    out.print(
        f"demo history: {counts.imported} imported, {counts.updated} updated, "
        f"{counts.linked} linked, {counts.rejected} rejected ({history})"
    )
    factory = make_session_factory(_engine(settings))
    _demo_model(settings, history)
    _demo_escalations(settings, factory)
    with unit_of_work(factory) as db_session:
        _, token = auth_service.create_token(db_session=db_session, name="demo", now=now())
    host, port = host or settings.host, port or settings.port
    out.print(f"API token for the demo: [bold]{token}[/]", highlight=False)
    _demo_user(factory, f"http://{host}:{port}")
    out.print(
        f"try: curl -H 'Authorization: Bearer {token}' http://{host}:{port}/api/v1/leads",
        highlight=False,
    )
    if no_serve:
        out.print(f"ready: run `leadwatch serve` and open http://{host}:{port}/docs")
        return
    stop = threading.Event()
    if stream:
        from leadwatch.demo.stream import DemoLeadStream

        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        feed = DemoLeadStream(f"http://{local}:{port}", token, every=stream_every)
        threading.Thread(target=feed.run, args=(stop,), name="demo-stream", daemon=True).start()
        out.print(f"simulated leads: one about every {stream_every:g} s (--no-stream to stop)")
    try:
        _serve(settings, host, port)
    finally:
        stop.set()


def _demo_model(settings: Settings, history: Path) -> None:
    """Train the sale-probability model on the demo history and score the open leads."""
    from leadwatch.cli_model import _rescore, _store, read_leads
    from leadwatch.prediction.predictor import LeadOutcomePredictor
    from leadwatch.prediction.splits import HistoryTooShortError

    predictor = LeadOutcomePredictor("gradient_boosting", n_jobs=2)
    try:
        with err.status("training the sale-probability model on the demo history..."):
            report = predictor.train(read_leads(history))
    except (HistoryTooShortError, ValueError) as exc:
        err.print(f"[yellow]no model trained:[/] {exc}")
        return
    info = predictor.save(_store(settings))
    auc = report.validation["model"]["30d"]["roc_auc"]
    out.print(f"model {info.version} trained (validation AUC 30 d: {auc:.3f})")
    out.print(f"scored {_rescore(settings, predictor)} open leads")


def _demo_escalations(settings: Settings, factory: Any) -> None:
    """Staff the demo stores (every rep, plus a sales manager, general manager and BDC desk
    per store, with example.com addresses) and let escalation look at the recent leads."""
    from sqlalchemy import select

    from leadwatch.escalations import settings as settings_service
    from leadwatch.escalations.jobs import EscalationRunner, RuntimeSource
    from leadwatch.leads.models import Dealership, Lead
    from leadwatch.leads.scoring import ActiveModel
    from leadwatch.prediction.artifacts import store_for

    with unit_of_work(factory) as db_session:
        pairs = db_session.execute(
            select(Dealership.name, Lead.rep)
            .join(Lead, Lead.dealership_id == Dealership.id)
            .where(Lead.rep.is_not(None))
            .distinct()
        ).all()
        people: list[dict[str, Any]] = []
        stores = sorted({store for store, _ in pairs})
        for number, (store, rep) in enumerate(sorted(pairs), start=1):
            people.append(_demo_person(f"rep-{number}", str(rep), store, []))
        for number, store in enumerate(stores, start=1):
            for role, title in (
                ("sales_manager", "Sales Manager"),
                ("general_manager", "General Manager"),
                ("bdc", "BDC Desk"),
            ):
                name = f"{store} {title}"
                people.append(_demo_person(f"{role}-{number}", name, store, [role]))
        # No email or SMS server is configured in the demo, so every step also tells the
        # in-app inbox: that is where the demo's escalations can be seen arriving.
        policies = settings_service.parse({}).model_dump(mode="json")["policies"]
        for policy in policies.values():
            for step in policy["steps"]:
                step["channels"] = sorted({*step["channels"], "in_app"})
        document = settings_service.parse({"people": people, "policies": policies})
        settings_service.save(
            db_session=db_session, document=document, author="demo", now=now(), comment="demo"
        )
    runtime = RuntimeSource(
        settings, ActiveModel(lambda: store_for(settings.home, settings.secret_key_value))
    )
    swept = EscalationRunner(session_factory=factory, runtime=runtime).sweep()
    out.print(
        f"escalation: {len(people)} people on staff; {swept.started} recent leads escalated "
        "(`leadwatch escalation list`)"
    )


def _demo_user(factory: Any, base: str) -> None:
    """A manager to sign in to the web pages with, linked to the first store's sales manager
    (whose in-app inbox the escalations fill). A new password on every demo run."""
    import secrets

    from sqlalchemy import select

    from leadwatch.users import service as user_service
    from leadwatch.users.models import User

    password = secrets.token_urlsafe(12)
    with unit_of_work(factory) as db_session:
        existing = db_session.scalars(select(User).where(User.email == "manager@demo.example"))
        user = existing.one_or_none()
        if user is None:
            user_service.create_user(
                db_session=db_session,
                email="manager@demo.example",
                password=password,
                role="manager",
                name="Demo Manager",
                person_key="sales_manager-1",
                now=now(),
            )
        else:
            user.password_hash = user_service.hash_password(password)
    out.print(
        f"web pages: {base}/login as [bold]manager@demo.example[/] with password "
        f"[bold]{password}[/]",
        highlight=False,
    )


def _demo_person(key: str, name: str, store: str, roles: list[str]) -> dict[str, Any]:
    handle = "".join(c for c in name.lower().replace(" ", ".") if c.isalnum() or c == ".")
    number = 5_550_100_000 + sum(ord(c) for c in key) * 37 % 100_000
    return {
        "key": key,
        "name": name,
        "roles": roles,
        "dealership": store,
        "email": f"{handle}@example.com",
        "phone": f"+1{number}",
    }


def main() -> None:
    app()


if __name__ == "__main__":
    main()
