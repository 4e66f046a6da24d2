"""Lead intake and reading: JSON (one lead or a batch) and ADF/XML on one route."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from leadwatch.config import Settings
from leadwatch.core.leads import LeadIn, RecordError, RejectedRecord
from leadwatch.db.engine import WriteGate, unit_of_work
from leadwatch.deps import (
    ClockDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
    require_token,
)
from leadwatch.escalations.jobs import RuntimeSource, watch_safely
from leadwatch.intake.adf import AdfDocumentError, parse_adf
from leadwatch.leads import service as lead_service
from leadwatch.leads.directory import DealershipDirectory
from leadwatch.leads.schemas import (
    EventCreate,
    EventRead,
    ImportResult,
    LeadCreate,
    LeadPage,
    LeadRead,
    LeadSummary,
    RejectedPage,
    RejectedRead,
)
from leadwatch.leads.scoring import score_before_insert, score_safely
from leadwatch.leads.service import ImportCounts
from leadwatch.leads.store import store_leads

router = APIRouter(prefix="/api/v1", tags=["leads"], dependencies=[Depends(require_token)])

JSON_TYPES = {"application/json"}
XML_TYPES = {"application/xml", "text/xml", "application/x-adf+xml"}
MAX_BATCH = 10_000

_INTAKE_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/LeadCreate"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/LeadCreate"}},
                    ]
                }
            },
            "application/xml": {"schema": {"type": "string", "description": "ADF 1.0 document"}},
            "application/x-adf+xml": {"schema": {"type": "string"}},
        },
    }
}


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, message)


@router.post(
    "/leads",
    response_model=ImportResult,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_INTAKE_DOC,
    responses={
        200: {"description": "Only updates or linked duplicates", "model": ImportResult},
        413: {"description": "Body larger than LEADWATCH_MAX_BODY_BYTES"},
        415: {"description": "Neither JSON nor ADF/XML"},
        422: {"description": "Malformed body, or every record rejected", "model": ImportResult},
    },
)
async def post_leads(
    request: Request, settings: SettingsDep, factory: SessionFactoryDep, clock: ClockDep
) -> JSONResponse:
    """Take one lead, a JSON array of leads, or an ADF/XML document with any number of
    prospects. Idempotent on (source_system, external_id). Rejected records are quarantined."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES | XML_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"unsupported Content-Type {content_type or '(none)'!r}: send application/json "
            "or application/xml (ADF)",
        )
    body = await request.body()
    fmt = "adf" if content_type in XML_TYPES else "json"
    runtime = request.app.state.escalation_runtime
    gate: WriteGate = request.app.state.intake_gate

    def ingest_now() -> ImportResult:
        with gate.intake():
            return ingest_body(body, fmt, settings, factory, clock, runtime)

    result = await run_in_threadpool(ingest_now)
    if result.rejected and not (result.imported or result.updated or result.linked):
        code = status.HTTP_422_UNPROCESSABLE_CONTENT
    elif result.imported:
        code = status.HTTP_201_CREATED
    else:
        code = status.HTTP_200_OK
    return JSONResponse(result.model_dump(mode="json"), status_code=code)


def ingest_body(
    body: bytes, fmt: str, settings: Settings, factory: Any, clock: Any, runtime: RuntimeSource
) -> ImportResult:
    directory = DealershipDirectory(
        default_name=settings.default_dealership, default_timezone=settings.default_timezone
    )
    with unit_of_work(factory) as db_session:
        directory.load(db_session=db_session)
        if fmt == "adf":
            try:
                parsed = parse_adf(
                    body, local_tz_for=directory.tz_for, max_bytes=settings.max_body_bytes
                )
            except AdfDocumentError as exc:
                raise _unprocessable(f"ADF/XML document refused: {exc}") from None
            accepted, rejected = parsed.leads, parsed.rejected
        else:
            accepted, rejected = _parse_json(body, directory)
        source = f"api:{fmt}"
        # SQLite lets one transaction write at a time, from its first write to its commit, so
        # the work that needs no lock comes first: reading, and scoring the new leads from
        # their values (a lead is never stored without its chance). Their insert is the first
        # write; the batch row, which nothing stored refers to, comes after it.
        started = clock()
        stored = store_leads(
            db_session=db_session,
            leads=accepted,
            directory=directory,
            now=started,
            duplicate_window=_window(settings),
            score_new=score_before_insert(runtime.active_model, started),
        )
        counts = ImportCounts.of(stored, rejected)
        batch_id = lead_service.record_finished_batch(
            db_session=db_session,
            source=source,
            fmt=fmt,
            started_at=started,
            counts=counts,
            finished_at=clock(),
        )
        lead_service.quarantine(
            db_session=db_session, records=rejected, source=source, batch_id=batch_id, now=started
        )
        # Leads the insert did not score (updates, or more than a few): scored now.
        unscored = [s.lead_id for s in stored if s.outcome != "linked" and not s.scored]
        now = clock()
        score_safely(db_session=db_session, lead_ids=unscored, active=runtime.active_model, now=now)
        # ...and escalated in the same unit of work: a critical lead's first message is in the
        # outbox when this request returns.
        watch_safely(
            db_session=db_session,
            lead_ids=[s.lead_id for s in stored],
            runtime=runtime,
            now=now,
            new_ids={s.lead_id for s in stored if s.outcome == "imported"},
            views={s.lead_id: s.view for s in stored if s.view is not None},
        )
    payload = counts.as_dict()
    payload["leads"] = [
        {
            "row": s.row,
            "id": s.lead_id,
            "outcome": s.outcome,
            "source_system": s.source_system,
            "external_id": s.external_id,
        }
        for s in stored
    ]
    return ImportResult.model_validate(payload)


