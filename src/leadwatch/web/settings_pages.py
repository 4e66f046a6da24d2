"""Notification Settings > Lead Escalation, edited in the browser.

The tab is split in sub-pages (thresholds, recipients, chains, working hours, routing,
webhooks and channels, templates) that all edit one versioned settings document: every save
is a new version with who, what and when. Admins and managers edit; reps read. Each form
carries the version it was opened on, so two managers saving at once cannot silently undo
each other: the second is told and shown the settings as they now are.

This module holds what the sub-pages share and the first two of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from leadwatch.deps import ClockDep, SessionDep
from leadwatch.escalations import settings as settings_service
from leadwatch.web.auth import CurrentUser, SignedInUser, check_csrf
from leadwatch.web.pages import page

router = APIRouter(tags=["web"], include_in_schema=False)
EDITORS = ("admin", "manager")
BASE = "/settings/escalation"
TABS = (
    ("general", BASE, "Thresholds"),
    ("recipients", f"{BASE}/recipients", "Recipients"),
    ("chains", f"{BASE}/chains", "Chains"),
    ("hours", f"{BASE}/hours", "Working hours"),
    ("routing", f"{BASE}/routing", "Routing"),
    ("integrations", f"{BASE}/integrations", "Webhooks & channels"),
    ("templates", f"{BASE}/templates", "Templates"),
)
TAB_URLS = {name: url for name, url, _ in TABS}
NOTICES = {
    "thresholds": "Thresholds saved.",
    "general": "Settings saved.",
    "person": "Recipient added.",
    "person-updated": "Recipient saved.",
    "person-removed": "Recipient removed.",
    "chain": "Chain saved.",
    "levels": "Levels and after-hours rules saved.",
    "hours": "Working hours saved.",
    "zone": "Time zone saved.",
    "route": "Routing rule saved.",
    "route-removed": "Routing rule removed.",
    "template": "Template saved.",
    "template-reset": "Template reset to the default.",
    "channel": "Channel credentials saved. Workers use them within seconds.",
    "unchanged": "Nothing changed, so no new version was saved.",
}
Change = Callable[[dict[str, Any]], None]
BaseVersion = Annotated[int, Form(ge=0)]
TabContext = Callable[[Session], dict[str, Any]]
_contexts: dict[str, TabContext] = {}


def tab_context(tab: str) -> Callable[[TabContext], TabContext]:
    """Registers what a sub-page shows besides the document, so the page looks the same
    when it is shown again with an error after a refused save."""

    def register(build: TabContext) -> TabContext:
        _contexts[tab] = build
        return build

    return register


def render_tab(
    request: Request,
    signed_in: SignedInUser,
    db_session: SessionDep,
    tab: str,
    *,
    code: int = 200,
    saved: str = "",
    **context: Any,
) -> HTMLResponse:
    config = settings_service.load(db_session=db_session)
    row = settings_service.get_version(db_session=db_session, version=config.version)
    build = _contexts.get(tab)
    context = (build(db_session) if build else {}) | context
    response = page(
        request,
        f"settings_{tab}.html",
        signed_in,
        db_session,
        title="Lead Escalation settings",
        tab=tab,
        tabs=TABS,
        version=config.version,
        saved_by=row.author if row else None,
        document=config.document,
        can_edit=signed_in.user.role in EDITORS,
        notice=NOTICES.get(saved),
        **context,
    )
    response.status_code = code
    return response


def require_editor(signed_in: SignedInUser) -> None:
    if signed_in.user.role not in EDITORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins and managers edit settings")


def save_change(
    request: Request,
    signed_in: SignedInUser,
    db_session: SessionDep,
    now: datetime,
    *,
    tab: str,
    base_version: int,
    change: Change,
    notice: str,
    comment: str | None = None,
) -> Response:
    """Apply ``change`` to the settings in force and save the result as a new version, or
    show the tab again with what is wrong (nothing saved)."""
    require_editor(signed_in)
    config = settings_service.load(db_session=db_session)
    if base_version != config.version:
        row = settings_service.get_version(db_session=db_session, version=config.version)
        who = f" by {row.author}" if row else ""
        return render_tab(
            request,
            signed_in,
            db_session,
            tab,
            code=status.HTTP_409_CONFLICT,
            error=f"Version {config.version} was saved{who} after you opened this page, so "
            "your change was not applied. The page now shows the settings in force: make "
            "your change again.",
        )
    data = config.document.model_dump(mode="json")
    try:
        change(data)
        document = settings_service.parse(data)
    except (settings_service.SettingsError, ValueError) as exc:
        return render_tab(request, signed_in, db_session, tab, code=422, error=str(exc))
    if document == config.document:
        notice = "unchanged"
    else:
        try:
            settings_service.save(
                db_session=db_session,
                document=document,
                author=signed_in.user.email,
                now=now,
                comment=comment,
            )
        except settings_service.SettingsConflictError as exc:  # saved in the same instant
            return render_tab(request, signed_in, db_session, tab, code=409, error=str(exc))
    return RedirectResponse(
        f"{TAB_URLS[tab]}?saved={notice}", status_code=status.HTTP_303_SEE_OTHER
    )


@dataclass
class SettingsForm:
    """A posted settings form: who sent it (its form token checked) and the settings version
    it was opened on."""

    request: Request
    signed_in: SignedInUser
    db_session: Session
    now: datetime
    base_version: int

    def save(self, tab: str, change: Change, notice: str) -> Response:
        return save_change(
            self.request,
            self.signed_in,
            self.db_session,
            self.now,
            tab=tab,
            base_version=self.base_version,
            change=change,
            notice=notice,
        )

    def show(self, tab: str, *, code: int = 200, **context: Any) -> HTMLResponse:
        return render_tab(self.request, self.signed_in, self.db_session, tab, code=code, **context)


def _settings_form(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    clock: ClockDep,
    csrf_token: Annotated[str, Form(max_length=100)],
    base_version: BaseVersion,
) -> SettingsForm:
    check_csrf(signed_in, csrf_token)
    return SettingsForm(request, signed_in, db_session, clock(), base_version)


SettingsFormDep = Annotated[SettingsForm, Depends(_settings_form)]


def listed(text: str) -> list[str]:
    """A comma- or line-separated form field as a list, blanks dropped."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


