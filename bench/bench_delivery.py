"""Delivery benchmarks and fault runs, with real `leadwatch worker` processes and a real
webhook receiver in its own process (bench/webhook_sink.py).

- throughput: N webhook messages in the outbox, W workers started; deliveries per second
  from the first start until every message is sent. Targets: >= 500/s with one worker on
  SQLite, >= 1,000/s with two workers on PostgreSQL.
- kill -9: 10,000 messages; a worker is killed with SIGKILL mid-run and started again;
  counts what was lost (must be 0) and what was repeated (allowed, same idempotency key).
- SMTP outage: messages to an SMTP server that is down for a while, then back; counts
  what was delivered after it returned and what was lost (must be 0).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_escalation import _free_port, _fresh_pg_database
from bench_import import LEADWATCH, WORK

SINK = Path(__file__).parent / "webhook_sink.py"


def _home(name: str, backend: str) -> tuple[Path, dict[str, str], Any]:
    from leadwatch.config import Settings
    from leadwatch.db.engine import make_engine, make_session_factory
    from leadwatch.db.migrate import upgrade

    home = WORK / f"delivery-{name}-{backend}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    url = _fresh_pg_database(f"lw_bench_{name}") if backend == "postgresql" else None
    settings = Settings(home=home, database_url=url, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings)
    upgrade(engine)
    env = {
        **os.environ,
        "LEADWATCH_HOME": str(home),
        "LEADWATCH_ALLOW_PRIVATE_URLS": "true",
        "LEADWATCH_ALLOW_HTTP_URLS": "true",
        "LEADWATCH_WORKER_POLL_SECONDS": "0.05",
        "LEADWATCH_DELIVERY_LEASE_SECONDS": "5",
    }
    env.pop("LEADWATCH_DATABASE_URL", None)
    if url:
        env["LEADWATCH_DATABASE_URL"] = url
    return home, env, (engine, make_session_factory(engine))


def _fill(factory: Any, count: int, address: str, channel: str = "webhook") -> set[str]:
    from leadwatch.db.engine import unit_of_work
    from leadwatch.notifications.models import OutboxMessage

    now = datetime.now(UTC)
    keys = {uuid.uuid4().hex for _ in range(count)}
    rows = [
        {
            "idempotency_key": key,
            "channel": channel,
            "recipient": "crm",
            "recipient_name": "CRM",
            "address": address,
            "subject": f"[HIGH] lead {i}",
            "body": "A lead needs a first contact.",
            "data": {"lead_id": i, "level": "high"},
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "expires_at": now + timedelta(hours=1),
            "created_at": now,
        }
        for i, key in enumerate(sorted(keys))
    ]
    with unit_of_work(factory) as db_session:
        for start in range(0, len(rows), 2_000):
            db_session.execute(OutboxMessage.__table__.insert(), rows[start : start + 2_000])  # type: ignore[attr-defined]
    return keys


def _sent(factory: Any) -> int:
    from sqlalchemy import func, select

    from leadwatch.db.engine import unit_of_work
    from leadwatch.notifications.models import OutboxMessage

    with unit_of_work(factory) as db_session:
        return int(
            db_session.scalar(select(func.count()).where(OutboxMessage.status == "sent")) or 0
        )


def _sink(home: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    keys = home / "received.txt"
    process = subprocess.Popen([sys.executable, str(SINK), str(port), str(keys)])
    import httpx

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/warm", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}/hook", keys


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(LEADWATCH), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait_all_sent(factory: Any, total: int, limit: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if _sent(factory) >= total:
            break
        time.sleep(0.1)
    return time.perf_counter() - started


def throughput(backend: str, workers: int, count: int = 20_000) -> dict[str, Any]:
    home, env, (engine, factory) = _home(f"throughput-{workers}", backend)
    sink, url, _ = _sink(home)
    _fill(factory, count, url)
    processes = [_worker(env) for _ in range(workers)]
    try:
        seconds = _wait_all_sent(factory, count)
        sent = _sent(factory)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        sink.terminate()
        sink.wait(timeout=10)
        engine.dispose()
    return {
        "benchmark": f"webhook deliveries ({backend}, {workers} worker{'s' * (workers > 1)})",
        "messages": count,
        "sent": sent,
        "seconds": round(seconds, 2),
        "per_second": round(sent / seconds),
    }


def kill_nine(backend: str = "sqlite", count: int = 10_000) -> dict[str, Any]:
    home, env, (engine, factory) = _home("kill9", backend)
    sink, url, received_file = _sink(home)
    keys = _fill(factory, count, url)
    try:
        worker = _worker(env)
        while _lines(received_file) < count // 3:
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        at_kill = _lines(received_file)
        worker = _worker(env)
        seconds = _wait_all_sent(factory, count)
        worker.terminate()
        worker.wait(timeout=30)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        engine.dispose()
    received = Counter(line for line in received_file.read_text().split() if line not in {"-"})
    return {
        "benchmark": f"kill -9 a worker mid-run ({backend})",
        "messages": count,
        "received_before_kill": at_kill,
        "lost": len(keys - set(received)),
        "repeated": sum(n - 1 for n in received.values() if n > 1),
        "unknown_keys": len(set(received) - keys),
        "sent_status": _sent(factory),
        "seconds_after_restart": round(seconds, 2),
    }


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def smtp_outage(
    backend: str = "sqlite", count: int = 500, down_seconds: float = 10
) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests.integration.sinks import SmtpSink

    home, env, (engine, factory) = _home("smtp", backend)
    smtp = SmtpSink()
    env = {
        **env,
        "LEADWATCH_SMTP_HOST": "127.0.0.1",
        "LEADWATCH_SMTP_PORT": str(smtp.port),
        "LEADWATCH_SMTP_SECURITY": "none",
        "LEADWATCH_DELIVERY_RETRY_SECONDS": "1",
    }
    keys = _fill(factory, count, "dana@example.com", channel="email")
    worker = _worker(env)
    try:
        time.sleep(down_seconds)
        sent_while_down = _sent(factory)
        smtp.start()
        seconds = _wait_all_sent(factory, count, limit=600)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        smtp.stop()
        engine.dispose()
    received = {m["X-LeadWatch-Idempotency-Key"] for m in smtp.messages}
    return {
        "benchmark": f"SMTP server down {down_seconds:g} s, then back ({backend})",
        "messages": count,
        "sent_while_down": sent_while_down,
        "delivered_after_return": len(received),
        "lost": len(keys - received),
        "seconds_to_drain_after_return": round(seconds, 2),
    }


def run(backends: list[str]) -> list[dict[str, Any]]:
    import json

    results = []
    plans = [("sqlite", 1), ("postgresql", 2), ("postgresql", 1)]
    for backend, workers in plans:
        if backend in backends:
            results.append(throughput(backend, workers))
            print(json.dumps(results[-1]), file=sys.stderr)
    results.append(kill_nine("sqlite"))
    print(json.dumps(results[-1]), file=sys.stderr)
    results.append(smtp_outage("sqlite"))
    print(json.dumps(results[-1]), file=sys.stderr)
    return results
