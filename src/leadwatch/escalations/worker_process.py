"""`leadwatch serve`'s worker in a child process of its own.

The worker (due steps, the sweep, delivery) and the API used to share one process, and so
one interpreter lock: on a busy day a shopper's intake request queued behind the worker's
Python work. As a child process the worker has an interpreter of its own, runs on CPU time
the API leaves (SCHED_IDLE), and still gives way to intake at the database (`WriteGate`). On
a saturated server it delivers little until the load eases; nothing is lost meanwhile.

The child is started with "spawn" (a clean interpreter, no copied locks or connections), is
given the server's settings, stops when asked or when the server is gone, and is started
again if it dies (its work is durable in the database, so nothing is lost either way).
"""

from __future__ import annotations

import logging
import signal
import threading

from leadwatch.config import Settings
from leadwatch.processes import Supervised, leave_when_orphaned, settle_heap

log = logging.getLogger(__name__)

__all__ = ["NICE", "WorkerProcess", "run_child", "settle_heap"]

# Below the API: the worker runs in the SCHED_IDLE class, on CPU time the API does not want,
# and an API process waking up takes its core back at once. At nice 15 alone (the fallback
# off Linux) the worker kept about 4 % of a contended core, and its running slices still held
# intake up: 100 leads/s on two cores, alternating runs (2026-11-26, EPYC): p99 22 to 28 ms
# at nice 15, 16.5 to 19.6 ms in SCHED_IDLE, which also left less of the outbox unsent when the
# load ended (4,500 to 7,300 messages against 7,400 to 11,900). Nice 5 gave it a quarter of
# a core, and the API fell behind for seconds at a time.
NICE = 15


def run_child(settings: Settings, parent_pid: int) -> None:
    """The child's whole life: the same loop as `leadwatch worker`, until SIGTERM (a plain
    signal, not a shared multiprocessing object: one of those, held by a child that was
    killed, would hang the server that tries to set it)."""
    from leadwatch.db.engine import make_engine
    from leadwatch.escalations.jobs import RuntimeSource, background_runner
    from leadwatch.leads.scoring import ActiveModel
    from leadwatch.prediction.artifacts import store_for

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the tick, then leave
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server; it stops us
    logging.basicConfig(level=logging.INFO, format="%(levelname)s worker: %(message)s")

    leave_when_orphaned(parent_pid, stop.set, stop)
    engine = make_engine(settings)
    runtime = RuntimeSource(
        settings, ActiveModel(lambda: store_for(settings.home, settings.secret_key_value))
    )
    runner = background_runner(settings, engine, runtime)
    runtime.active_model.get()
    settle_heap()
    try:
        runner.serve_forever(stop)
    finally:
        engine.dispose()


class WorkerProcess(Supervised):
    """The worker child of `serve`: started, watched, started again, stopped (`Supervised`)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(run_child, (settings,), name="escalation worker", nice=NICE, idle=True)
        self.settings = settings
