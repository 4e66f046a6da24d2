"""A fast webhook receiver for the delivery benchmarks: answers 200 to every POST and appends
each request's Idempotency-Key to a file (one per line), flushed as it goes.

    python bench/webhook_sink.py PORT KEYS_FILE
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn


def make_app(keys_path: str) -> Any:
    log = open(keys_path, "a", buffering=1, encoding="ascii")  # noqa: SIM115 - lives as long as the app

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        key = dict(scope["headers"]).get(b"idempotency-key", b"-").decode("ascii", "replace")
        log.write(key + "\n")
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    return app


if __name__ == "__main__":
    port, keys = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(make_app(keys), host="127.0.0.1", port=port, log_level="warning", access_log=False)
