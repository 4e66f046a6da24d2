"""Escalation routes: list and read escalations with their decision log, claim, preview,
statistics, and the versioned Lead Escalation settings. All need an API token."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from leadwatch.deps import ClockDep, CurrentToken, SessionDep, SettingsDep, require_token
from leadwatch.escalations import preview as preview_service
from leadwatch.escalations import service
from leadwatch.escalations import settings as settings_service
from leadwatch.escalations.jobs import RuntimeSource
from leadwatch.escalations.models import Escalation
from leadwatch.escalations.schemas import (
    ClaimCreate,
    DecisionRead,
    EscalationDetail,
    EscalationPage,
    EscalationRead,
    PreviewRead,
    PreviewRequest,
    SettingsRead,
    SettingsVersionRead,
    SettingsWrite,
)
from leadwatch.escalations.stats import escalation_stats
from leadwatch.leads.directory import DealershipDirectory

router = APIRouter(prefix="/api/v1", tags=["escalations"], dependencies=[Depends(require_token)])


def get_runtime_source(request: Request) -> RuntimeSource:
    source: RuntimeSource = request.app.state.escalation_runtime
    return source


RuntimeDep = Annotated[RuntimeSource, Depends(get_runtime_source)]


def _read(esc: Escalation) -> EscalationRead:
    out = EscalationRead.model_validate(esc)
    out.policy = str(esc.plan.get("policy", {}).get("name", ""))
    return out


@router.get("/escalations", response_model=EscalationPage)
def list_escalations(
    db_session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    esc_status: Annotated[
        str | None,
        Query(alias="status", pattern="^(live|active|claimed|stopped|exhausted)$"),
    ] = None,
    level: Annotated[str | None, Query(pattern="^(critical|high|medium|low)$")] = None,
) -> EscalationPage:
    """Newest first. ``status=live`` lists the active and claimed ones."""
    items = service.list_escalations(
        db_session=db_session, limit=limit, offset=offset, status=esc_status, level=level
    )
    return EscalationPage(limit=limit, offset=offset, items=[_read(e) for e in items])


@router.get("/escalations/stats")
def stats(
    db_session: SessionDep,
    clock: ClockDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Totals, by level, channel and dealership, success rate, time to claim and to first
    contact, depth. Default window: the last 30 days."""
    end = until or clock()
    start = since or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "since and until need a time zone (e.g. 2026-11-01T00:00:00Z)")
    return escalation_stats(db_session=db_session, since=start, until=end)


@router.post("/escalations/preview", response_model=PreviewRead)
def preview(
    body: PreviewRequest,
    db_session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """What escalation would do with this lead from ``at`` on, if nobody claimed or called.
    Nothing is stored or sent."""
    directory = DealershipDirectory(
        default_name=settings.default_dealership, default_timezone=settings.default_timezone
    ).load(db_session=db_session)
    dealership = body.lead.dealership or settings.default_dealership
    zone = directory.tz_for(dealership)
    at = body.at or clock()
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    try:
        return preview_service.preview(
            body.lead.to_lead_in(zone),
            runtime=runtime(db_session),
            dealership=dealership,
            timezone=str(zone),
            at=at,
            probability=body.probability,
            predictor=runtime.active_model.get() if body.probability is None else None,
        )
    except preview_service.PreviewError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.get("/escalations/{escalation_id}", response_model=EscalationDetail)
def get_escalation(escalation_id: int, db_session: SessionDep) -> EscalationDetail:
    try:
        esc = service.get(db_session=db_session, escalation_id=escalation_id)
    except service.EscalationNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    log = service.decisions(db_session=db_session, escalation_id=escalation_id)
    return EscalationDetail(
        **_read(esc).model_dump(),
        plan=esc.plan,
        decisions=[DecisionRead.model_validate(d) for d in log],
    )


@router.post("/escalations/{escalation_id}/claim", response_model=EscalationRead)
def claim(
    escalation_id: int,
    db_session: SessionDep,
    clock: ClockDep,
    token: CurrentToken,
    runtime: RuntimeDep,
    body: ClaimCreate | None = None,
) -> EscalationRead:
    """Take the lead: the chain pauses, and resumes unless contact is logged in time.
    The body is optional: without one (or without ``by``) the token's name claims."""
    try:
        esc = service.claim(
            db_session=db_session,
            escalation_id=escalation_id,
            by=((body.by if body else None) or "").strip() or token.name,
            runtime=runtime(db_session),
            now=clock(),
        )
    except service.EscalationNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except service.EscalationError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _read(esc)


@router.get("/escalation-settings", response_model=SettingsRead)
def get_settings(db_session: SessionDep) -> SettingsRead:
    """The Lead Escalation settings in force (version 0: the defaults, never saved)."""
    config = settings_service.load(db_session=db_session)
    row = settings_service.get_version(db_session=db_session, version=config.version)
    return SettingsRead(
        version=config.version,
        author=row.author if row else None,
        created_at=row.created_at if row else None,
        comment=row.comment if row else None,
        document=config.document,
    )


@router.put("/escalation-settings", response_model=SettingsVersionRead)
def put_settings(
    body: SettingsWrite, db_session: SessionDep, clock: ClockDep, token: CurrentToken
) -> SettingsVersionRead:
    """Save a new version (escalations in flight keep the plan they started with)."""
    try:
        document = settings_service.parse(body.document)
    except settings_service.SettingsError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    try:
        row = settings_service.save(
            db_session=db_session,
            document=document,
            author=f"token:{token.name}",
            now=clock(),
            comment=body.comment,
        )
    except settings_service.SettingsConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return SettingsVersionRead.model_validate(row)


@router.get("/escalation-settings/versions", response_model=list[SettingsVersionRead])
def settings_versions(
    db_session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[SettingsVersionRead]:
    """Who changed what and when, newest first."""
    rows = settings_service.history(db_session=db_session, limit=limit)
    return [SettingsVersionRead.model_validate(r) for r in rows]
