"""Notification Settings > Lead Escalation: the thresholds and the recipients, edited in the
browser; every save is a new settings version with who, what and when. Admins and managers
edit; reps read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadwatch.deps import ClockDep, SessionDep
from leadwatch.escalations import settings as settings_service
from leadwatch.web.auth import CurrentUser, SignedInUser, check_csrf
from leadwatch.web.pages import page

router = APIRouter(tags=["web"], include_in_schema=False)
EDITORS = ("admin", "manager")


def _render(
    request: Request,
    signed_in: SignedInUser,
    db_session: SessionDep,
    *,
    code: int = 200,
    **context: Any,
) -> HTMLResponse:
    config = settings_service.load(db_session=db_session)
    row = settings_service.get_version(db_session=db_session, version=config.version)
    thresholds = config.thresholds()
    response = page(
        request,
        "settings.html",
        signed_in,
        db_session,
        title="Lead Escalation settings",
        version=config.version,
        saved_by=row.author if row else None,
        document=config.document,
        thresholds={
            "critical": thresholds.critical,
            "high": thresholds.high,
            "medium": thresholds.medium,
        },
        history=settings_service.history(db_session=db_session, limit=20),
        can_edit=signed_in.user.role in EDITORS,
        **context,
    )
    response.status_code = code
    return response


def _save(
    request: Request,
    signed_in: SignedInUser,
    db_session: SessionDep,
    now: Any,
    changed: dict[str, Any],
    notice: str,
) -> Response:
    if signed_in.user.role not in EDITORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins and managers edit settings")
    current = settings_service.load(db_session=db_session).document
    data = current.model_dump(mode="json") | changed
    try:
        document = settings_service.parse(data)
    except settings_service.SettingsError as exc:
        return _render(request, signed_in, db_session, code=422, error=str(exc))
    settings_service.save(
        db_session=db_session, document=document, author=signed_in.user.email, now=now
    )
    return RedirectResponse(
        f"/settings/escalation?saved={notice}", status_code=status.HTTP_303_SEE_OTHER
    )


@router.get("/settings/escalation", response_class=HTMLResponse)
def settings_page(
    request: Request, signed_in: CurrentUser, db_session: SessionDep, saved: str = ""
) -> HTMLResponse:
    notice = {"thresholds": "Thresholds saved.", "person": "Recipient added."}.get(saved)
    return _render(request, signed_in, db_session, notice=notice)


@router.post("/settings/escalation/thresholds")
def save_thresholds(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    csrf_token: Annotated[str, Form(max_length=100)],
    critical: Annotated[float, Form()],
    high: Annotated[float, Form()],
    medium: Annotated[float, Form()],
) -> Response:
    check_csrf(signed_in, csrf_token)
    lines = {"critical": critical, "high": high, "medium": medium}
    return _save(request, signed_in, db_session, clock(), {"thresholds": lines}, "thresholds")


@router.post("/settings/escalation/people")
def add_person(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    csrf_token: Annotated[str, Form(max_length=100)],
    key: Annotated[str, Form(max_length=200)],
    name: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=30)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    phone: Annotated[str, Form(max_length=50)] = "",
) -> Response:
    check_csrf(signed_in, csrf_token)
    people = settings_service.load(db_session=db_session).document.model_dump(mode="json")["people"]
    person = {"key": key, "name": name, "roles": [role] if role else [], "email": email}
    person["phone"] = phone
    return _save(request, signed_in, db_session, clock(), {"people": [*people, person]}, "person")
