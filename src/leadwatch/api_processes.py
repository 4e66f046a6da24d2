"""`leadwatch serve`'s API in several processes, on one port.

One Python process serves one request's Python at a time (the interpreter lock): at 100 leads
a second, each taking several milliseconds of Python to store, score, escalate and answer,
one process is busy most of the time and a request that arrives behind others waits for
them. Each API process here has an interpreter of its own.

The serving process listens on the port itself and hands each connection it accepts to the
API process with the fewest open connections (ties in turn), passing the socket over a Unix
socket pair (SCM_RIGHTS); the API process serves it from there on. Lead providers and CRMs
post over a few keep-alive connections, and how those fall decides how the load falls:
letting the kernel spread them (SO_REUSEPORT hashes each connection to a process) split the
benchmark's 8 clients 5 to 3 in some runs, and in one run left one process busy 70 % of the
time against its sibling's 26 %, with the p99 half as long again as in an even run; a
listening socket shared by all would give them to whichever process woke first.
(Node's cluster module hands connections out from its primary process for the same reason.)
An API process says when it is ready (the model loaded) and when a connection closes, so a
process being started again gets connections only once it can answer them.

The processes share nothing in memory: sign-in sessions are signed cookies, settings and the
active model are re-read when they change, the write gate is a lock file beside the
embedded database, and the retrain job is a file of the home (`leads.retrain`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import selectors
import signal
import socket
import threading
from collections import deque
from dataclasses import dataclass

import uvicorn

from leadwatch.config import Settings
from leadwatch.processes import Supervised, leave_when_orphaned, settle_heap

log = logging.getLogger(__name__)

# What an API process tells the serving process over its socket pair, one byte a message.
READY, CLOSED = b"R", b"C"


def can_share_a_port() -> bool:
    """Handing connections over needs SCM_RIGHTS: every Unix, not Windows."""
    return hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")


def default_count() -> int:
    """Two API processes where there are two cores or more (and connections can be handed
    over), else one."""
    return 2 if (os.cpu_count() or 1) >= 2 and can_share_a_port() else 1


def listening_socket(host: str, port: int) -> socket.socket:
    """The port, bound by the serving process (OSError, EADDRINUSE..., when it is taken)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(eq=False)
class _Child:
    """The serving process's end of one API process's socket pair."""

    channel: socket.socket
    ready: bool = False
    open: int = 0  # connections handed over and not yet closed
    handed: int = 0  # in all


