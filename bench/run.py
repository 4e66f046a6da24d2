"""`make bench`: run the benchmarks and print a Markdown table for the README.

    python bench/run.py [--rows N] [--only import] [--backends sqlite,postgresql]

Results also go to bench/results/latest.json with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_delivery  # noqa: E402
import bench_escalation  # noqa: E402
import bench_flow  # noqa: E402
import bench_import  # noqa: E402
import bench_import_floor  # noqa: E402
import bench_predict  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the import file")
    parser.add_argument(
        "--only",
        default="import,floor,predict,escalation,delivery,flow",
        help=(
            "comma-separated benchmarks: import, floor (what the database alone takes to "
            "store the import's rows), predict, escalation, delivery, flow"
        ),
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()

    records: list[dict[str, object]] = []
    if "import" in args.only.split(","):
        results = bench_import.run(args.rows, args.backends.split(","))
        records += bench_import.as_records(results)

    floors: list[dict[str, object]] = []
    if "floor" in args.only.split(","):
        floors = bench_import_floor.as_records(
            bench_import_floor.run(args.rows, args.backends.split(","))
        )

    predictions: list[dict[str, object]] = []
    if "predict" in args.only.split(","):
        predictions = bench_predict.run(args.rows)

    escalations: list[dict[str, object]] = []
    if "escalation" in args.only.split(","):
        escalations = bench_escalation.run(args.backends.split(","))

    deliveries: list[dict[str, object]] = []
    if "delivery" in args.only.split(","):
        deliveries = bench_delivery.run(args.backends.split(","))

    flows: list[dict[str, object]] = []
    if "flow" in args.only.split(","):
        flows = bench_flow.run(args.rows)

    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    previous = out / "latest.json"
    if previous.exists():  # a partial run (--only) keeps the other benchmarks' last figures
        earlier = json.loads(previous.read_text())
        records = records or earlier.get("results", [])
        floors = floors or earlier.get("import_floor", [])
        predictions = predictions or earlier.get("prediction", [])
        escalations = escalations or earlier.get("escalation", [])
        deliveries = deliveries or earlier.get("delivery", [])
        flows = flows or earlier.get("flow", [])
    report = {
        "machine": machine(),
        "date": datetime.now(UTC).date().isoformat(),
        "results": records,
        "import_floor": floors,
        "prediction": predictions,
        "escalation": escalations,
        "delivery": deliveries,
        "flow": flows,
    }
    (out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nMachine: {report['machine']}; date: {report['date']}\n")
    print("| benchmark | backend | rows | seconds | rows/s | peak memory |")
    print("|---|---|---:|---:|---:|---:|")
    for r in records:
        print(
            f"| {r['benchmark']} | {r['backend']} | {r['rows']:,} | {r['seconds']} "
            f"| {r['rows_per_second']:,} | {r['peak_mb']} MB |"
        )
    for r in floors:
        print(
            f"| {r['benchmark']}, {r['events']:,} events | {r['backend']} | {r['rows']:,} "
            f"| {r['seconds']} | {r['rows_per_second']:,} | |"
        )
    for p in [*predictions, *escalations, *deliveries, *flows]:
        print(f"- {json.dumps(p)}")


if __name__ == "__main__":
    main()
