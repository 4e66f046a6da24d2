"""Benchmark of the lead flow analysis (`leadwatch analyze`), target: 1,000,000 leads analysed
in <= 10 s on 2 cores.

- read: the generated history CSV (made once, shared with the import benchmark) into a frame
  as `leadwatch analyze --data` reads it (the columns the analysis uses);
- analysis: `analyze_flow` on that frame (parsing the time columns included), best and median
  of three runs;
- report: the JSON and the standalone HTML report from the result;
- end to end: `leadwatch analyze --data FILE --json` as its own process (seconds, peak memory).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_import import LEADWATCH, history_file

RUNS = 3
TARGET_SECONDS = 10.0


def _timed_process(args: list[str]) -> tuple[float, float, bytes]:
    started = time.perf_counter()
    process = subprocess.Popen(
        args, env={**os.environ, "LEADWATCH_DATABASE_URL": ""}, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args[1:3])} failed with status {status}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, output


def run(rows: int) -> list[dict[str, Any]]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    from leadwatch.analysis import analyze_flow
    from leadwatch.cli_analysis import read_flow_csv
    from leadwatch.web.flow_report import render_html

    path = history_file(rows)
    started = time.perf_counter()
    frame = read_flow_csv(path)
    read_seconds = time.perf_counter() - started
    print(f"read {len(frame):,} leads: {read_seconds:.2f} s", flush=True)

    timings = []
    report = None
    for _ in range(RUNS):
        started = time.perf_counter()
        report = analyze_flow(frame)
        timings.append(time.perf_counter() - started)
    assert report is not None
    print(f"analyse {len(frame):,} leads: {', '.join(f'{t:.2f}' for t in timings)} s", flush=True)

    started = time.perf_counter()
    json.dumps(report.as_dict())
    html = render_html(report)
    render_seconds = time.perf_counter() - started

    seconds, peak, output = _timed_process(
        [str(LEADWATCH), "analyze", "--data", str(path), "--json"]
    )
    assert json.loads(output)["leads"] == report.leads
    print(f"leadwatch analyze --json end to end: {seconds:.1f} s, peak {peak:.0f} MB", flush=True)
    best = min(timings)
    return [
        {
            "benchmark": "lead flow analysis",
            "rows": rows,
            "cores": os.cpu_count(),
            "read_csv_seconds": round(read_seconds, 2),
            "analysis_seconds_best": round(best, 2),
            "analysis_seconds_median": round(statistics.median(timings), 2),
            "target_seconds": TARGET_SECONDS,
            "within_target": best <= TARGET_SECONDS,
            "json_and_html_seconds": round(render_seconds, 2),
            "html_kb": round(len(html.encode()) / 1024),
            "recommendations": len(report.recommendations),
        },
        {
            "benchmark": "leadwatch analyze --json (own process)",
            "rows": rows,
            "seconds": round(seconds, 1),
            "peak_mb": round(peak),
        },
    ]