class ConnectionBalancer:
    """Accepts connections on ``listener`` and hands each to the ready API process with the
    fewest open connections (ties in turn), from a thread of its own. An API process that is
    gone (its end of the pair closed) gets nothing more. One far behind in taking what it was
    handed (its pair's queue full: 10 messages by Linux's default) is passed over. While none
    can take a connection, it waits here, and the next ones in the listening socket's queue."""

    RETRY = 0.005  # seconds between tries to hand over a waiting connection

    def __init__(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self.listener = listener
        self._children: dict[int, _Child] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._turn = 0
        self._waiting: deque[socket.socket] = deque()  # accepted, not yet handed over

    def attach(self, slot: int, channel: socket.socket) -> None:
        """``channel``: the serving process's end of a (new) API process's pair; replaces
        the one of that slot's earlier process."""
        channel.setblocking(False)
        with self._lock:
            old = self._children.get(slot)
            self._children[slot] = _Child(channel)
        if old is not None:
            old.channel.close()

    def handed(self) -> dict[int, tuple[int, int]]:
        """Per slot: connections handed over in all, and open now."""
        with self._lock:
            return {slot: (c.handed, c.open) for slot, c in self._children.items()}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="connection-balancer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No more connections taken (those queued are refused when the listener closes)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        self.listener.close()
        while self._waiting:
            self._waiting.popleft().close()
        with self._lock:
            for child in self._children.values():
                child.channel.close()
            self._children.clear()

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                children = list(self._children.values())
            any_ready = any(c.ready for c in children)
            with selectors.DefaultSelector() as selector:
                for child in children:
                    selector.register(child.channel, selectors.EVENT_READ, child)
                if any_ready and not self._waiting:
                    selector.register(self.listener, selectors.EVENT_READ, None)
                # A restarted process's new pair is picked up on the next round.
                events = selector.select(timeout=self.RETRY if self._waiting else 0.2)
            for key, _ in events:
                if key.data is not None:
                    self._hear(key.data)
            while self._waiting and self._hand_over(self._waiting[0]):
                self._waiting.popleft().close()
            if any(key.data is None for key, _ in events):
                self._accept()

    def _hear(self, child: _Child) -> None:
        try:
            message = child.channel.recv(16)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        with self._lock:
            if not message:  # the process is gone
                self._drop(child)
            elif message == READY:
                child.ready = True
            elif message == CLOSED:
                child.open = max(0, child.open - 1)

    def _drop(self, child: _Child) -> None:
        for slot, known in list(self._children.items()):
            if known is child:
                del self._children[slot]
                child.channel.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: a moment, then try again
                log.warning("could not accept a connection: %s", exc)
                self._stopping.wait(0.1)
                return
            if not self._hand_over(connection):
                self._waiting.append(connection)  # and no more accepted until it is handed
                return
            connection.close()  # the API process has its own descriptor of it now

    def _hand_over(self, connection: socket.socket) -> bool:
        with self._lock:
            ready = [c for c in self._children.values() if c.ready]
            count = len(ready)
            order = sorted(range(count), key=lambda i: (ready[i].open, (i - self._turn) % count))
            self._turn += 1
            for index in order:
                child = ready[index]
                try:
                    socket.send_fds(child.channel, [b"c"], [connection.fileno()])
                except BlockingIOError:  # alive, but far behind taking them: the next one
                    continue
                except OSError:  # gone: the next one
                    self._drop(child)
                    continue
                child.open += 1
                child.handed += 1
                return True
        return False


class ApiProcess(Supervised):
    """One supervised API process: each start gets a new socket pair, its end in the
    balancer."""

    def __init__(self, settings: Settings, balancer: ConnectionBalancer, slot: int) -> None:
        super().__init__(run_api, (), name=f"API process {slot}")
        self.settings, self.balancer, self.slot = settings, balancer, slot

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.args = (self.settings, theirs)
        try:
            super()._spawn()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its own copy; ours must not keep its end open
        self.balancer.attach(self.slot, ours)


class ApiProcesses:
    """``count`` supervised API processes behind one listening socket on host:port."""

    def __init__(self, settings: Settings, listener: socket.socket, count: int) -> None:
        self.balancer = ConnectionBalancer(listener)
        self.children = [ApiProcess(settings, self.balancer, n) for n in range(1, count + 1)]

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children if child.pid is not None]

    def start(self) -> None:
        for child in self.children:
            child.start()
        self.balancer.start()

    def stop(self) -> None:
        self.balancer.stop()
        for child in self.children:
            child.terminate()  # all at once: each finishes its requests in flight
        for child in self.children:
            child.stop()


def run_api(settings: Settings, channel: socket.socket, parent_pid: int) -> None:
    """One API process's whole life: build the app (the model loaded before the first
    request), take connections from ``channel`` and serve them until SIGTERM or Ctrl-C, or
    until the serving process is gone."""
    from leadwatch.app import create_app

    app = create_app(settings)
    app.state.active_model.get()
    # No websocket routes: an upgrade would take a connection out of the count of open ones.
    server = HandedServer(uvicorn.Config(app, log_level="info", ws="none"), channel)
    settle_heap()
    leave_when_orphaned(parent_pid, lambda: os.kill(os.getpid(), signal.SIGTERM))
    server.run()


def _tell(channel: socket.socket, message: bytes) -> None:
    try:
        channel.send(message)
    except OSError:  # the serving process is gone (or not reading): nobody to tell
        pass


class HandedServer(uvicorn.Server):
    """uvicorn's server, serving the connections handed to it over ``channel`` instead of a
    listening socket of its own."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:  # noqa: ARG002
        await super().startup(sockets=[])  # the app's lifespan started; no listener
        loop = asyncio.get_running_loop()
        config, channel = self.config, self.channel

        class Counted(config.http_protocol_class):  # type: ignore[misc,name-defined]
            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                _tell(channel, CLOSED)

        def protocol() -> asyncio.Protocol:
            return Counted(
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        async def serve(connection: socket.socket) -> None:
            try:
                await loop.connect_accepted_socket(protocol, connection, ssl=config.ssl)
            except Exception as exc:  # a failed TLS handshake, say: it never opened
                log.info("a handed connection failed to open: %s", exc)
                connection.close()
                _tell(channel, CLOSED)

        def take() -> None:
            try:
                message, fds, _, _ = socket.recv_fds(channel, 16, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message, fds = b"", []
            if not message and not fds:  # the serving process closed its end
                loop.remove_reader(channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                loop.create_task(serve(socket.socket(fileno=fd)))

        channel.setblocking(False)
        loop.add_reader(channel.fileno(), take)
        _tell(channel, READY)
        log.info("API process %s ready for connections", os.getpid())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:  # no more connections taken; those open are finished by uvicorn
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        except (ValueError, OSError):
            pass
        await super().shutdown(sockets)


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
