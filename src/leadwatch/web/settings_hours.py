"""Lead Escalation settings: working hours (weekly hours and holidays, the default and any
dealership's own) and each dealership's time zone. Steps that fall due while a store is
closed hold or route as the Chains page says."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from leadwatch.core.calendar import WEEKDAYS
from leadwatch.deps import SessionDep
from leadwatch.escalations import settings as settings_service
from leadwatch.leads import service as lead_service
from leadwatch.web.auth import CurrentUser
from leadwatch.web.settings_pages import (
    BASE,
    SettingsFormDep,
    listed,
    render_tab,
    require_editor,
    tab_context,
)

router = APIRouter(tags=["web"], include_in_schema=False)
Csrf = Annotated[str, Form(max_length=100)]
Day = Annotated[str, Form(max_length=200)]
DEFAULT = ""  # the form's name for the default hours
ZONES = sorted(available_timezones())


@tab_context("hours")
def _hours(db_session: Session) -> dict[str, Any]:
    return {
        "weekdays": WEEKDAYS,
        "dealerships": lead_service.list_dealerships(db_session=db_session),
        "zones": ZONES,
    }


@router.get(f"{BASE}/hours", response_class=HTMLResponse)
def hours_page(
    request: Request, signed_in: CurrentUser, db_session: SessionDep, saved: str = ""
) -> HTMLResponse:
    return render_tab(request, signed_in, db_session, "hours", saved=saved)


@router.post(f"{BASE}/hours")
def save_hours(
    form: SettingsFormDep,
    dealership: Annotated[str, Form(max_length=200)] = DEFAULT,
    mon: Day = "",
    tue: Day = "",
    wed: Day = "",
    thu: Day = "",
    fri: Day = "",
    sat: Day = "",
    sun: Day = "",
    holidays: Annotated[str, Form(max_length=20_000)] = "",
    use_default: Annotated[bool, Form()] = False,
) -> Response:
    """Weekly hours as ``09:00-20:00`` (several ranges separated by commas; empty: closed)
    and holidays one date per line, for the default or for one dealership. A dealership set
    to use the default loses its own hours."""
    days = dict(zip(WEEKDAYS, (mon, tue, wed, thu, fri, sat, sun), strict=True))

    def change(data: dict[str, Any]) -> None:
        hours = data["working_hours"]
        if dealership and use_default:
            hours["dealerships"].pop(dealership, None)
            return
        spec = {
            "weekly": {day: listed(text) for day, text in days.items()},
            "holidays": [_day(text) for text in listed(holidays)],
        }
        if dealership:
            hours["dealerships"][dealership] = spec
        else:
            hours["default"] = spec

    return form.save("hours", change, "hours")


@router.post(f"{BASE}/timezone")
def save_timezone(
    form: SettingsFormDep,
    dealership: Annotated[str, Form(max_length=200)],
    timezone: Annotated[str, Form(max_length=64)],
) -> Response:
    """A dealership's IANA time zone. It lives on the dealership (intake reads times without
    an offset on that clock), and the change is recorded in the settings history."""
    require_editor(form.signed_in)
    db_session = form.db_session
    known = {d.name: d for d in lead_service.list_dealerships(db_session=db_session)}
    problem = None
    if dealership not in known:
        problem = f"no dealership called {dealership!r}"
    else:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problem = f"{timezone!r} is not an IANA time zone (e.g. America/Chicago)"
    config = settings_service.load(db_session=db_session)
    if problem is None and form.base_version != config.version:
        problem = "the settings changed after you opened this page: choose the zone again"
    if problem is not None:
        return form.show("hours", code=422, error=problem)
    old = known[dealership].timezone
    if old != timezone:
        lead_service.set_dealership_timezone(
            db_session=db_session, name=dealership, timezone=timezone
        )
        try:  # the other change of this request is undone with it
            settings_service.save(
                db_session=db_session,
                document=config.document,
                author=form.signed_in.user.email,
                now=form.now,
                also_changed=[f"dealerships[{dealership}].timezone: {old} -> {timezone}"],
            )
        except settings_service.SettingsConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    notice = "zone" if old != timezone else "unchanged"
    return RedirectResponse(f"{BASE}/hours?saved={notice}", status_code=303)


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"holiday {text!r} is not a date: write it as YYYY-MM-DD") from None
