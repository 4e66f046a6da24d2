"""The Lead Flow page: the lead flow analysis of the leads a signed-in user may see (reps their
own, managers their dealership's, admins all), with its charts drawn on the server."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadwatch.analysis import FlowConfig, FlowInputError, FlowReport, analyze_flow
from leadwatch.core.calendar import CalendarError
from leadwatch.deps import ClockDep, SessionDep
from leadwatch.escalations import settings as settings_service
from leadwatch.leads.export import lead_frame
from leadwatch.web.auth import CurrentUser
from leadwatch.web.flow_report import view
from leadwatch.web.pages import _scope, page

router = APIRouter(tags=["web"], include_in_schema=False)


@router.get("/flow", response_class=HTMLResponse)
def flow_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    days: Annotated[int, Query(ge=30, le=3650)] = 365,
) -> HTMLResponse:
    """Leads created in the last ``days``, judged as of now: the database is the record, so
    a lead unsold 30 days after it arrived has not sold within 30 days."""
    limits, scope = _scope(signed_in.user)
    dealership = limits.get("dealership_id")
    now = clock()
    report: FlowReport | None = None
    problem: str | None = f"No leads created in the last {days} days. {scope}"
    try:
        frame = lead_frame(
            db_session=db_session,
            dealership_ids=None if dealership is None else [int(dealership)],
            rep=limits.get("rep"),
            since=now - timedelta(days=days),
        )
        if not frame.empty:
            pairs = frame[["dealership", "dealership_timezone"]].drop_duplicates()
            hours = settings_service.working_hours_of(
                db_session=db_session, stores=pairs.itertuples(index=False)
            )
            report = analyze_flow(frame, as_of=now, config=FlowConfig(hours=hours))
            problem = None
    except (FlowInputError, CalendarError) as exc:  # e.g. a store's zone is unknown
        problem = str(exc)
    return page(
        request,
        "flow.html",
        signed_in,
        db_session,
        title="Lead flow",
        scope=scope,
        days=days,
        problem=problem,
        v=view(report) if report is not None else None,
    )
