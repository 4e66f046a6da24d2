"""CLI commands of the sale-probability model: train, evaluate, score, models list/activate."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadwatch.cli_support import err, fail, out
from leadwatch.config import Settings

if TYPE_CHECKING:
    import pandas as pd

    from leadwatch.prediction.artifacts import ModelStore

models_app = typer.Typer(
    help="Trained model files: list them, choose the active one.", no_args_is_help=True
)
SCORE_CHUNK = 100_000


def _store(settings: Settings) -> ModelStore:
    from leadwatch.prediction.artifacts import store_for

    return store_for(settings.home, settings.secret_key_value)


def _canonical_columns(path: Path, mapping: Path | None) -> dict[str, str]:
    """Their headings -> canonical names, as the importer reads them (aliases, mapping file)."""
    from leadwatch.intake.csv_mapping import MappingError, load_mapping_file, resolve_header

    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    try:
        columns = resolve_header(header, load_mapping_file(mapping) if mapping else None)
    except MappingError as exc:
        raise fail(f"{path}: {exc}") from None
    return {header[index]: name for name, index in columns.fields.items()}


def read_leads(
    path: Path, mapping: Path | None = None, *, wanted: Callable[[str], bool] | None = None
) -> pd.DataFrame:
    """A lead CSV under canonical column names (only the headings ``wanted`` keeps), its ISO
    times already parsed (see `prediction.frames.read_csv_chunks`)."""
    import pandas as pd

    from leadwatch.prediction.frames import read_csv_chunks

    if not path.is_file():
        raise fail(f"{path}: no such file")
    renames = _canonical_columns(path, mapping)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    headings = [h for h in header if wanted is None or wanted(h)]
    try:
        chunks = list(read_csv_chunks(path, columns=headings, renames=renames))
    except ValueError as exc:
        raise fail(f"{path}: {exc}") from None
    if not chunks:
        return pd.DataFrame(columns=[renames.get(h, h) for h in headings])
    return pd.concat(chunks, ignore_index=True)


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--as-of {value!r} is not an ISO 8601 date (e.g. 2025-06-30T00:00)") from None


def train_command(
    data: Annotated[Path, typer.Option(help="Lead history CSV (canonical or CRM headings).")],
    model: Annotated[
        str, typer.Option(help="random_forest, gradient_boosting, logistic or auto.")
    ] = "gradient_boosting",
    as_of: Annotated[
        str | None, typer.Option(help="When the history was taken (default: its latest date).")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated feature columns (default: the six).")
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="Column mapping file.")] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Column with an explicit 0/1 outcome per lead (0/1, true/false, yes/no): "
            "predict P(outcome) instead of sales within 14 and 30 days; the leads are split "
            "by creation time only."
        ),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Derive the risk levels from a threshold chosen by cost, capacity or f1 "
            "(default: keep critical 0.10 / high 0.20 / medium 0.30)."
        ),
    ] = None,
    per_day: Annotated[float, typer.Option(help="--threshold capacity: escalations a day.")] = 20.0,
    sale_value: Annotated[float, typer.Option(help="--threshold cost: value of a sale.")] = 2_500.0,
    escalation_cost: Annotated[
        float, typer.Option(help="--threshold cost: cost of one escalation.")
    ] = 15.0,
    save_rate: Annotated[
        float, typer.Option(help="--threshold cost: share of escalated lost sales saved.")
    ] = 0.1,
    rescore: Annotated[
        bool,
        typer.Option(help="Re-score the open leads in the database with the new model."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train on lead history, validate out of time, save and activate the model, and re-score
    the open leads in the database with it."""
    from leadwatch.cli_support import load_settings
    from leadwatch.prediction.features import DEFAULT_FEATURES
    from leadwatch.prediction.predictor import LeadOutcomePredictor
    from leadwatch.prediction.splits import HistoryTooShortError

    settings = load_settings()
    chosen = tuple(f.strip() for f in features.split(",")) if features else DEFAULT_FEATURES
    try:
        predictor = LeadOutcomePredictor(model, features=chosen, n_jobs=2)
    except ValueError as exc:
        raise fail(str(exc)) from None
    with err.status(f"reading {data}..."):
        frame = read_leads(data, mapping)
    try:
        doing = f"training {model} on {len(frame):,} leads"
        with err.status(f"{doing}...") as status:
            report = predictor.train(
                frame,
                as_of=_as_of(as_of),
                target=target,
                progress=lambda stage, done: status.update(f"{doing}: {stage} ({done:.0%})..."),
            )
    except (HistoryTooShortError, KeyError, ValueError) as exc:
        raise fail(f"{data}: {exc}") from None
    chosen_threshold = None
    if threshold is not None:
        try:
            chosen_threshold = predictor.optimize_threshold(
                frame,
                method=threshold,
                per_day=per_day,
                sale_value=sale_value,
                escalation_cost=escalation_cost,
                save_rate=save_rate,
            )
        except ValueError as exc:
            raise fail(f"--threshold {threshold}: {exc}") from None
    info = predictor.save(_store(settings))
    result = report.as_dict()
    result["risk_levels"] = dict(predictor.risk_levels)
    if rescore:
        result["rescored_open_leads"] = _rescore(settings, predictor)
    if chosen_threshold is not None:
        result["threshold"] = chosen_threshold
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    _print_report(result)
    levels = result["risk_levels"]
    out.print(
        f"risk levels on P30: critical < {levels['critical']:.3f} <= high < {levels['high']:.3f}"
        f" <= medium < {levels['medium']:.3f} <= low"
        + (f" (threshold by {threshold})" if threshold else "")
    )
    out.print(f"saved and activated model [bold]{info.version}[/] ({info.path})")
    if rescore:
        out.print(f"re-scored {result['rescored_open_leads']:,} open leads in the database")


