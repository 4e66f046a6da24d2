"""Pages for signed-in users: recent escalations with filters, one escalation's timeline, and
the in-app notifications (the bell in the header counts the unread ones)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadwatch.deps import ClockDep, SessionDep
from leadwatch.escalations import service as escalation_service
from leadwatch.notifications import service as notification_service
from leadwatch.web.auth import CurrentUser, SignedInUser, check_csrf
from leadwatch.web.claim import templates

router = APIRouter(tags=["web"], include_in_schema=False)


def page(
    request: Request,
    name: str,
    signed_in: SignedInUser,
    db_session: SessionDep,
    **context: Any,
) -> HTMLResponse:
    """A page with what every signed-in page shows: the user, the form token, the bell."""
    person = signed_in.user.person_key
    unread = (
        notification_service.inbox(db_session=db_session, person=person, limit=1)[1]
        if person
        else 0
    )
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": signed_in.user,
            "csrf_token": signed_in.csrf_token,
            "unread_count": unread,
            **context,
        },
    )


@router.get("/", response_class=HTMLResponse)
def home(request: Request, signed_in: CurrentUser, db_session: SessionDep) -> HTMLResponse:
    return page(request, "home.html", signed_in, db_session, title="Home")


@router.get("/escalations", response_class=HTMLResponse)
def escalations_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    level: Annotated[str, Query(pattern="^(|critical|high|medium|low)$")] = "",
    esc_status: Annotated[
        str, Query(alias="status", pattern="^(|live|active|claimed|stopped|exhausted)$")
    ] = "",
) -> HTMLResponse:
    rows = escalation_service.list_escalations(
        db_session=db_session, limit=100, status=esc_status or None, level=level or None
    )
    return page(
        request,
        "escalations.html",
        signed_in,
        db_session,
        title="Escalations",
        escalations=rows,
        level=level,
        status=esc_status,
    )


@router.get("/escalations/{escalation_id}", response_class=HTMLResponse)
def escalation_page(
    request: Request, escalation_id: int, signed_in: CurrentUser, db_session: SessionDep
) -> HTMLResponse:
    try:
        esc = escalation_service.get(db_session=db_session, escalation_id=escalation_id)
    except escalation_service.EscalationNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    log = escalation_service.decisions(db_session=db_session, escalation_id=escalation_id)
    return page(
        request,
        "escalation.html",
        signed_in,
        db_session,
        title=f"Escalation {esc.id}",
        esc=esc,
        decisions=log,
    )


@router.get("/notifications", response_class=HTMLResponse)
def inbox_page(request: Request, signed_in: CurrentUser, db_session: SessionDep) -> HTMLResponse:
    person = signed_in.user.person_key
    items, unread = (
        notification_service.inbox(db_session=db_session, person=person, limit=100)
        if person
        else ([], 0)
    )
    return page(
        request,
        "inbox.html",
        signed_in,
        db_session,
        title="Notifications",
        person=person,
        items=items,
        unread=unread,
    )


@router.post("/notifications/read")
def mark_all_read(
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    csrf_token: Annotated[str, Form(max_length=100)],
) -> Response:
    check_csrf(signed_in, csrf_token)
    if signed_in.user.person_key:
        notification_service.mark_read(
            db_session=db_session, person=signed_in.user.person_key, item_ids=None, now=clock()
        )
    return RedirectResponse("/notifications", status_code=status.HTTP_303_SEE_OTHER)
