"""Lead Escalation settings: the webhook integration (endpoints, signing secret, a test
event, the last deliveries), the channels' credentials (masked: they are set in the server's
environment, never in the browser), and the message templates with a live preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from leadwatch.config import Settings
from leadwatch.deps import SessionDep, SettingsDep
from leadwatch.escalations import settings as settings_service
from leadwatch.notifications import credentials
from leadwatch.notifications import service as notification_service
from leadwatch.notifications.templates import (
    CHANNELS,
    CUSTOM_NAME,
    LEVELS,
    TemplateSet,
    sample_context,
)
from leadwatch.web.auth import CurrentUser, check_csrf
from leadwatch.web.claim import templates as jinja
from leadwatch.web.settings_pages import (
    BASE,
    SettingsFormDep,
    render_tab,
    require_editor,
    tab_context,
)

router = APIRouter(tags=["web"], include_in_schema=False)
Csrf = Annotated[str, Form(max_length=100)]
TemplateName = Annotated[str, Form(max_length=100, pattern=CUSTOM_NAME.pattern)]
Source = Annotated[str, Form(max_length=20_000)]
# Every part a manager may override, in the order the page lists them.
NAMES = [
    f"{channel}{'.' + level if level else ''}.{part}.j2"
    for channel in CHANNELS
    for level in ("", *LEVELS)
    for part in ("subject", "text", "html")
    if part != "html" or channel == "email"
]


@tab_context("integrations")
def _integrations(db_session: Session) -> dict[str, Any]:
    document = settings_service.load(db_session=db_session).document
    sent = notification_service.list_messages(db_session=db_session, channel="webhook", limit=20)
    return {
        "endpoints": [
            (person, notification_service.mask_address("webhook", person.webhook))
            for person in document.people
            if person.webhook
        ],
        "deliveries": [
            (message, notification_service.mask_address("webhook", message.address))
            for message in sent
        ],
    }


@router.get(f"{BASE}/integrations", response_class=HTMLResponse)
def integrations_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    saved: str = "",
) -> HTMLResponse:
    return render_tab(
        request,
        signed_in,
        db_session,
        "integrations",
        saved=saved,
        **_channels(db_session, settings),
    )


@router.post(f"{BASE}/webhook-test", response_class=HTMLResponse)
def webhook_test(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    csrf_token: Csrf,
    url: Annotated[str, Form(max_length=2000)] = "",
    key: Annotated[str, Form(max_length=200)] = "",
) -> HTMLResponse:
    """Send a signed test event to a typed URL or to a recipient's webhook, and show the
    receiver's answer. The URL guard applies as it does to real messages."""
    from leadwatch.notifications.channels.webhook import WebhookChannel

    check_csrf(signed_in, csrf_token)
    require_editor(signed_in)
    if key:
        people = settings_service.load(db_session=db_session).document.people
        url = next((p.webhook or "" for p in people if p.key == key), "")
    context = _channels(db_session, settings)
    if not url:
        error = "Give a webhook URL (https://...) or pick a recipient that has one."
        return render_tab(
            request, signed_in, db_session, "integrations", code=422, error=error, **context
        )
    with WebhookChannel.from_settings(settings) as channel:
        result = channel.send_test_event(url)
    shown = notification_service.mask_address("webhook", url)
    return render_tab(
        request,
        signed_in,
        db_session,
        "integrations",
        test_result={
            "url": shown,
            "outcome": result.outcome.value,
            "code": result.code,
            "detail": result.detail,
        },
        **context,
    )


@router.post(f"{BASE}/webhook-secret", response_class=HTMLResponse)
def reveal_secret(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    csrf_token: Csrf,
) -> HTMLResponse:
    """The signing secret, shown once to an admin setting up a receiver (never logged)."""
    from fastapi import HTTPException, status

    from leadwatch.notifications.channels.webhook import signing_secret_hex

    check_csrf(signed_in, csrf_token)
    if signed_in.user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins see the signing secret")
    return render_tab(
        request,
        signed_in,
        db_session,
        "integrations",
        **_channels(db_session, settings),
        secret=signing_secret_hex(settings),
    )


def _channels(db_session: Session, settings: Settings) -> dict[str, Any]:
    """Each channel's status as the workers build it: saved credentials over the
    environment's (secrets masked), and which fields were saved here."""
    try:
        used = credentials.in_force(db_session=db_session, settings=settings)
        problem = None
    except credentials.CredentialsError as exc:
        used, problem = settings, str(exc)
    return {
        "channels": notification_service.channel_status(used),
        "saved_channels": credentials.saved_fields(db_session=db_session),
        "credentials_problem": problem,
    }


