"""Benchmark: `leadwatch import` of a large CSV into SQLite and into PostgreSQL.

Each import runs as its own process, exactly as a user would run it, so that its peak memory
(max RSS from wait4) is the import's alone. Reports rows/s and peak memory per backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

WORK = Path(__file__).parent / "work"
PG_ADMIN_URL = os.environ.get(
    "LEADWATCH_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LEADWATCH = Path(sys.executable).parent / "leadwatch"


@dataclass(frozen=True)
class ImportResult:
    backend: str
    rows: int
    seconds: float
    peak_mb: float
    counts: dict[str, int]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def history_file(rows: int, seed: int = 11) -> Path:
    """The generated history, made once and reused by later runs."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"leads-{rows}-{seed}.csv"
    if not path.exists():
        end = "2025-06-30T00:00:00+00:00"
        subprocess.run(
            [str(LEADWATCH), "generate", "--leads", str(rows), "--seed", str(seed)]
            + ["--out", str(path), "--end", end, "--days", "730"],
            check=True,
        )
    return path


def _run_import(path: Path, env: dict[str, str]) -> tuple[float, float, dict[str, int]]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(LEADWATCH), "import", str(path), "--json"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"import failed with status {status}")
    result = json.loads(output)
    counts = {k: result[k] for k in ("imported", "updated", "linked", "rejected")}
    return seconds, usage.ru_maxrss / 1024, counts


def _timed_import(path: Path, env: dict[str, str]) -> tuple[float, float, dict[str, int]]:
    """Create the schema first, so that the timing is the import alone."""
    subprocess.run(
        [str(LEADWATCH), "db", "upgrade"],
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return _run_import(path, env)


def bench_sqlite(path: Path, rows: int) -> ImportResult:
    home = WORK / f"sqlite-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    try:
        env = {"LEADWATCH_HOME": str(home), "LEADWATCH_DATABASE_URL": ""}
        seconds, peak, counts = _timed_import(path, env)
    finally:
        for child in home.iterdir():
            child.unlink()
        home.rmdir()
    return ImportResult("SQLite", rows, seconds, peak, counts)


def bench_postgresql(path: Path, rows: int) -> ImportResult:
    name = f"lw_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        env = {"LEADWATCH_DATABASE_URL": url, "LEADWATCH_HOME": str(WORK / "pg-home")}
        seconds, peak, counts = _timed_import(path, env)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return ImportResult("PostgreSQL", rows, seconds, peak, counts)


def run(rows: int, backends: list[str]) -> list[ImportResult]:
    path = history_file(rows)
    results = []
    for backend in backends:
        bench = bench_sqlite if backend == "sqlite" else bench_postgresql
        result = bench(path, rows)
        results.append(result)
        print(
            f"import {rows:,} rows into {result.backend}: {result.seconds:.1f} s, "
            f"{result.rows_per_second:,.0f} rows/s, peak {result.peak_mb:.0f} MB, {result.counts}",
            flush=True,
        )
    return results


def as_records(results: list[ImportResult]) -> list[dict[str, object]]:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    return [
        {
            "benchmark": "csv import",
            "backend": r.backend,
            "rows": r.rows,
            "seconds": round(r.seconds, 2),
            "rows_per_second": round(r.rows_per_second),
            "peak_mb": round(r.peak_mb),
            "counts": r.counts,
            "at": stamp,
        }
        for r in results
    ]
