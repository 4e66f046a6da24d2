"""FastAPI dependencies shared by the routers: the session, the clock, the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from leadwatch.auth import service as auth_service
from leadwatch.auth.models import ApiToken
from leadwatch.config import Settings
from leadwatch.db.engine import unit_of_work


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock


def get_session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: committed when the handler returns without error."""
    session = get_session_factory(request)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Callable[[], datetime], Depends(get_clock)]
# "function" scope: committed before the response leaves. The default ("request") would
# commit after the client already has its answer, so a redirect could show the page as it
# was, and a commit that fails would follow a 201 the client already believed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer lw_...`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API token, as a header")


def require_token(
    factory: SessionFactoryDep,
    clock: ClockDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> ApiToken:
    token = bearer.credentials if bearer else api_key
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send `Authorization: Bearer <token>` "
            "(create one with `leadwatch token create NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    now = clock()
    # Its own short unit of work, done before the handler runs: a session held through the
    # request would keep a pooled connection (and, once a minute, the last-use write) for
    # as long as the handler takes.
    with unit_of_work(factory) as db_session:
        row = auth_service.authenticate(db_session=db_session, token=token, now=now)
    if row is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return row


CurrentToken = Annotated[ApiToken, Depends(require_token)]
