"""Delivery routes: the outbox and its dead letters, attempts, the in-app inbox, channel
status with masked credentials, a webhook test event, a template preview, and Twilio's
delivery-receipt callback (authenticated by Twilio's signature, not by an API token)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from leadwatch.config import Settings
from leadwatch.deps import ClockDep, SessionDep, SettingsDep, require_token
from leadwatch.notifications import service
from leadwatch.notifications.models import DeliveryAttempt, InboxItem, OutboxMessage

router = APIRouter(prefix="/api/v1", tags=["notifications"], dependencies=[Depends(require_token)])
callbacks = APIRouter(prefix="/api/v1", tags=["notifications"])


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    outcome: str
    code: str | None
    detail: str
    latency_ms: float
    worker: str


class MessageRead(BaseModel):
    id: int
    escalation_id: int | None
    lead_id: int | None
    channel: str
    recipient: str
    recipient_name: str
    address: str
    subject: str
    level: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    dead_at: datetime | None
    last_error: str | None
    idempotency_key: str
    delivery_status: str | None

    @classmethod
    def of(cls, message: OutboxMessage) -> MessageRead:
        data = {name: getattr(message, name) for name in cls.model_fields}
        data["address"] = service.mask_address(message.channel, message.address)
        return cls.model_validate(data)


class MessageDetail(MessageRead):
    body: str
    history: list[AttemptRead]


class ResendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[int] | None = Field(default=None, max_length=10_000)
    all_dead: bool = False


class InboxItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    lead_id: int | None
    level: str | None
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class InboxRead(BaseModel):
    person: str
    unread: int
    items: list[InboxItemRead]


class ReadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: str = Field(min_length=1, max_length=200)
    ids: list[int] | None = Field(default=None, description="None: everything unread")


class WebhookTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2000)


@router.get("/outbox", response_model=list[MessageRead])
def list_outbox(
    db_session: SessionDep,
    message_status: Annotated[
        str | None, Query(alias="status", pattern="^(pending|sending|retry|sent|dead|folded)$")
    ] = None,
    channel: Annotated[str | None, Query(max_length=12)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[MessageRead]:
    """Messages, newest first; `status=dead` lists the dead letters."""
    rows = service.list_messages(
        db_session=db_session, status=message_status, channel=channel, limit=limit, offset=offset
    )
    return [MessageRead.of(m) for m in rows]


@router.get("/outbox/summary")
def outbox_summary(db_session: SessionDep) -> dict[str, int]:
    return service.counts_by_status(db_session=db_session)


@router.get("/outbox/{message_id}", response_model=MessageDetail)
def get_message(message_id: int, db_session: SessionDep) -> MessageDetail:
    """One message with every attempt: time, outcome, code, what the other side said."""
    try:
        message = service.get_message(db_session=db_session, message_id=message_id)
    except service.MessageNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    tries: list[DeliveryAttempt] = service.attempts(db_session=db_session, message_id=message_id)
    return MessageDetail(
        **MessageRead.of(message).model_dump(),
        body=message.body,
        history=[AttemptRead.model_validate(a) for a in tries],
    )


@router.post("/outbox/resend")
def resend(
    body: ResendRequest, db_session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> dict[str, int]:
    """Queue dead letters again (`ids`, or `all_dead`), keeping their idempotency keys."""
    if body.ids is None and not body.all_dead:
        raise HTTPException(422, 'give "ids" or "all_dead": true')
    count = service.resend(
        db_session=db_session,
        message_ids=None if body.all_dead else body.ids,
        now=clock(),
        max_age_hours=settings.delivery_max_age_hours,
    )
    return {"requeued": count}


@router.get("/notifications/inbox", response_model=InboxRead)
def inbox(
    db_session: SessionDep,
    person: Annotated[str, Query(min_length=1, max_length=200)],
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> InboxRead:
    """A person's in-app notifications (by directory key) and the unread count."""
    items: list[InboxItem]
    items, count = service.inbox(
        db_session=db_session, person=person, unread_only=unread, limit=limit
    )
    return InboxRead(
        person=person, unread=count, items=[InboxItemRead.model_validate(i) for i in items]
    )