@tab_context("general")
def _general(db_session: Session) -> dict[str, Any]:
    thresholds = settings_service.load(db_session=db_session).thresholds()
    return {
        "thresholds": {
            "critical": thresholds.critical,
            "high": thresholds.high,
            "medium": thresholds.medium,
        },
        "history": settings_service.history(db_session=db_session, limit=20),
    }


@router.get(BASE, response_class=HTMLResponse)
def settings_page(
    request: Request, signed_in: CurrentUser, db_session: SessionDep, saved: str = ""
) -> HTMLResponse:
    return render_tab(request, signed_in, db_session, "general", saved=saved)


@router.post(f"{BASE}/thresholds")
def save_thresholds(
    form: SettingsFormDep,
    critical: Annotated[float, Form()],
    high: Annotated[float, Form()],
    medium: Annotated[float, Form()],
) -> Response:

    def change(data: dict[str, Any]) -> None:
        data["thresholds"] = {"critical": critical, "high": high, "medium": medium}

    return form.save("general", change, "thresholds")


@router.post(f"{BASE}/general")
def save_general(
    form: SettingsFormDep,
    horizon_days: Annotated[int, Form()],
    claim_timeout_minutes: Annotated[float, Form()],
    watch_hours: Annotated[float, Form()],
    escalate_low: Annotated[bool, Form()] = False,
) -> Response:

    def change(data: dict[str, Any]) -> None:
        data |= {
            "horizon_days": horizon_days,
            "claim_timeout_minutes": claim_timeout_minutes,
            "watch_hours": watch_hours,
            "escalate_low": escalate_low,
        }

    return form.save("general", change, "general")


@tab_context("recipients")
def _recipients(db_session: Session) -> dict[str, Any]:
    document = settings_service.load(db_session=db_session).document
    return {"after_hours": set(document.after_hours_recipients), "editing": None}


@router.get(f"{BASE}/recipients", response_class=HTMLResponse)
def recipients_page(
    request: Request,
    signed_in: CurrentUser,
    db_session: SessionDep,
    saved: str = "",
    edit: str = "",
) -> HTMLResponse:
    document = settings_service.load(db_session=db_session).document
    editing = next((p for p in document.people if p.key == edit), None)
    return render_tab(request, signed_in, db_session, "recipients", saved=saved, editing=editing)


@router.post(f"{BASE}/people")
def save_person(
    form: SettingsFormDep,
    key: Annotated[str, Form(max_length=200)],
    name: Annotated[str, Form(max_length=200)],
    original_key: Annotated[str, Form(max_length=200)] = "",
    roles: Annotated[list[str] | None, Form()] = None,
    role: Annotated[str, Form(max_length=30)] = "",
    dealership: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    phone: Annotated[str, Form(max_length=50)] = "",
    slack: Annotated[str, Form(max_length=100)] = "",
    webhook: Annotated[str, Form(max_length=2000)] = "",
    after_hours: Annotated[bool, Form()] = False,
    active: Annotated[bool, Form()] = False,
) -> Response:
    """Add a recipient, or replace ``original_key``'s entry when editing one."""
    chosen = [*(roles or []), *([role] if role else [])]
    person = {
        "key": key,
        "name": name,
        "roles": sorted(set(chosen)),
        "dealership": dealership,
        "email": email,
        "phone": phone,
        "slack": slack,
        "webhook": webhook,
        "active": active or not original_key,  # a new recipient starts active
    }

    def change(data: dict[str, Any]) -> None:
        people = data["people"]
        if original_key:
            at = next((i for i, p in enumerate(people) if p["key"] == original_key), None)
            if at is None:
                raise ValueError(f"no recipient {original_key!r} to edit: it was removed")
            people[at] = person
        else:
            people.append(person)
        ref = f"person:{key}"
        others = [
            r for r in data["after_hours_recipients"] if r not in (ref, f"person:{original_key}")
        ]
        data["after_hours_recipients"] = [*others, ref] if after_hours else others

    return form.save("recipients", change, "person-updated" if original_key else "person")


@router.post(f"{BASE}/people/remove")
def remove_person(
    form: SettingsFormDep,
    key: Annotated[str, Form(max_length=200)],
) -> Response:

    def change(data: dict[str, Any]) -> None:
        data["people"] = [p for p in data["people"] if p["key"] != key]
        data["after_hours_recipients"] = [
            r for r in data["after_hours_recipients"] if r != f"person:{key}"
        ]

    return form.save("recipients", change, "person-removed")
