"""The serving process's connection balancer, on real sockets: a loopback listener, and
socket pairs whose far ends this test holds, as the API processes would (taking the handed
connections with SCM_RIGHTS, saying when they are ready and when a connection closes)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from leadwatch.api_processes import CLOSED, READY, ConnectionBalancer, listening_socket

OPEN: list[socket.socket] = []  # every socket a test opens, closed after it


class FarEnd:
    """What an API process does with its end of the pair."""

    def __init__(self, balancer: ConnectionBalancer, slot: int, *, short: bool = False) -> None:
        ours, self.end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if short:  # the pair holds only a few handed connections before it is full
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        OPEN.append(self.end)
        balancer.attach(slot, ours)
        self.taken: list[socket.socket] = []

    def ready(self) -> None:
        self.end.send(READY)

    def close_one(self) -> None:
        self.taken.pop().close()
        self.end.send(CLOSED)

    def take(self, timeout: float = 0.3) -> int:
        """Connections handed over within ``timeout``: each still answers on the client's
        side (it is the very connection the client opened)."""
        self.end.settimeout(timeout)
        count = 0
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self.end, 16, 4)
            except TimeoutError:
                return count
            assert message == b"c" and len(fds) == 1
            connection = socket.socket(fileno=fds[0])
            OPEN.append(connection)
            connection.sendall(b"hello")
            self.taken.append(connection)
            count += 1
            self.end.settimeout(0.2)  # until none comes for a while


@pytest.fixture
def balancer() -> Iterator[ConnectionBalancer]:
    running = ConnectionBalancer(listening_socket("127.0.0.1", 0))
    running.start()
    yield running
    running.stop()
    while OPEN:
        OPEN.pop().close()


def connect(balancer: ConnectionBalancer, count: int) -> list[socket.socket]:
    port = balancer.listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    OPEN.extend(clients)
    return clients


def test_connections_go_to_the_process_with_fewest_open_in_turn(
    balancer: ConnectionBalancer,
) -> None:
    one, two = FarEnd(balancer, 1), FarEnd(balancer, 2)
    one.ready()
    two.ready()
    clients = connect(balancer, 8)
    assert (one.take(), two.take()) == (4, 4)
    assert all(client.recv(5) == b"hello" for client in clients)  # the clients' own sockets
    # Three of one's connections close: the next three new ones go to it.
    for _ in range(3):
        one.close_one()
    time.sleep(0.1)
    connect(balancer, 3)
    assert (one.take(), two.take()) == (3, 0)
    assert balancer.handed() == {1: (7, 4), 2: (4, 4)}


def test_nothing_is_handed_before_a_process_is_ready_and_nothing_is_lost_meanwhile(
    balancer: ConnectionBalancer,
) -> None:
    one, two = FarEnd(balancer, 1), FarEnd(balancer, 2)
    connect(balancer, 3)  # accepted by the kernel, waiting in the listener's queue
    assert (one.take(), two.take()) == (0, 0)
    two.ready()
    assert (one.take(), two.take()) == (0, 3)
    one.ready()
    connect(balancer, 3)
    assert (one.take(), two.take()) == (3, 0)  # the one with fewer open connections first


def test_a_process_that_is_gone_gets_nothing_more_and_its_replacement_does(
    balancer: ConnectionBalancer,
) -> None:
    one, two = FarEnd(balancer, 1), FarEnd(balancer, 2)
    one.ready()
    two.ready()
    one.end.close()  # the API process died
    clients = connect(balancer, 4)
    assert two.take() == 4
    for client in clients:
        assert client.recv(5) == b"hello"
    assert 1 not in balancer.handed()
    again = FarEnd(balancer, 1)  # started again, in the same slot
    again.ready()
    time.sleep(0.3)  # the balancer picks a new pair up on its next round
    connect(balancer, 4)
    assert (again.take(), two.take()) == (4, 0)


def test_a_process_far_behind_is_passed_over_but_not_dropped(
    balancer: ConnectionBalancer,
) -> None:
    slow, quick = FarEnd(balancer, 1, short=True), FarEnd(balancer, 2)
    slow.ready()
    quick.ready()
    clients = connect(balancer, 40)
    taken = quick.take()
    queued = slow.take()  # what its pair held before it was full; nothing lost
    assert 0 < queued < 20 and queued + taken == 40
    assert all(client.recv(5) == b"hello" for client in clients)
    assert set(balancer.handed()) == {1, 2}  # still there, and it gets its turn again
    connect(balancer, 2)  # its queue taken now, and fewer open than quick: both to it
    assert (slow.take(), quick.take()) == (2, 0)


def test_connections_no_process_can_take_wait_in_the_server_until_one_can(
    balancer: ConnectionBalancer,
) -> None:
    one, two = FarEnd(balancer, 1, short=True), FarEnd(balancer, 2, short=True)
    one.ready()
    two.ready()
    clients = connect(balancer, 60)  # more than both pairs hold: neither takes any yet
    time.sleep(0.3)
    assert sum(handed for handed, _ in balancer.handed().values()) < 40  # the rest wait...
    assert one.take() + two.take() + one.take() + two.take() == 60  # ...and none is lost
    one.end.close()  # and when every process is gone, a new connection waits for the next
    two.end.close()
    time.sleep(0.3)
    clients += connect(balancer, 1)
    time.sleep(0.3)
    again = FarEnd(balancer, 1)
    again.ready()
    assert again.take(timeout=2) == 1
    assert all(client.recv(5) == b"hello" for client in clients)


def test_stop_closes_the_port(balancer: ConnectionBalancer) -> None:
    port = balancer.listener.getsockname()[1]
    balancer.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