@router.post(f"{BASE}/channels/{{channel}}")
def save_channel(
    form: SettingsFormDep,
    settings: SettingsDep,
    channel: Annotated[str, Path(pattern="^(email|sms)$")],
    smtp_host: Annotated[str, Form(max_length=255)] = "",
    smtp_port: Annotated[str, Form(max_length=5)] = "",
    smtp_security: Annotated[str, Form(max_length=10)] = "",
    smtp_username: Annotated[str, Form(max_length=255)] = "",
    smtp_password: Annotated[str, Form(max_length=500)] = "",
    smtp_from: Annotated[str, Form(max_length=320)] = "",
    twilio_account_sid: Annotated[str, Form(max_length=64)] = "",
    twilio_auth_token: Annotated[str, Form(max_length=500)] = "",
    twilio_from_number: Annotated[str, Form(max_length=32)] = "",
    clear: Annotated[bool, Form()] = False,
) -> Response:
    """Admins connect email (SMTP) or SMS (Twilio) here instead of in the environment. An
    empty secret keeps the saved one; an empty setting falls back to the environment's.
    Workers pick the change up within seconds; the history says what changed, never a
    secret."""
    if form.signed_in.user.role != "admin":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins set channel credentials")
    given = {
        "smtp_host": smtp_host,
        "smtp_port": smtp_port,
        "smtp_security": smtp_security,
        "smtp_username": smtp_username,
        "smtp_password": smtp_password,
        "smtp_from": smtp_from,
        "twilio_account_sid": twilio_account_sid,
        "twilio_auth_token": twilio_auth_token,
        "twilio_from_number": twilio_from_number,
    }
    db_session, now = form.db_session, form.now
    try:
        if clear:
            changes = [f"channels.{channel}: saved credentials removed (the environment's apply)"]
            if not credentials.clear(db_session=db_session, channel=channel):
                changes = []
        else:
            fields = credentials.FIELDS[channel]
            changes = credentials.save(
                db_session=db_session,
                settings=settings,
                channel=channel,
                values={name: value for name, value in given.items() if name in fields},
                author=form.signed_in.user.email,
                now=now,
            )
    except credentials.CredentialsError as exc:
        db_session.rollback()
        return form.show(
            "integrations", code=422, error=str(exc), **_channels(db_session, settings)
        )
    if changes:
        try:  # the other change of this request is undone with it
            settings_service.save(
                db_session=db_session,
                document=settings_service.load(db_session=db_session).document,
                author=form.signed_in.user.email,
                now=now,
                comment=f"{channel} credentials",
                also_changed=changes,
            )
        except settings_service.SettingsConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    notice = "channel" if changes else "unchanged"
    return RedirectResponse(f"{BASE}/integrations?saved={notice}", status_code=303)


@tab_context("templates")
def _templates(_db_session: Session) -> dict[str, Any]:
    return {"names": NAMES, "levels": LEVELS}


@router.get(f"{BASE}/templates", response_class=HTMLResponse)
def templates_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    saved: str = "",
    name: Annotated[str, Query(max_length=100, pattern=CUSTOM_NAME.pattern)] = "email.subject.j2",
) -> HTMLResponse:
    chosen = notification_service.templates_in_force(db_session=db_session, settings=settings)
    source = chosen.source(name) or ""
    return render_tab(
        request,
        signed_in,
        db_session,
        "templates",
        saved=saved,
        template_name=name,
        source=source,
        origin=chosen.names().get(name, "default (falls back to a broader template)"),
        preview=_preview(chosen, name, source),
    )


@router.post(f"{BASE}/templates/preview", response_class=HTMLResponse)
def preview_template(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    csrf_token: Csrf,
    name: TemplateName,
    source: Source,
    fragment: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """The message the edited (unsaved) template would give for a sample lead. With
    ``fragment``, only the preview box: the page's script asks for it as the text changes."""
    check_csrf(signed_in, csrf_token)
    chosen = notification_service.templates_in_force(db_session=db_session, settings=settings)
    preview = _preview(chosen, name, source)
    if fragment:
        return jinja.TemplateResponse(request, "template_preview.html", {"preview": preview})
    return render_tab(
        request,
        signed_in,
        db_session,
        "templates",
        template_name=name,
        source=source,
        origin="edited, not saved",
        preview=preview,
    )


@router.post(f"{BASE}/templates")
def save_template(
    form: SettingsFormDep,
    settings: SettingsDep,
    name: TemplateName,
    source: Source = "",
    reset: Annotated[bool, Form()] = False,
) -> Response:
    """Save a template into the settings (a new version), or drop it to use the default."""
    require_editor(form.signed_in)
    problems = [] if reset else TemplateSet().check(source) if source.strip() else []
    if problems:  # shown with the text as typed, so nothing the manager wrote is lost
        chosen = notification_service.templates_in_force(
            db_session=form.db_session, settings=settings
        )
        return form.show(
            "templates",
            code=422,
            error=f"{name} was not saved: {'; '.join(problems)}",
            template_name=name,
            source=source,
            origin="edited, not saved",
            preview=_preview(chosen, name, source),
        )

    def change(data: dict[str, Any]) -> None:
        if reset:
            data["templates"].pop(name, None)
        elif not source.strip():
            raise ValueError(f"{name}: the template is empty (use Reset to go back to the default)")
        else:
            data["templates"][name] = source.replace("\r\n", "\n")

    response = form.save("templates", change, "template-reset" if reset else "template")
    if "location" in response.headers:
        response.headers["location"] += f"&name={name}"
    return response


def _preview(chosen: TemplateSet, name: str, source: str) -> dict[str, Any]:
    """Render ``name`` as edited (and every other part as ``chosen`` has it) for a sample
    lead."""
    channel, *middle, _part, _ = name.split(".")
    level = middle[0] if middle else "critical"
    problems = TemplateSet().check(source) if source.strip() else ["the template is empty"]
    if problems:
        return {"problems": problems, "channel": channel, "level": level}
    rendered = chosen.with_overrides({**chosen.overrides, name: source}).render(
        channel=channel, level=level, context=sample_context(level)
    )
    return {
        "problems": [],
        "channel": channel,
        "level": level,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
    }
