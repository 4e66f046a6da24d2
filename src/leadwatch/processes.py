"""Child processes of `leadwatch serve`: started with "spawn", watched, started again when they
die, stopped on request, and gone by themselves when the server is killed.

`serve` runs the escalation worker in one (`escalations.worker_process`) and, on a machine
with more than one core, its API in several (`api_processes`). Nothing they do lives only in
memory: the outbox and every due step are in the database, and the retrain job's progress is
a file of the home, so a child that dies loses nothing that the next one cannot pick up.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from typing import Any

log = logging.getLogger(__name__)

RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


def settle_heap() -> None:
    """Once a server or worker has started (modules imported, the model loaded), move what
    it holds out of the garbage collector's sight. A full collection walks every object
    there is, and with the model and its libraries loaded that took 150 ms, every 20 s or so
    under load: a pause every request in flight waited through."""
    gc.collect()
    gc.freeze()


def leave_when_orphaned(
    parent_pid: int, leave: Callable[[], None], stopped: threading.Event | None = None
) -> None:
    """Call ``leave`` once the process that started this one is gone (killed: nobody would
    ever stop this process), looking once a second from a thread of its own."""
    stopped = stopped or threading.Event()

    def watch() -> None:
        while not stopped.wait(1.0):
            if os.getppid() != parent_pid:
                leave()
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Supervised:
    """One child running ``target(*args, parent_pid)``: started, started again with back-off
    when it dies, stopped with SIGTERM (the child finishes what it is doing, then leaves).
    ``nice``: how far below this process's CPU priority the child runs. ``idle``: the child
    runs in Linux's SCHED_IDLE class, on CPU time nothing else wants (it keeps a sliver, and
    ``nice`` where that class does not exist)."""

    def __init__(
        self,
        target: Callable[..., None],
        args: tuple[Any, ...],
        *,
        name: str,
        nice: int = 0,
        idle: bool = False,
    ) -> None:
        self.target, self.args, self.name, self.nice, self.idle = target, args, name, nice, idle
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
        self._watch = threading.Thread(
            target=self._watch_child, name=f"{self.name}-watch", daemon=True
        )
        self._watch.start()

    def _spawn(self) -> None:
        process = self._context.Process(
            target=self.target, args=(*self.args, os.getpid()), name=self.name
        )
        process.start()
        assert process.pid is not None
        self._process, self._started = process, time.monotonic()
        # From here, not from the child: no moment at the server's priority. The child is
        # a new interpreter with one thread yet, and the threads it starts inherit both.
        if self.nice:
            try:
                own = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, process.pid, min(19, own + self.nice))
            except (OSError, AttributeError):  # not permitted, or not on this system
                pass
        if self.idle:
            try:
                os.sched_setscheduler(process.pid, os.SCHED_IDLE, os.sched_param(0))
            except (OSError, AttributeError):  # not Linux: the nice value above must do
                pass
        log.info("%s started in process %s", self.name, process.pid)

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
                "%s process %s ended (exit code %s); starting another in %g s",
                self.name,
                process.pid,
                process.exitcode,
                delay,
            )
            if self._closing.wait(delay):
                return
            self.restarts += 1
            self._spawn()

    def terminate(self) -> None:
        """Ask the child to leave, without waiting (`stop` waits)."""
        self._closing.set()
        process = self._process
        if process is not None and process.exitcode is None:
            process.terminate()  # SIGTERM

    def stop(self, timeout: float = 15.0) -> None:
        """Asks the child to finish and leave; kills it if it will not."""
        self.terminate()
        process = self._process
        if process is not None and process.exitcode is None:
            process.join(timeout)
            if process.exitcode is None:
                log.warning("%s did not stop in %g s: killing it", self.name, timeout)
                process.kill()
                process.join(5)
        if self._watch is not None:
            self._watch.join(5)
