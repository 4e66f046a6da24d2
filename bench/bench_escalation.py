"""Escalation benchmarks.

- decisions: the pure `decide()` on one core, over a week of times (open and after hours),
  every level and a staffed directory. Target >= 50,000 decisions/s.
- intake: a real `leadwatch serve` on the embedded SQLite (as shipped: two API processes and
  its worker in a child process; also one API process, the worker in a thread, and no worker,
  for comparison) with a trained model, fed 100 leads/s by an open-loop load of 8 senders
  taking turns, each a client with its own connections (also: one client); the latency of
  each POST is the time from intake to the escalation recorded (scored, assessed, started,
  and a critical lead's first messages in the outbox). Target p99 <= 20 ms. Also reported:
  how far delivery was behind when the load ended, and how long it took to catch up.
- intake unit: the same intake request's unit of work in-process (no HTTP), one at a time,
  with a trained model: its time, and how long it holds SQLite's one write lock (from the
  transaction's first write to its commit). Not a target of its own: it shows what bounds
  intake when several API processes share the database (1,000 / lock ms a second at most).
- lateness: escalations with steps falling due over the next 30 s, run by the worker loop
  on the real clock; lateness = when the step ran - when it was due. Target p99 <= 1 s.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench_import import LEADWATCH, PG_ADMIN_URL, WORK
from leadwatch.api_processes import default_count

PEOPLE = [
    {"key": "dana", "name": "Dana Reyes", "email": "dana@example.com", "phone": "+15550100001"},
    {"key": "lee", "name": "Lee Chen", "email": "lee@example.com", "phone": "+15550100003"},
    {
        "key": "sam",
        "name": "Sam Patel",
        "roles": ["sales_manager"],
        "email": "sam@example.com",
        "phone": "+15550100002",
    },
    {"key": "gina", "name": "Gina Lopez", "roles": ["general_manager"], "email": "g@example.com"},
    {"key": "bdc", "name": "BDC Desk", "roles": ["bdc"], "email": "bdc@example.com"},
]


def _ms(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1000.0
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "max_ms": round(float(values.max()), 2),
    }


# ---- pure decisions -------------------------------------------------------------------------


def decisions(count: int = 300_000) -> dict[str, Any]:
    from leadwatch.core.calendar import WorkingHours
    from leadwatch.core.directory import Directory, Person
    from leadwatch.core.escalation import assess, begin, decide
    from leadwatch.core.policy import Channel, LeadFacts, Rules, Thresholds

    directory = Directory(
        Person(
            p["key"],
            p["name"],
            frozenset(p.get("roles", ())),
            addresses={Channel.EMAIL: p["email"], Channel.SMS: p.get("phone", "")},
        )
        for p in PEOPLE
    )
    calendar = WorkingHours.from_spec(
        "America/Chicago",
        {d: ["09:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
        | {"sat": ["09:00-18:00"]},
        ["2025-07-04"],
    )
    rules, thresholds = Rules(), Thresholds()
    rng = random.Random(5)
    start = datetime(2025, 6, 2, tzinfo=UTC)
    cases = []
    for i in range(2_000):
        lead = LeadFacts(
            lead_id=i,
            dealership="Main Store",
            rep=rng.choice(["Dana Reyes", "Lee Chen", None]),
            source="Cars.com",
            make="Toyota",
            model="Camry",
            price=rng.uniform(15_000, 90_000),
        )
        plan = assess(rules, lead, rng.uniform(0.01, 0.29), thresholds=thresholds).plan
        assert plan is not None
        at = start + timedelta(minutes=rng.uniform(0, 7 * 24 * 60))
        state = begin(plan, at - timedelta(hours=1))
        cases.append((state, plan, lead, at))
    actions: dict[str, int] = {}
    rounds = max(1, count // len(cases))
    began = time.process_time()
    for _ in range(rounds):
        for state, plan, lead, at in cases:
            decision = decide(state, plan, lead, calendar=calendar, directory=directory, now=at)
    seconds = time.process_time() - began
    for state, plan, lead, at in cases:
        decision = decide(state, plan, lead, calendar=calendar, directory=directory, now=at)
        actions[decision.action.value] = actions.get(decision.action.value, 0) + 1
    total = rounds * len(cases)
    return {
        "benchmark": "escalation decisions (pure, one core)",
        "decisions": total,
        "cpu_seconds": round(seconds, 2),
        "decisions_per_second": round(total / seconds),
        "mix": actions,
    }


# ---- intake to escalation recorded ----------------------------------------------------------


SENDERS = 8  # clients posting leads, each with its own connections


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings_file(home: Path, thresholds: dict[str, float] | None) -> Path:
    path = home / "escalation-settings.json"
    document: dict[str, Any] = {"people": PEOPLE}
    if thresholds:
        document["thresholds"] = thresholds
    # Always open, so that every escalated lead is notified or scheduled, never held.
    week = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    document["working_hours"] = {"default": {"weekly": {d: ["00:00-24:00"] for d in week}}}
    path.write_text(json.dumps(document))
    return path


def _prepare_home(home: Path, history_leads: int) -> tuple[dict[str, str], str]:
    """A home with demo history, a trained model, staffed settings and a token: made once
    (the demo takes a minute or two), then copied for each run."""
    template = WORK / f"escalation-template-{history_leads}"
    env = {**os.environ, "LEADWATCH_HOME": str(template), "LEADWATCH_API_DOCS": "false"}
    env.pop("LEADWATCH_DATABASE_URL", None)
    if not (template / "ready").exists():
        shutil.rmtree(template, ignore_errors=True)
        template.mkdir(parents=True)
        run = [str(LEADWATCH), "demo", "--no-serve", "--leads", str(history_leads)]
        subprocess.run(run, env=env, check=True, capture_output=True)
        # Lines a busy store escalates most leads with: the worst case for intake latency.
        settings = _settings_file(template, {"critical": 0.5, "high": 0.6, "medium": 0.7})
        subprocess.run(
            [str(LEADWATCH), "settings", "import", str(settings), "--author", "bench"],
            env=env,
            check=True,
            capture_output=True,
        )
        (template / "ready").touch()
    shutil.rmtree(home, ignore_errors=True)
    if home.exists():  # a process that was stopping still had a file open: once more
        time.sleep(2)
        shutil.rmtree(home)
    shutil.copytree(template, home)
    env["LEADWATCH_HOME"] = str(home)
    made = subprocess.run(
        [str(LEADWATCH), "token", "create", "bench"], env=env, check=True, capture_output=True
    )
    token = made.stdout.decode().strip().rsplit(" ", 1)[-1]
    return env, token


def intake(
    rate: float = 100.0,
    seconds: float = 30.0,
    history_leads: int = 20_000,
    worker: str = "child",
    api_processes: int | None = None,
    senders: int = SENDERS,
) -> dict[str, Any]:
    """``worker``: "child" is the embedded default, `serve` with its worker in a child
    process; "thread" runs that worker in a thread of `serve` instead; "process" runs
    `serve --no-worker` beside a `leadwatch worker` started by hand; "none" runs `serve
    --no-worker` alone (nothing delivers: the server's own share of the latency).
    ``api_processes``: `serve --processes` (None: its default). ``senders``: how many clients
    take turns posting, each with its own connections (lead providers and CRMs are separate
    systems); 1 is a single client whose pool shares a few keep-alive connections."""
    home = WORK / "escalation-intake"
    env, token = _prepare_home(home, history_leads)
    port = _free_port()
    serve = [str(LEADWATCH), "serve", "--port", str(port)]
    serve += {"child": [], "thread": ["--worker-in", "thread"]}.get(worker, ["--no-worker"])
    if api_processes is not None:
        serve += ["--processes", str(api_processes)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen(serve, env=env, **quiet)]  # type: ignore[call-overload]
    if worker == "process":
        processes.append(subprocess.Popen([str(LEADWATCH), "worker"], env=env, **quiet))  # type: ignore[call-overload]
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    open_messages = "SELECT count(*) FROM outbox WHERE status IN ('pending', 'retry', 'sending')"
    try:
        _wait_until_up(base)
        latencies, failures = _drive(base, headers, rate, seconds, senders)
        ended = time.perf_counter()
        behind = _count(home, open_messages)
        while (
            worker != "none" and _count(home, open_messages) and time.perf_counter() < ended + 300
        ):
            time.sleep(0.2)
        drained = round(time.perf_counter() - ended, 1)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    escalated = _count(
        home,
        "SELECT count(*) FROM escalations WHERE lead_id IN "
        "(SELECT id FROM leads WHERE source_system = 'bench')",
    )
    messages = _count(home, "SELECT count(*) FROM outbox")
    return {
        "benchmark": "intake to escalation recorded (SQLite, " + _WORKER_SAYS[worker] + ")",
        "api_processes": api_processes or default_count(),
        "senders": senders,
        "rate_per_second": rate,
        "requests": len(latencies) + failures,
        "failures": failures,
        "escalated": escalated,
        "outbox_messages": messages,
        # Delivery during the run: messages not yet sent when the last request was answered,
        # and how long the worker took after that to send (or give up on) every one.
        "outbox_open_when_load_ended": behind,
        "delivery_done_after_load_s": drained if worker != "none" else None,
        **_ms(latencies),
    }


def intake_unit(count: int = 500, history_leads: int = 20_000) -> dict[str, Any]:
    """An intake request's unit of work (`leads.api.ingest_body`: parse, store, score,
    escalate, six messages in the outbox), in this process, one after another."""
    from leadwatch.app import create_app
    from leadwatch.config import Settings
    from leadwatch.db.engine import WriteGate
    from leadwatch.leads.api import ingest_body

    home = WORK / "escalation-unit"
    _prepare_home(home, history_leads)
    settings = Settings(home=home, database_url=None, _env_file=None)  # type: ignore[call-arg]
    app = create_app(settings)
    state = app.state
    held: list[float] = []
    taken = [0.0]
    acquire, release = WriteGate.acquire, WriteGate.release

    def timed_acquire(gate: WriteGate) -> None:
        acquire(gate)
        if gate._depth == 1:
            taken[0] = time.perf_counter()

    def timed_release(gate: WriteGate) -> None:
        if gate._depth == 1:
            held.append(time.perf_counter() - taken[0])
        release(gate)

    def one(i: int) -> None:
        lead = {
            "source_system": "bench",
            "external_id": f"U-{i}",
            "created_at": datetime.now(UTC).isoformat(),
            "rep": "Dana Reyes",
            "lead_source": "Cars.com",
            "vehicle": {"make": "Toyota", "model": "Camry", "price": 20_000 + i % 50 * 1_000},
            "customer": {"name": f"Shopper {i}", "email": f"unit{i}@example.com"},
        }
        body = json.dumps(lead).encode()
        with state.intake_gate.intake():
            result = ingest_body(
                body, "json", settings, state.session_factory, state.clock, state.escalation_runtime
            )
        if result.imported != 1:
            raise RuntimeError(f"intake refused the benchmark's lead: {result}")

    times: list[float] = []
    WriteGate.acquire, WriteGate.release = timed_acquire, timed_release  # type: ignore[method-assign]
    try:
        for i in range(50):  # warm-up: the model loaded, statements compiled
            one(i)
        held.clear()
        gc.collect()
        gc.freeze()
        for i in range(50, 50 + count):
            began = time.perf_counter()
            one(i)
            times.append(time.perf_counter() - began)
    finally:
        WriteGate.acquire, WriteGate.release = acquire, release  # type: ignore[method-assign]
        gc.unfreeze()
        app.state.engine.dispose()
    messages = _count(
        home,
        "SELECT count(*) FROM outbox WHERE lead_id IN "
        "(SELECT id FROM leads WHERE source_system = 'bench')",
    )
    unit, lock = _ms(times), _ms(held)
    return {
        "benchmark": "intake unit of work, in-process (SQLite, no HTTP)",
        "requests": count,
        "outbox_messages": messages,
        "write_locks_per_request": round(len(held) / count, 2),
        **unit,
        **{f"lock_{name}": value for name, value in lock.items()},
    }


WARM_SECONDS = 5.0  # at the measured rate, before the measured seconds


_WORKER_SAYS = {
    "child": "`serve` as shipped: its worker in a child process",
    "thread": "`serve --worker-in thread`",
    "process": "`serve --no-worker` beside `leadwatch worker`",
    "none": "no worker: the server alone",
}


def _wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("leadwatch serve did not start")


def _drive(
    base: str, headers: dict[str, str], rate: float, seconds: float, senders: int = SENDERS
) -> tuple[list[float], int]:
    """Open loop: request i is sent at start + i / rate, whatever the earlier ones do, by
    sender i % senders."""
    total = int(rate * seconds)
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    clients = [httpx.Client(base_url=base, headers=headers, timeout=30) for _ in range(senders)]
    rng = random.Random(9)
    sources = ["Cars.com", "AutoTrader", "Website", "Facebook", "TrueCar"]
    makes = [("Toyota", "Camry"), ("Honda", "Civic"), ("Ford", "F-150"), ("BMW", "X5")]

    def send(i: int, due: float, measured: bool = True) -> None:
        nonlocal failures
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        make, model = makes[i % len(makes)]
        lead = {
            "source_system": "bench",
            "external_id": f"B-{i}",
            "created_at": datetime.now(UTC).isoformat(),
            "rep": rng.choice(["Dana Reyes", "Lee Chen"]),
            "lead_source": sources[i % len(sources)],
            "vehicle": {"make": make, "model": model, "price": 20_000 + (i % 50) * 1_000},
            "customer": {"name": f"Shopper {i}", "email": f"shopper{i}@example.com"},
        }
        began = time.perf_counter()
        try:
            status = clients[i % senders].post("/api/v1/leads", json=lead).status_code
        except httpx.HTTPError:  # a timeout or a refused connection is a failure too
            status = 0
        took = time.perf_counter() - began
        with lock:
            if status != 201:
                failures += 1
            elif measured:
                latencies.append(took)

    # Warm-up, not measured: the model loaded, the first connections made, and the worker
    # (a child process that imports, loads the model and runs its first sweep) at work.
    for i in range(20):
        clients[i % senders].post(
            "/api/v1/leads", json={"external_id": f"W-{i}", "created_at": "2025-01-01"}
        )
    warm = int(rate * WARM_SECONDS)
    # The client's own full garbage collections would pause it, and show as slow requests:
    # its heap (large after the decisions benchmark in the same process) is set aside first.
    gc.collect()
    gc.freeze()
    start = time.perf_counter() + 0.5
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            for i in range(warm + total):
                pool.submit(send, i, start + i / rate, i >= warm)
    finally:
        gc.unfreeze()
    for client in clients:
        client.close()
    return latencies, failures


def _count(home: Path, sql: str) -> int:
    import sqlite3

    with sqlite3.connect(home / "leadwatch.db") as db:
        return int(db.execute(sql).fetchone()[0])


# ---- lateness of due steps ------------------------------------------------------------------


def lateness(backend: str, steps: int = 1_500, spread_seconds: float = 30.0) -> dict[str, Any]:
    """Steps due over the next ``spread_seconds``, run by one worker loop on the real clock."""
    from sqlalchemy import func, select, update

    from leadwatch.config import Settings
    from leadwatch.db.engine import make_engine, make_session_factory, unit_of_work
    from leadwatch.db.migrate import upgrade
    from leadwatch.escalations import service
    from leadwatch.escalations import settings as settings_service
    from leadwatch.escalations.jobs import EscalationRunner, RuntimeSource
    from leadwatch.escalations.models import Escalation, EscalationDecision
    from leadwatch.leads.models import Dealership, Lead
    from leadwatch.leads.scoring import ActiveModel
    from leadwatch.prediction.artifacts import store_for

    home = WORK / f"escalation-lateness-{backend}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    url = None
    if backend == "postgresql":
        url = _fresh_pg_database("lw_bench_lateness")
    settings = Settings(home=home, database_url=url, _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings)
    upgrade(engine)
    factory = make_session_factory(engine)
    runtime = RuntimeSource(settings, ActiveModel(lambda: store_for(home, None)))
    now = datetime.now(UTC)
    with unit_of_work(factory) as db_session:
        settings_service.save(
            db_session=db_session,
            document=settings_service.parse(_settings_file(home, None).read_text()),
            author="bench",
            now=now,
        )
        dealer = Dealership(name="Main Store", timezone="America/Chicago")
        db_session.add(dealer)
        db_session.flush()
        leads = [
            Lead(
                source_system="bench",
                external_id=f"L-{i}",
                dealership_id=dealer.id,
                created_at=now - timedelta(minutes=1),
                rep="Dana Reyes",
                status="new",
                sale_probability_14d=0.1,
                sale_probability_30d=0.25,  # medium: first step after 15 minutes
            )
            for i in range(steps)
        ]
        db_session.add_all(leads)
        db_session.flush()
        ids = [lead.id for lead in leads]
    for start in range(0, len(ids), 500):
        with unit_of_work(factory) as db_session:
            service.watch(
                db_session=db_session,
                lead_ids=ids[start : start + 500],
                runtime=runtime(db_session),
                now=now,
            )
    # Re-time the first steps: due at random moments over the next spread_seconds.
    origin = datetime.now(UTC) + timedelta(seconds=2)
    rng = random.Random(3)
    with unit_of_work(factory) as db_session:
        esc_ids = list(db_session.scalars(select(Escalation.id)))
        due = {
            esc_id: origin + timedelta(seconds=rng.uniform(0, spread_seconds)) for esc_id in esc_ids
        }
        for esc_id, at in due.items():
            db_session.execute(update(Escalation).where(Escalation.id == esc_id).values(due_at=at))
    runner = EscalationRunner(session_factory=factory, runtime=runtime, sweep_seconds=3600)
    runner._last_sweep = time.monotonic()  # measure the due-step loop alone
    stop = threading.Event()
    thread = threading.Thread(target=runner.serve_forever, args=(stop,))
    thread.start()
    deadline = time.monotonic() + spread_seconds + 30
    while time.monotonic() < deadline:
        time.sleep(1)
        with unit_of_work(factory) as db_session:
            done = db_session.scalar(
                select(func.count()).where(EscalationDecision.action == "notify")
            )
        if done is not None and done >= len(due):
            break
    stop.set()
    thread.join()
    with unit_of_work(factory) as db_session:
        ran = db_session.execute(
            select(EscalationDecision.escalation_id, EscalationDecision.at).where(
                EscalationDecision.action == "notify"
            )
        ).all()
    engine.dispose()
    late = [(at - due[esc_id]).total_seconds() for esc_id, at in ran]
    return {
        "benchmark": f"lateness of due steps ({backend}, one worker loop)",
        "steps": len(due),
        "ran": len(ran),
        "spread_seconds": spread_seconds,
        **_ms(late),
    }


def _fresh_pg_database(name: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def run(backends: list[str]) -> list[dict[str, Any]]:
    results = [decisions(), intake_unit()]
    print(json.dumps(results[:2]), file=sys.stderr)
    for rate, worker, api_processes, senders in [
        (100.0, "child", None, SENDERS),  # the target, as shipped
        (100.0, "child", None, 1),  # one client's few keep-alive connections
        (100.0, "child", 1, SENDERS),  # one API process
        (40.0, "child", None, SENDERS),
        (100.0, "thread", 1, SENDERS),  # the worker in the server's own process
        (100.0, "none", None, SENDERS),  # the server's own share
    ]:
        results.append(
            intake(rate=rate, worker=worker, api_processes=api_processes, senders=senders)
        )
        print(json.dumps(results[-1]), file=sys.stderr)
    for backend in backends:
        results.append(lateness(backend))
        print(json.dumps(results[-1]), file=sys.stderr)
    return results
