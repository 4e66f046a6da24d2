"""`leadwatch demo --no-serve` then `leadwatch serve` as real processes, spoken to over HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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


def test_served_api_answers_over_http(demo_home: tuple[dict[str, str], str]) -> None:
    env, token = demo_home
    port = free_port()
    server = subprocess.Popen(
        [str(LEADWATCH), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert token not in output  # secrets stay out of the log
