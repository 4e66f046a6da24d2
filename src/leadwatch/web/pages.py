"""Pages for signed-in users: recent escalations with filters, one escalation's timeline, and
the in-app notifications (the bell in the header counts the unread ones)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from leadwatch.core.leads import EventType, LeadEventIn
from leadwatch.deps import ClockDep, SessionDep
from leadwatch.escalations import service as escalation_service
from leadwatch.escalations import settings as escalation_settings
from leadwatch.escalations.jobs import watch_safely
from leadwatch.leads import service as lead_service
from leadwatch.leads.models import Lead
from leadwatch.notifications import service as notification_service
from leadwatch.users.models import User
from leadwatch.web import stats_view
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
    person = inbox_person(db_session, signed_in.user)
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
    channel: Annotated[str, Query(pattern="^(|email|sms|slack|webhook|in_app)$")] = "",
    dealership: Annotated[int | None, Query(ge=1)] = None,
    older: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    limits, scope = _scope(signed_in.user)
    if dealership is not None and "dealership_id" not in limits:
        limits = {**limits, "dealership_id": dealership}  # a manager stays in their store
    shown = 100
    rows = escalation_service.list_escalations(
        db_session=db_session,
        limit=shown + 1,
        offset=older,
        status=esc_status or None,
        level=level or None,
        channel=channel or None,
        **limits,
    )
    stores = {d.id: d.name for d in lead_service.list_dealerships(db_session=db_session)}
    filters = {"level": level, "status": esc_status, "channel": channel}
    if dealership is not None:
        filters["dealership"] = str(dealership)
    return page(
        request,
        "escalations.html",
        signed_in,
        db_session,
        title="Escalations",
        escalations=rows[:shown],
        more=len(rows) > shown,
        older=older,
        shown=shown,
        filters=filters,
        level=level,
        status=esc_status,
        channel=channel,
        dealership=dealership,
        stores=stores,
        choose_store=signed_in.user.role == "admin"
        or (signed_in.user.role == "manager" and signed_in.user.dealership_id is None),
        scope=scope,
    )


@router.get("/escalations/{escalation_id}", response_class=HTMLResponse)
def escalation_page(
    request: Request, escalation_id: int, signed_in: CurrentUser, db_session: SessionDep
) -> HTMLResponse:
    try:
        esc = escalation_service.get(db_session=db_session, escalation_id=escalation_id)
    except escalation_service.EscalationNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    _visible_lead(db_session, signed_in.user, esc.lead_id)  # someone else's: not found
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
    person = inbox_person(db_session, signed_in.user)
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
    person = inbox_person(db_session, signed_in.user)
    if person:
        notification_service.mark_read(
            db_session=db_session, person=person, item_ids=None, now=clock()
        )
    return RedirectResponse("/notifications", status_code=status.HTTP_303_SEE_OTHER)


def inbox_person(db_session: Session, user: User) -> str | None:
    """Whose in-app messages a user reads: the directory person the account is linked to, or
    else the one whose email is the account's (so adding yourself on the Recipients page with
    your sign-in email is enough)."""
    if user.person_key:
        return user.person_key
    email = user.email.casefold()
    people = escalation_settings.load(db_session=db_session).document.people
    return next((p.key for p in people if p.email and p.email.casefold() == email), None)


def _scope(user: User) -> tuple[dict[str, Any], str]:
    """What a user may see: reps their own leads, managers their dealership, admins all."""
    if user.role == "rep":
        return {"rep": user.name}, f"Leads assigned to {user.name}."
    if user.role == "manager" and user.dealership_id is not None:
        return {"dealership_id": user.dealership_id}, "Leads of your dealership."
    return {}, "All leads."


def _visible_lead(db_session: Session, user: User, lead_id: int) -> Lead:
    try:
        lead = lead_service.get(db_session=db_session, lead_id=lead_id)
    except lead_service.LeadNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    limits, _ = _scope(user)
    rep = limits.get("rep")
    if rep is not None and (lead.rep or "").lower() != str(rep).lower():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lead {lead_id}")
    if "dealership_id" in limits and lead.dealership_id != limits["dealership_id"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no lead {lead_id}")
    return lead


@router.get("/leads", response_class=HTMLResponse)
def leads_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    risk: Annotated[str, Query(pattern="^(|critical|high|medium|low)$")] = "",
) -> HTMLResponse:
    limits, scope = _scope(signed_in.user)
    leads, _ = lead_service.list_leads(
        db_session=db_session, limit=100, risk_level=risk or None, **limits
    )
    live = escalation_service.live_for_leads(db_session=db_session, lead_ids=[x.id for x in leads])
    claimable = {lead_id for lead_id, esc in live.items() if esc.status == "active"}
    return page(
        request,
        "leads.html",
        signed_in,
        db_session,
        title="Leads",
        leads=leads,
        claimable=claimable,
        risk=risk,
        scope=scope,
    )


@router.post("/leads/{lead_id}/claim")
def claim_lead(
    request: Request,
    lead_id: int,
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    csrf_token: Annotated[str, Form(max_length=100)],
) -> Response:
    check_csrf(signed_in, csrf_token)
    _visible_lead(db_session, signed_in.user, lead_id)
    live = escalation_service.live_for_leads(db_session=db_session, lead_ids=[lead_id])
    if lead_id not in live:
        raise HTTPException(status.HTTP_409_CONFLICT, "this lead has no escalation to claim")
    runtime = request.app.state.escalation_runtime
    try:
        escalation_service.claim(
            db_session=db_session,
            escalation_id=live[lead_id].id,
            by=signed_in.user.name,
            runtime=runtime(db_session),
            now=clock(),
        )
    except escalation_service.EscalationError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return RedirectResponse("/leads", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/leads/{lead_id}/contacted")
def mark_contacted(
    request: Request,
    lead_id: int,
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    csrf_token: Annotated[str, Form(max_length=100)],
) -> Response:
    """Log the first contact: the lead's escalation stops in the same transaction."""
    check_csrf(signed_in, csrf_token)
    _visible_lead(db_session, signed_in.user, lead_id)
    now = clock()
    lead_service.add_event(
        db_session=db_session,
        lead_id=lead_id,
        event=LeadEventIn(EventType.CONTACTED, now, actor=signed_in.user.name),
    )
    watch_safely(
        db_session=db_session,
        lead_ids=[lead_id],
        runtime=request.app.state.escalation_runtime,
        now=now,
    )
    return RedirectResponse("/leads", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/stats", response_class=HTMLResponse)
def stats_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    days: Annotated[int, Query(ge=1, le=90)] = 30,
) -> HTMLResponse:
    """Escalations over time by level, messages by channel, success, speed, depth and dead
    letters, as charts, counting only what the user may see."""
    if days not in stats_view.WINDOWS:
        raise HTTPException(422, "choose a window of 1, 7, 30 or 90 days")
    limits, scope = _scope(signed_in.user)
    shown = stats_view.context(
        db_session=db_session, user=signed_in.user, limits=limits, days=days, now=clock()
    )
    return page(
        request, "stats.html", signed_in, db_session, title="Statistics", scope=scope, **shown
    )
