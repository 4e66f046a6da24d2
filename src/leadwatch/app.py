"""`create_app(settings)`: the FastAPI application, with its engine built here, not at import."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadwatch import __version__
from leadwatch.config import Settings
from leadwatch.db.engine import make_engine, make_session_factory, write_gate
from leadwatch.deps import SessionDep
from leadwatch.escalations.api import router as escalations_router
from leadwatch.escalations.jobs import RuntimeSource, background_runner
from leadwatch.leads.api import router as leads_router
from leadwatch.leads.retrain import RetrainJobs
from leadwatch.leads.scoring import ActiveModel
from leadwatch.notifications.api import callbacks as notification_callbacks
from leadwatch.notifications.api import router as notifications_router
from leadwatch.prediction.artifacts import store_for
from leadwatch.web.auth import router as web_auth_router
from leadwatch.web.claim import router as claim_router
from leadwatch.web.flow_pages import router as flow_router
from leadwatch.web.model_pages import router as model_router
from leadwatch.web.pages import router as web_pages_router
from leadwatch.web.settings_chains import router as settings_chains_router
from leadwatch.web.settings_hours import router as settings_hours_router
from leadwatch.web.settings_integrations import router as settings_integrations_router
from leadwatch.web.settings_pages import router as web_settings_router

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BodySizeLimit:
    """Refuses bodies over the limit with 413, by declared length or by counting the stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes; split the batch"},
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        )
        await response({"type": "http"}, _no_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = _utcnow,
    run_worker: bool = False,
) -> FastAPI:
    """``run_worker`` runs the escalation worker in a background thread of this process
    (`serve --worker-in thread`, and tests). `serve` otherwise runs it in a child process
    (`escalations.worker_process`); scaled out, `leadwatch worker` processes do that job."""
    engine = engine or make_engine(settings)
    session_factory = make_session_factory(engine)
    active_model = ActiveModel(lambda: store_for(settings.home, settings.secret_key_value))
    runtime = RuntimeSource(settings, active_model, reuse_seconds=1.0)
    intake_gate = write_gate(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not run_worker:
            yield
            return
        stop = threading.Event()
        runner = background_runner(settings, engine, runtime, clock=clock)
        thread = threading.Thread(
            target=runner.serve_forever, args=(stop,), name="escalation-worker", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)

    app = FastAPI(
        title="LeadWatch",
        version=__version__,
        description="Dealership lead intake, outcome prediction and escalation.",
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        openapi_url="/openapi.json" if settings.api_docs else None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.clock = clock
    app.state.active_model = active_model
    app.state.escalation_runtime = runtime
    app.state.intake_gate = intake_gate
    app.state.model_jobs = RetrainJobs(clock, settings.home / "models")  # shared by processes
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The client gets no traceback; the log gets the whole story.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)

    @app.get("/health", tags=["health"])
    def health(db_session: SessionDep) -> dict[str, Any]:
        db_session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__, "database": engine.dialect.name}

    app.include_router(leads_router)
    app.include_router(escalations_router)
    app.include_router(notifications_router)
    app.include_router(notification_callbacks)
    app.include_router(claim_router)
    app.include_router(web_auth_router)
    app.include_router(web_pages_router)
    app.include_router(flow_router)
    app.include_router(web_settings_router)
    app.include_router(settings_chains_router)
    app.include_router(settings_hours_router)
    app.include_router(settings_integrations_router)
    app.include_router(model_router)
    return app