def _rescore(settings: Settings, predictor: Any) -> int:
    """Open leads carry the new model's score at once, not only at their next intake."""
    from leadwatch.cli import _engine
    from leadwatch.cli_support import now
    from leadwatch.db.engine import make_session_factory, unit_of_work
    from leadwatch.leads.scoring import score_open_leads

    factory = make_session_factory(_engine(settings))
    with err.status("re-scoring open leads..."), unit_of_work(factory) as db_session:
        return score_open_leads(db_session=db_session, predictor=predictor, now=now())


def _print_report(report: dict[str, Any]) -> None:
    target = report.get("target")
    out.print(
        f"[bold]{report['model_type']}[/] trained on {report['slices']['train']:,} leads, "
        f"calibrated on {report['slices']['calibration']:,}, validated on "
        f"{report['slices']['validation']:,} newer leads (as of {report['as_of']})"
    )
    if target:
        out.print(
            f"explicit outcome [bold]{target}[/]: P({target} = 1) is in outcome_probability "
            "and repeated in both sale_probability columns",
            highlight=False,
        )
    rows = report["validation"].get("rows") or []
    table = Table("metric", "horizon", "model", "naive baseline", title="Out-of-time validation")
    for metric, horizon, model, baseline in rows:
        table.add_row(str(metric), str(horizon), _fmt(model), _fmt(baseline))
    out.print(table)
    if report.get("candidates_log_loss") and len(report["candidates_log_loss"]) > 1:
        horizon = f"target {target}" if target else "30 d"
        out.print(f"candidates (validation log loss, {horizon}): {report['candidates_log_loss']}")
    _print_reliability(report["validation"], "target" if target else "30d")
    importance = Table("feature", "log-loss rise when shuffled", title="Feature importance")
    for name, value in report.get("feature_importance", {}).items():
        importance.add_row(name, f"{value:+.5f}")
    out.print(importance)


