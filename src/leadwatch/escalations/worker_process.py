"""`leadwatch serve`'s worker in a child process of its own.

The worker (due steps, the sweep, delivery) and the API used to share one process, and so
one interpreter lock: on a busy day a shopper's intake request queued behind the worker's
Python work. As a child process the worker has a core of its own, runs at a lower CPU
priority than the API, and still gives way to intake at the database (`WriteGate`).

The child is started with "spawn" (a clean interpreter, no copied locks or connections), is
given the server's settings, stops when asked or when the server is gone, and is started
again if it dies (its work is durable in the database, so nothing is lost either way).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.context import SpawnProcess

from leadwatch.config import Settings

log = logging.getLogger(__name__)

# Well below the API: when both want a core, the scheduler gives the worker about 4 % of it
# (nice 5 gave it a quarter, and at 100 leads/s the API then fell behind for seconds at a time).
NICE = 15
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


def settle_heap() -> None:
    """Once a server or worker has started (modules imported, the model loaded), move what
    it holds out of the garbage collector's sight. A full collection walks every object
    there is, and with the model and its libraries loaded that took 150 ms, every 20 s or so
    under load: a pause every request in flight waited through."""
    gc.collect()
    gc.freeze()


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

    def orphaned() -> None:  # the server was killed: nobody would ever stop this process
        while not stop.wait(1.0):
            if os.getppid() != parent_pid:
                stop.set()

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
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


class WorkerProcess:
    """Starts the child, watches it, starts it again when it dies, stops it on request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._closing = threading.Event()
        self._process: SpawnProcess | None = None
        self._watch: threading.Thread | None = None
        self._started = 0.0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._watch = threading.Thread(target=self._watch_child, name="worker-watch", daemon=True)
        self._watch.start()

    def _spawn(self) -> None:
        process = self._context.Process(
            target=run_child,
            args=(self.settings, os.getpid()),
            name="leadwatch-worker",
        )
        process.start()
        assert process.pid is not None
        self._process, self._started = process, time.monotonic()
        try:  # from here, not from the child: no moment at the server's priority
            own = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, process.pid, min(19, own + NICE))
        except (OSError, AttributeError):  # not permitted, or not on this system
            pass
        log.info("escalation worker started in process %s", process.pid)

    def _watch_child(self) -> None:
        while not self._closing.is_set():
            process = self._process
            assert process is not None
            process.join(timeout=0.5)
            if process.exitcode is None or self._closing.is_set():
                continue
            # Quick deaths in a row wait longer and longer; one after a long run, briefly.
            quick = time.monotonic() - self._started < 60
            delay = RESTART_DELAYS[min(self.restarts, len(RESTART_DELAYS) - 1)] if quick else 1.0
            log.error(
                "escalation worker process %s ended (exit code %s); starting another in %g s",
                process.pid,
                process.exitcode,
                delay,
            )
            if self._closing.wait(delay):
                return
            self.restarts += 1
            self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        """Asks the child to finish its tick and leave; terminates it if it will not."""
        self._closing.set()
        process = self._process
        if process is not None and process.exitcode is None:
            process.terminate()  # SIGTERM: see `run_child`
            process.join(timeout)
            if process.exitcode is None:
                log.warning("escalation worker did not stop in %g s: killing it", timeout)
                process.kill()
                process.join(5)
        if self._watch is not None:
            self._watch.join(5)
