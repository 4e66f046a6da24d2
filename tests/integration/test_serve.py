"""`leadwatch demo --no-serve` then `leadwatch serve` as real processes, spoken to over HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from leadwatch.config import Settings

LEADWATCH = Path(sys.executable).parent / "leadwatch"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def demo_home(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    env = {**os.environ, "LEADWATCH_HOME": str(tmp_path / "home")}
    env.pop("LEADWATCH_DATABASE_URL", None)
    done = subprocess.run(
        [str(LEADWATCH), "demo", "--leads", "400", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rejected" in done.stdout
    token = re.search(r"(lw_[A-Za-z0-9_-]+)", done.stdout)
    assert token is not None, done.stdout
    yield env, token.group(1)


def two_api_processes(env: dict[str, str], port: int, output: int) -> subprocess.Popen[str]:
    """`leadwatch serve` with two API processes (and, on SQLite, its worker)."""
    return subprocess.Popen(
        [str(LEADWATCH), "serve", "--port", str(port), "--processes", "2"],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_served_api_answers_over_http(demo_home: tuple[dict[str, str], str]) -> None:
    env, token = demo_home
    port = free_port()
    server = two_api_processes(env, port, subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "server exited early"
            assert time.monotonic() < deadline, "server did not start in 30 s"
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/api/v1/leads").status_code == 401
        page = httpx.get(f"{base}/api/v1/leads", headers=headers).json()
        assert page["total"] > 300  # the demo history, less linked repeat shoppers
        created = httpx.post(
            f"{base}/api/v1/leads",
            headers=headers,
            json={"external_id": "HTTP-1", "created_at": "2025-06-01T10:00:00Z"},
        )
        assert created.status_code == 201
        # The demo's stores are staffed, and every step also tells the in-app inbox (the
        # demo has no mail or SMS server, so that is where its escalations show).
        shown = httpx.get(f"{base}/api/v1/escalation-settings", headers=headers).json()
        document = shown["document"]
        assert any("sales_manager" in p["roles"] for p in document["people"])
        steps = [s for p in document["policies"].values() for s in p["steps"]]
        assert steps and all("in_app" in step["channels"] for step in steps)
        # Two API processes and the worker, each a child process; the worker runs below
        # the server's CPU priority, and works the outbox of the server's database.
        children = _children(server.pid)
        own = os.getpriority(os.PRIO_PROCESS, server.pid)
        [worker] = [c for c in children if os.getpriority(os.PRIO_PROCESS, c) > own]
        api = [c for c in children if c != worker]
        assert len(api) == 2
        assert os.sched_getscheduler(worker) == os.SCHED_IDLE
        assert {os.sched_getscheduler(c) for c in api} == {os.SCHED_OTHER}
        # The server hands each new connection to the API process with the fewest open
        # (those of the requests above have closed by now): eight keep-alive clients, such as
        # lead providers posting all day, end up four and four.
        time.sleep(0.5)
        clients = [httpx.Client(base_url=base, headers=headers) for _ in range(8)]
        try:
            for client in clients:
                assert client.get("/api/v1/leads?limit=1").status_code == 200
            assert sorted(_connections_by_process(api, port).values()) == [4, 4]
        finally:
            for client in clients:
                client.close()
        # One killed, the other takes every new connection at once, and the server starts
        # another in its place.
        os.kill(api[0], signal.SIGKILL)
        while running(api[0]):
            time.sleep(0.01)
        for i in range(20):
            answer = httpx.get(f"{base}/api/v1/leads?limit=1", headers=headers)
            assert answer.status_code == 200, (i, answer.text)
        deadline = time.monotonic() + 30
        while len(replaced := [c for c in _children(server.pid) if c != worker]) != 2:
            assert time.monotonic() < deadline, "no API process in place of the killed one"
            time.sleep(0.2)
        assert api[0] not in replaced and api[1] in replaced
        api = replaced
        message = _queue_in_app_message(Path(env["LEADWATCH_HOME"]))
        deadline = time.monotonic() + 30
        while (
            httpx.get(f"{base}/api/v1/outbox/{message}", headers=headers).json()["status"] != "sent"
        ):
            assert time.monotonic() < deadline, "the worker did not send the message"
            time.sleep(0.2)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert token not in output  # secrets stay out of the log
    assert not any(running(child) for child in [worker, *api])  # stopped with their server
    assert "2 API processes" in output


def test_serve_refuses_a_port_in_use_and_a_threaded_worker_beside_several_processes(
    demo_home: tuple[dict[str, str], str],
) -> None:
    env, _ = demo_home
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [str(LEADWATCH), "serve", "--port", str(port), "--processes", "2", "--no-worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "--port" in busy.stderr
    threaded = subprocess.run(
        [str(LEADWATCH), "serve", "--processes", "2", "--worker-in", "thread"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert threaded.returncode != 0 and "--processes 1" in threaded.stderr


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    # multiprocessing's resource tracker is a child too; the worker is the one that is not
    return [
        c
        for c in found
        if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text(errors="replace")
    ]


def _connections_by_process(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections on ``port`` that each process holds."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            established.add(f"socket:[{fields[9]}]")
    held = {}
    for pid in pids:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except OSError:  # closed meanwhile
                pass
        held[pid] = sum(link in established for link in links)
    return held


def _queue_in_app_message(home: Path) -> int:
    from leadwatch.db.engine import make_engine, make_session_factory
    from tests.integration.test_dispatcher import add_messages

    engine = make_engine(Settings(home=home, _env_file=None))  # type: ignore[call-arg]
    try:
        [message] = add_messages(
            make_session_factory(engine), 1, channel="in_app", at=datetime.now(UTC)
        )
    finally:
        engine.dispose()
    return message


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_the_api_processes_leave_when_their_server_is_killed(
    demo_home: tuple[dict[str, str], str],
) -> None:
    env, _ = demo_home
    server = two_api_processes(env, free_port(), subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(children := _children(server.pid)) < 3:
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        server.kill()
        server.wait(10)
        deadline = time.monotonic() + 15
        while any(running(child) for child in children):
            assert time.monotonic() < deadline, "children outlived their killed server"
            time.sleep(0.2)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