def _print_reliability(validation: dict[str, Any], horizon: str) -> None:
    """Predicted against observed, bin by bin, with bars: calibration at a glance."""
    bins = (validation.get("model", {}).get(horizon) or {}).get("reliability") or []
    table = Table(
        "predicted", "leads", "mean predicted", "observed", "", title=f"Reliability ({horizon})"
    )
    for row in bins:
        if not row.get("count"):
            continue
        predicted, observed = row["mean_predicted"], row["observed_rate"]
        bars = f"[cyan]{'█' * round(predicted * 40)}[/]\n[green]{'█' * round(observed * 40)}[/]"
        table.add_row(
            f"{row['bin_lower']:.0%}-{row['bin_upper']:.0%}",
            f"{row['count']:,}",
            f"{predicted:.1%}",
            f"{observed:.1%}",
            bars,
        )
    if table.row_count:
        out.print(table)
        out.print("[cyan]█ predicted[/]  [green]█ observed[/]")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def evaluate_command(
    data: Annotated[Path, typer.Option(help="Lead history CSV with outcomes.")],
    as_of: Annotated[str | None, typer.Option(help="As-of date (default: latest in data).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: active).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Column mapping file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Measure a saved model on leads whose 30-day window has closed."""
    from leadwatch.cli_support import load_settings

    predictor = _load(load_settings(), version)
    frame = read_leads(data, mapping)
    try:
        report = predictor.evaluate(frame, as_of=_as_of(as_of))
    except (KeyError, ValueError) as exc:
        raise fail(f"{data}: {exc}") from None
    if as_json:
        sys.stdout.write(json.dumps(report, default=str) + "\n")
        return
    table = Table("metric", "horizon", "model", "naive baseline", title=f"Evaluation on {data}")
    for metric, horizon, model, baseline in report.get("rows", []):
        table.add_row(str(metric), str(horizon), _fmt(model), _fmt(baseline))
    out.print(table)


def _load(settings: Settings, version: str | None) -> Any:
    from leadwatch.prediction.artifacts import ModelFileError
    from leadwatch.prediction.predictor import LeadOutcomePredictor

    try:
        return LeadOutcomePredictor.load(version, store=_store(settings))
    except ModelFileError as exc:
        raise fail(f"{exc} (train one with `leadwatch train --data FILE`)") from None


def score_command(
    file: Annotated[Path, typer.Argument(help="Leads CSV to score.")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV to write.")],
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this moment (default: latest in the file).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: active).")] = None,
    mapping: Annotated[Path | None, typer.Option(help="Column mapping file.")] = None,
    factors: Annotated[bool, typer.Option(help="Explain each lead's top factors.")] = True,
) -> None:
    """Write FILE's columns plus sale_probability_14d, sale_probability_30d, risk_level and
    top_factors to --out, in chunks (any file size)."""
    import pandas as pd

    from leadwatch.cli_support import load_settings
    from leadwatch.prediction.frames import latest_time, prepare, read_csv_chunks

    predictor = _load(load_settings(), version)
    renames = _canonical_columns(file, mapping)
    moment = _as_of(as_of)
    if moment is None:  # one pass over the time columns only: the file's latest date
        times = [c for c, name in renames.items() if name.endswith("_at")]
        try:
            chunks = list(read_csv_chunks(file, columns=times, renames=renames))
            frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
            moment = latest_time(prepare(frame)).to_pydatetime()
        except (KeyError, ValueError) as exc:
            raise fail(f"{file}: {exc}") from None
    with file.open("rb") as handle:  # for the progress bar; quoted line breaks overcount
        total = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 22), b"")) - 1
    needed = _scoring_columns(renames, predictor)
    with Progress(
        TextColumn("[bold]scoring[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("leads", total=max(total, 0))

        def score(chunk: pd.DataFrame) -> pd.DataFrame:
            try:
                scored: pd.DataFrame = predictor.predict(
                    chunk.rename(columns=renames), as_of=moment, explain_top=factors
                )
            except (KeyError, ValueError) as exc:
                raise fail(f"{file}: {exc}") from None
            return scored.iloc[:, len(chunk.columns) :]

        written = _score_by_appending(file, out_file, needed, renames, score, progress, task)
        if written is None:  # records span lines (quoted line breaks) or blank lines: rewrite
            progress.update(task, completed=0)
            written = _score_by_rewriting(file, out_file, score, progress, task)
    out.print(f"scored {written:,} leads as of {moment:%Y-%m-%d %H:%M} into {out_file}")


def _scoring_columns(renames: dict[str, str], predictor: Any) -> list[str]:
    """The input columns the model reads (their headings), so the rest is never parsed."""
    from leadwatch.prediction.frames import TIME_COLUMNS

    wanted = {*TIME_COLUMNS, "rep", "vehicle_make", "vehicle_model", "vehicle_price"}
    wanted |= {"lead_source", "dealership", *predictor.features}
    if getattr(predictor, "target_", None):
        wanted.add(predictor.target_)
    return [heading for heading, name in renames.items() if name in wanted] + [
        name for name in predictor.features if name not in renames.values()
    ]


def _score_by_appending(
    file: Path,
    out_file: Path,
    needed: list[str],
    renames: dict[str, str],
    score: Any,
    progress: Any,
    task: Any,
) -> int | None:
    """Score only the columns the model reads and append the scores to the input's own lines,
    untouched. Needs one line per record; returns None (output unusable) when that fails."""
    from leadwatch.prediction.frames import read_csv_chunks

    written = 0
    with (
        file.open(encoding="utf-8-sig", newline="") as source,
        out_file.open("w", encoding="utf-8", newline="") as target,
    ):
        header = source.readline().rstrip("\r\n")
        columns = read_csv_chunks(file, columns=needed, renames=renames)
        for number, chunk in enumerate(columns):
            added = score(chunk)
            if number == 0:
                target.write(header + "," + ",".join(_csv_field(c) for c in added.columns) + "\n")
            suffixes = _csv_suffixes(added)
            lines = [line.rstrip("\r\n") for line in islice(source, len(suffixes))]
            if len(lines) < len(suffixes) or not all(map(str.strip, lines)):
                return None  # a blank line the reader skipped: lines and records part ways
            target.writelines(map(str.__add__, lines, suffixes))
            written += len(added)
            progress.update(task, completed=written)
        if any(rest.strip() for rest in source):
            return None  # more lines than records: some record spans lines
    return written


def _score_by_rewriting(file: Path, out_file: Path, score: Any, progress: Any, task: Any) -> int:
    import pandas as pd

    written = 0
    chunks = pd.read_csv(
        file, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=SCORE_CHUNK
    )
    for number, chunk in enumerate(chunks):
        scored = pd.concat([chunk, score(chunk)], axis=1)
        scored.to_csv(out_file, mode="w" if number == 0 else "a", header=number == 0, index=False)
        written += len(scored)
        progress.update(task, completed=written)
    return written


def _csv_suffixes(added: pd.DataFrame) -> list[str]:
    """ ",v1,v2,...\n" per row, built column-wise in Arrow (quoting only text that needs it;
    numbers in their shortest exact form, missing values empty)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts: list[pa.Array] = [pa.nulls(len(added), pa.string()).fill_null("")]
    for column in added.columns:
        values = pa.array(added[column], from_pandas=True)
        text = pc.cast(values, pa.string()).fill_null("")
        needs_quotes = pc.match_substring_regex(text, '[,"\r\n]')
        if pc.any(needs_quotes).as_py():
            quoted = pc.binary_join_element_wise(
                '"', pc.replace_substring(text, '"', '""'), '"', ""
            )
            text = pc.if_else(needs_quotes, quoted, text)
        parts.append(text)
    joined = pc.binary_join_element_wise(*parts, ",")
    lines: list[str] = pc.binary_join_element_wise(joined, "\n", "").to_pylist()
    return lines


def _csv_field(value: object) -> str:
    text = "" if value is None else str(value)
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


@models_app.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Saved models, newest first; the active one is marked."""
    from leadwatch.cli_support import load_settings

    store = _store(load_settings())
    active = store.active_version()
    infos = store.list()
    if as_json:
        rows = [
            {
                "version": i.version,
                "active": i.version == active,
                "created_at": i.created_at,
                "sha256": i.sha256,
                "metadata": i.metadata,
            }
            for i in infos
        ]
        sys.stdout.write(json.dumps(rows, default=str) + "\n")
        return
    table = Table("", "version", "created", "type", "as of", "AUC 30 d", "log loss 30 d")
    for info in infos:
        report = info.metadata.get("report") or {}
        metrics = (report.get("validation") or {}).get("model", {})
        # Target-mode models have one "horizon", their outcome: shown in the 30-day columns.
        model30 = metrics.get("30d") or metrics.get("target") or {}
        table.add_row(
            "*" if info.version == active else "",
            info.version,
            info.created_at,
            str(info.metadata.get("model_type", "?")),
            str(info.metadata.get("as_of", "?")),
            _fmt(model30.get("roc_auc")),
            _fmt(model30.get("log_loss")),
        )
    out.print(table)
    for problem in store.problems():
        err.print(f"[yellow]skipped[/] {problem}")


@models_app.command("activate")
def models_activate(
    version: Annotated[str, typer.Argument(help="Version from `models list`.")],
) -> None:
    """Make VERSION the model that scores leads (it is verified first)."""
    from leadwatch.cli_support import load_settings
    from leadwatch.prediction.artifacts import ModelFileError

    try:
        info = _store(load_settings()).activate(version)
    except ModelFileError as exc:
        raise fail(str(exc)) from None
    out.print(f"active model: {info.version} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