@router.post("/notifications/inbox/read")
def mark_read(body: ReadRequest, db_session: SessionDep, clock: ClockDep) -> dict[str, int]:
    changed = service.mark_read(
        db_session=db_session, person=body.person, item_ids=body.ids, now=clock()
    )
    return {"marked": changed}


@router.get("/notifications/channels")
def channels(settings: SettingsDep, db_session: SessionDep) -> dict[str, dict[str, Any]]:
    """Which channels can send, with their settings (those saved on the settings page over
    the environment's); secrets are masked."""
    from leadwatch.notifications import credentials

    try:
        used = credentials.in_force(db_session=db_session, settings=settings)
    except credentials.CredentialsError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return service.channel_status(used)


@router.post("/notifications/webhook-test")
def webhook_test(body: WebhookTest, settings: SettingsDep) -> dict[str, Any]:
    """Send a signed test event to a URL, to check a receiver before relying on it."""
    from leadwatch.notifications.channels.webhook import WebhookChannel

    with WebhookChannel.from_settings(settings) as channel:  # closes its connection pool
        result = channel.send_test_event(body.url)
    return {"outcome": result.outcome.value, "code": result.code, "detail": result.detail}


@router.get("/notifications/templates/preview")
def template_preview(
    settings: SettingsDep,
    db_session: SessionDep,
    channel: Annotated[str, Query(pattern="^(email|sms|slack|webhook|in_app)$")],
    level: Annotated[str, Query(pattern="^(critical|high|medium|low)$")] = "critical",
) -> dict[str, Any]:
    """The message a channel and level would send, for a sample lead, with the templates of
    the settings in force."""
    from leadwatch.notifications.templates import sample_context

    rendered = service.templates_in_force(db_session=db_session, settings=settings).render(
        channel=channel, level=level, context=sample_context(level)
    )
    return {
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "fallbacks": list(rendered.fallbacks),
    }


@callbacks.post("/notifications/sms/status", status_code=204, include_in_schema=False)
async def sms_status(request: Request, settings: SettingsDep, clock: ClockDep) -> Response:
    """Twilio's delivery receipts. Twilio cannot send our API token; it signs the request
    with the account's auth token instead (X-Twilio-Signature), which is checked here."""
    from leadwatch.notifications.channels.sms import check_twilio_signature, parse_status_callback

    factory = request.app.state.session_factory
    token = (await run_in_threadpool(_twilio_in_force, factory, settings)).twilio_auth_token
    if token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "SMS is not configured")
    form = {k: str(v) for k, v in (await request.form()).items()}
    # Twilio signs the whole URL it was given, query string included.
    query = f"?{request.url.query}" if request.url.query else ""
    url = f"{settings.public_base_url}{request.url.path}{query}"
    signature = request.headers.get("X-Twilio-Signature", "")
    if not check_twilio_signature(token.get_secret_value(), url, form, signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "bad or missing X-Twilio-Signature")
    try:
        receipt = parse_status_callback(form)
    except ValueError as exc:  # signed, yet not a status callback: the caller's mistake
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    runtime = request.app.state.escalation_runtime
    await run_in_threadpool(_record_receipt, factory, runtime, receipt, clock())
    return Response(status_code=204)


def _twilio_in_force(factory: Any, settings: Settings) -> Settings:
    """The Twilio account SMS is sent with: saved on the settings page, or the environment's
    (saved secrets that cannot be read leave the environment's in force, as for sending)."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.notifications import credentials

    with unit_of_work(factory) as db_session:
        try:
            return credentials.in_force(db_session=db_session, settings=settings)
        except credentials.CredentialsError:
            return settings


def _record_receipt(factory: Any, runtime: Any, receipt: dict[str, Any], now: datetime) -> None:
    """The database side of a receipt (blocking work, off the event loop)."""
    from leadwatch.db.engine import unit_of_work
    from leadwatch.escalations import service as escalation_service

    with unit_of_work(factory) as db_session:
        message, died = service.record_sms_receipt(db_session=db_session, receipt=receipt, now=now)
        if message is not None and died:
            db_session.flush()
            escalation_service.on_delivery_dead(
                db_session=db_session, message_id=message.id, runtime=runtime(db_session), now=now
            )
