"""The claim link's page. The signed, expiring, single-use token in the address is the
credential, so these two routes need no API token. Opening the link only shows a button:
mail scanners and chat previews fetch links, and must not use up the claim."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from leadwatch.deps import ClockDep, SessionDep
from leadwatch.escalations import claims, service
from leadwatch.escalations.jobs import RuntimeSource
from leadwatch.escalations.models import Escalation
from leadwatch.leads.models import Lead

router = APIRouter(tags=["claim"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

Token = Annotated[str, PathParam(max_length=400, pattern=r"^[A-Za-z0-9_.=-]+$")]


def _runtime(request: Request) -> RuntimeSource:
    source: RuntimeSource = request.app.state.escalation_runtime
    return source


def _page(request: Request, status_code: int, **context: object) -> HTMLResponse:
    context.setdefault("kind", "")
    context.setdefault("lead", None)
    context.setdefault("confirm", False)
    response = templates.TemplateResponse(request, "claim.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _lead_line(db_session: SessionDep, escalation_id: int) -> str | None:
    esc = db_session.get(Escalation, escalation_id)
    lead = db_session.get(Lead, esc.lead_id) if esc else None
    if lead is None:
        return None
    vehicle = " ".join(
        str(p) for p in (lead.vehicle_year, lead.vehicle_make, lead.vehicle_model) if p
    )
    who = lead.customer_name or f"Lead #{lead.id}"
    return f"{who}{f' – {vehicle}' if vehicle else ''} ({lead.lead_source or 'unknown source'})"


@router.get("/claim/{token}", response_class=HTMLResponse)
def claim_page(
    request: Request,
    token: Token,
    db_session: SessionDep,
    clock: ClockDep,
    runtime: Annotated[RuntimeSource, Depends(_runtime)],
) -> HTMLResponse:
    source = runtime(db_session)
    try:
        ticket = claims.read_token(source.signing_key, token, now=clock())
    except claims.ClaimLinkError as exc:
        return _page(request, 400, title="Claim link not valid", message=str(exc), kind="error")
    esc = db_session.get(Escalation, ticket.escalation_id)
    if esc is None or esc.status not in service.LIVE:
        ended = f" ({esc.status}: {esc.end_reason})" if esc is not None else ""
        return _page(
            request,
            409,
            title="Not claimed",
            message=f"escalation {ticket.escalation_id} has already ended{ended}",
            lead=_lead_line(db_session, ticket.escalation_id),
            kind="error",
        )
    return _page(
        request,
        200,
        title="Claim this lead?",
        message="You are about to take this lead and call the customer.",
        lead=_lead_line(db_session, ticket.escalation_id),
        confirm=True,
        timeout=f"{source.config.rules.claim_timeout_minutes:g}",
    )


@router.post("/claim/{token}", response_class=HTMLResponse)
def claim_submit(
    request: Request,
    token: Token,
    db_session: SessionDep,
    clock: ClockDep,
    runtime: Annotated[RuntimeSource, Depends(_runtime)],
) -> HTMLResponse:
    source = runtime(db_session)
    try:
        esc = service.claim_with_link(
            db_session=db_session, token=token, runtime=source, now=clock()
        )
    except claims.ClaimLinkError as exc:
        db_session.rollback()
        return _page(request, 400, title="Claim link not valid", message=str(exc), kind="error")
    except service.EscalationError as exc:
        db_session.rollback()
        return _page(request, 409, title="Not claimed", message=str(exc), kind="error")
    timeout = source.config.rules.claim_timeout_minutes
    return _page(
        request,
        200,
        title="Lead claimed",
        message=(
            f"It is yours, {esc.claimed_by}. Call the customer now and log the contact within "
            f"{timeout:g} minutes, or the escalation resumes."
        ),
        lead=_lead_line(db_session, esc.id),
        kind="ok",
    )
