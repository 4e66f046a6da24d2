"""Lead Escalation settings: the chains (steps with their delays, recipients and channels),
which chain each level uses, after-hours and fallback rules, and the routing rules that pick
a chain by price, source, vehicle, rep or dealership."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from leadwatch.core.policy import Level
from leadwatch.deps import SessionDep
from leadwatch.web.auth import CurrentUser
from leadwatch.web.settings_pages import (
    BASE,
    SettingsFormDep,
    listed,
    render_tab,
    tab_context,
)

router = APIRouter(tags=["web"], include_in_schema=False)
Csrf = Annotated[str, Form(max_length=100)]
Texts = Annotated[list[str] | None, Form()]
LEVELS = [level.value for level in Level]


@tab_context("chains")
@tab_context("routing")
def _levels(_db_session: Session) -> dict[str, Any]:
    return {"levels": LEVELS}


@router.get(f"{BASE}/chains", response_class=HTMLResponse)
def chains_page(
    request: Request, signed_in: CurrentUser, db_session: SessionDep, saved: str = ""
) -> HTMLResponse:
    return render_tab(request, signed_in, db_session, "chains", saved=saved)


@router.post(f"{BASE}/chains")
def save_chain(
    form: SettingsFormDep,
    name: Annotated[str, Form(max_length=100)],
    delay: Texts = None,
    recipients: Texts = None,
    channels: Texts = None,
    remove: Texts = None,
    repeat: Annotated[int, Form(ge=0, le=100)] = 0,
    repeat_after_minutes: Annotated[float, Form(ge=0)] = 60.0,
    new: Annotated[bool, Form()] = False,
) -> Response:
    """Save one chain from its step rows. Rows are matched by position: ``channels`` values
    read ``ROW:CHANNEL``; a row left without recipients is dropped (that is how the blank row
    for a new step stays out), as is a row ticked in ``remove``."""

    def change(data: dict[str, Any]) -> None:
        delays, whom = delay or [], recipients or []
        dropped = set(remove or [])
        steps: list[dict[str, Any]] = []
        for row, who in enumerate(whom):
            if str(row) in dropped or not listed(who):
                continue
            wait = delays[row].strip() if row < len(delays) else ""
            chosen = [
                c.partition(":")[2] for c in channels or [] if c.partition(":")[0] == str(row)
            ]
            steps.append(
                {
                    "delay_minutes": _minutes(wait, f"step {len(steps) + 1}"),
                    "recipients": listed(who),
                    "channels": chosen,
                }
            )

        if new and name in data["policies"]:
            raise ValueError(f"a chain called {name!r} exists already: pick another name")
        if not new and name not in data["policies"]:
            raise ValueError(f"no chain called {name!r}: it may have been removed")
        if not steps:
            raise ValueError(f"chain {name!r} needs at least one step with recipients")
        data["policies"][name] = {
            "steps": steps,
            "repeat": repeat,
            "repeat_after_minutes": repeat_after_minutes,
        }

    return form.save("chains", change, "chain")


@router.post(f"{BASE}/chains/remove")
def remove_chain(
    form: SettingsFormDep,
    name: Annotated[str, Form(max_length=100)],
) -> Response:

    def change(data: dict[str, Any]) -> None:
        users = [lv for lv, chain in data["level_policies"].items() if chain == name]
        users += [f"routing rule {r['name']}" for r in data["routes"] if r["policy"] == name]
        if users:
            raise ValueError(f"chain {name!r} is still used by {', '.join(users)}")
        data["policies"].pop(name, None)

    return form.save("chains", change, "chain")


@router.post(f"{BASE}/levels")
def save_levels(
    form: SettingsFormDep,
    critical_policy: Annotated[str, Form(max_length=100)],
    high_policy: Annotated[str, Form(max_length=100)],
    medium_policy: Annotated[str, Form(max_length=100)],
    low_policy: Annotated[str, Form(max_length=100)],
    critical_after_hours: Annotated[str, Form(pattern="^(hold|route)$")],
    high_after_hours: Annotated[str, Form(pattern="^(hold|route)$")],
    medium_after_hours: Annotated[str, Form(pattern="^(hold|route)$")],
    low_after_hours: Annotated[str, Form(pattern="^(hold|route)$")],
    after_hours_recipients: Annotated[str, Form(max_length=2000)] = "",
    fallback_recipients: Annotated[str, Form(max_length=2000)] = "",
    channels: Texts = None,
) -> Response:
    """Which chain each level runs, whether it holds or routes after hours, and who hears
    about leads after hours and when nobody else can be reached."""
    levels = {
        "critical": (critical_policy, critical_after_hours),
        "high": (high_policy, high_after_hours),
        "medium": (medium_policy, medium_after_hours),
        "low": (low_policy, low_after_hours),
    }
    chosen = channels or []

    def change(data: dict[str, Any]) -> None:
        data["level_policies"] = {level: policy for level, (policy, _) in levels.items()}
        data["after_hours"] = {level: mode for level, (_, mode) in levels.items()}
        for field in ("after_hours", "fallback"):
            text = after_hours_recipients if field == "after_hours" else fallback_recipients
            data[f"{field}_recipients"] = listed(text)
            data[f"{field}_channels"] = [
                c.partition(":")[2] for c in chosen if c.partition(":")[0] == field
            ]

    return form.save("chains", change, "levels")


@router.get(f"{BASE}/routing", response_class=HTMLResponse)
def routing_page(
    request: Request, signed_in: CurrentUser, db_session: SessionDep, saved: str = ""
) -> HTMLResponse:
    return render_tab(request, signed_in, db_session, "routing", saved=saved)


@router.post(f"{BASE}/routes")
def add_route(
    form: SettingsFormDep,
    name: Annotated[str, Form(max_length=100)],
    policy: Annotated[str, Form(max_length=100)],
    levels: Texts = None,
    min_price: Annotated[str, Form(max_length=20)] = "",
    max_price: Annotated[str, Form(max_length=20)] = "",
    sources: Annotated[str, Form(max_length=2000)] = "",
    makes: Annotated[str, Form(max_length=2000)] = "",
    models: Annotated[str, Form(max_length=2000)] = "",
    reps: Annotated[str, Form(max_length=2000)] = "",
    dealerships: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A new routing rule, checked after the ones already there (the first that matches
    picks the chain)."""

    def change(data: dict[str, Any]) -> None:
        when = {
            "levels": levels or [],
            "min_price": _price(min_price, "minimum price"),
            "max_price": _price(max_price, "maximum price"),
            "sources": listed(sources),
            "makes": listed(makes),
            "models": listed(models),
            "reps": listed(reps),
            "dealerships": listed(dealerships),
        }
        data["routes"].append({"name": name, "when": when, "policy": policy})

    return form.save("routing", change, "route")


@router.post(f"{BASE}/routes/change")
def change_route(
    form: SettingsFormDep,
    name: Annotated[str, Form(max_length=100)],
    action: Annotated[str, Form(pattern="^(up|remove)$")],
) -> Response:
    """Move a rule up one place (it is then checked earlier) or remove it."""

    def change(data: dict[str, Any]) -> None:
        routes = data["routes"]
        at = next((i for i, r in enumerate(routes) if r["name"] == name), None)
        if at is None:
            raise ValueError(f"no routing rule {name!r}: it may have been removed")
        if action == "remove":
            routes.pop(at)
        elif at > 0:
            routes[at - 1], routes[at] = routes[at], routes[at - 1]

    return form.save("routing", change, "route-removed" if action == "remove" else "route")


def _minutes(text: str, where: str) -> float:
    try:
        value = float(text or 0)
    except ValueError:
        raise ValueError(f"{where}: the delay {text!r} is not a number of minutes") from None
    if value < 0:
        raise ValueError(f"{where}: the delay cannot be negative")
    return value


def _price(text: str, what: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").strip()
    if not cleaned:
        return None
    try:
        return float(cleaned)
    except ValueError:
        raise ValueError(f"the {what} {text!r} is not a number") from None