def _window(settings: Settings) -> timedelta:
    return timedelta(hours=settings.duplicate_window_hours)


def _parse_json(
    body: bytes, directory: DealershipDirectory
) -> tuple[list[tuple[int, LeadIn]], list[RejectedRecord]]:
    try:
        document = lead_service.scrub_nul(json.loads(body))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unprocessable(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise _unprocessable("malformed JSON: nested too deeply") from None
    if isinstance(document, dict) and isinstance(document.get("leads"), list):
        document = document["leads"]
    items = document if isinstance(document, list) else [document]
    if not items:
        raise _unprocessable("empty batch: send one lead object or a non-empty array")
    if len(items) > MAX_BATCH:
        raise _unprocessable(f"batch of {len(items)} leads; at most {MAX_BATCH} per request")
    accepted: list[tuple[int, LeadIn]] = []
    rejected: list[RejectedRecord] = []
    for number, item in enumerate(items, start=1):
        raw = json.dumps(item, ensure_ascii=False, default=str)
        if not isinstance(item, dict):
            error = RecordError(number, "body", "each lead must be a JSON object")
            rejected.append(RejectedRecord(number, raw, (error,)))
            continue
        try:
            lead = LeadCreate.model_validate(item)
        except ValidationError as exc:
            errors = tuple(
                RecordError(number, ".".join(str(p) for p in err["loc"]) or "body", err["msg"])
                for err in exc.errors()
            )
            rejected.append(RejectedRecord(number, raw, errors))
            continue
        accepted.append((number, lead.to_lead_in(directory.tz_for(lead.dealership))))
    return accepted, rejected


@router.get("/leads", response_model=LeadPage)
def list_leads(
    db_session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    lead_status: Annotated[str | None, Query(alias="status", max_length=20)] = None,
    dealership: Annotated[str | None, Query(max_length=200)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    include_duplicates: bool = False,
) -> LeadPage:
    items, total = lead_service.list_leads(
        db_session=db_session,
        limit=limit,
        offset=offset,
        status=lead_status,
        dealership=dealership,
        lead_source=source,
        include_duplicates=include_duplicates,
    )
    return LeadPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[LeadSummary.model_validate(lead) for lead in items],
    )


@router.get("/leads/{lead_id}", response_model=LeadRead)
def get_lead(lead_id: int, db_session: SessionDep) -> LeadRead:
    try:
        lead = lead_service.get(db_session=db_session, lead_id=lead_id)
    except lead_service.LeadNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return LeadRead.model_validate(lead)


@router.post("/leads/{lead_id}/events", response_model=EventRead, status_code=201)
def post_event(
    request: Request,
    lead_id: int,
    event: EventCreate,
    db_session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> JSONResponse:
    """Append to a lead's history (contacted, appointment, sold, lost, reassigned...).
    The same type at the same time again is a no-op answered with 200."""
    try:
        lead = lead_service.get(db_session=db_session, lead_id=lead_id)
    except lead_service.LeadNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    directory = DealershipDirectory(
        default_name=settings.default_dealership, default_timezone=settings.default_timezone
    ).load(db_session=db_session)
    event_in = event.to_event_in(directory.tz_for(lead.dealership.name), default=clock())
    if event_in.occurred_at < lead.created_at:
        raise _unprocessable(
            f"occurred_at {event_in.occurred_at.isoformat()} is before the lead was created "
            f"({lead.created_at.isoformat()})"
        )
    row, created = lead_service.add_event(
        db_session=db_session, lead_id=lead_id, event=event_in, rep=event.rep
    )
    db_session.flush()
    if created:  # contact, sale or loss stops the lead's escalation at once
        watch_safely(
            db_session=db_session,
            lead_ids=[lead_id],
            runtime=request.app.state.escalation_runtime,
            now=clock(),
        )
    body = EventRead.model_validate(row).model_dump(mode="json")
    return JSONResponse(body, status_code=201 if created else 200)


@router.get("/rejected", response_model=RejectedPage)
def list_rejected(
    db_session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    batch_id: int | None = None,
) -> RejectedPage:
    """The quarantine: every record an import refused, with its raw text and reasons."""
    items, total = lead_service.list_rejected(
        db_session=db_session, limit=limit, offset=offset, batch_id=batch_id
    )
    return RejectedPage(
        total=total,
        limit=limit,
        offset=offset,
        items=[RejectedRead.model_validate(r) for r in items],
    )
