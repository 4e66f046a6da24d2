"""`leadwatch serve`'s API in several processes, on one port.

One Python process serves one request's Python at a time (the interpreter lock): at 100 leads
a second, each taking several milliseconds of Python to store, score, escalate and answer,
one process is busy most of the time and a request that arrives behind others waits for
them. Each API process here has an interpreter of its own.

Each binds the port with SO_REUSEPORT, and the kernel spreads new connections over them
evenly. (A listening socket shared by all would not: the event loop that wakes first takes
every waiting connection, and with keep-alive one process could keep most of the clients.)
Before any child binds, the port is checked free without that option, so two servers can't
end up sharing a port by mistake.

The processes share nothing in memory: sign-in sessions are signed cookies, settings and the
active model are re-read when they change, the write gate is a lock file beside the
embedded database, and the retrain job is a file of the home (`leads.retrain`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from leadwatch.config import Settings
from leadwatch.processes import Supervised, leave_when_orphaned, settle_heap

log = logging.getLogger(__name__)


def default_count() -> int:
    """Two API processes where there are two cores or more, else one."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def check_port_free(host: str, port: int) -> None:
    """Raises OSError (EADDRINUSE...) when something already listens on host:port."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def run_api(settings: Settings, host: str, port: int, parent_pid: int) -> None:
    """One API process's whole life: build the app (the model loaded before the first
    request), listen, serve until SIGTERM or Ctrl-C, or until the serving process is gone."""
    import uvicorn

    from leadwatch.app import create_app

    app = create_app(settings)
    app.state.active_model.get()
    sock = listening_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    settle_heap()
    leave_when_orphaned(parent_pid, lambda: os.kill(os.getpid(), signal.SIGTERM))
    server.run(sockets=[sock])


class ApiProcesses:
    """``count`` supervised API processes on host:port."""

    def __init__(self, settings: Settings, host: str, port: int, count: int) -> None:
        self.children = [
            Supervised(run_api, (settings, host, port), name=f"API process {number}")
            for number in range(1, count + 1)
        ]

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.pid is not None]

    def start(self) -> None:
        for child in self.children:
            child.start()

    def stop(self) -> None:
        for child in self.children:
            child.terminate()  # all at once: each finishes its requests in flight
        for child in self.children:
            child.stop()


def wait_for_stop_signal() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM; the children take Ctrl-C themselves too."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
