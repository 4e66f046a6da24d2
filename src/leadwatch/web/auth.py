"""Signing in to the web pages: a session cookie (HttpOnly, SameSite=Lax, Secure under
https) holding a random token, a CSRF token on every form, and a rate limit on failures.

The sign-in form itself has no session yet, so its CSRF token is a double submit: the same
random value in a cookie and in the form."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadwatch.deps import ClockDep, SessionDep, SettingsDep
from leadwatch.users import service as user_service
from leadwatch.users.models import User
from leadwatch.web.claim import templates

router = APIRouter(tags=["web"], include_in_schema=False)
SESSION_COOKIE = "lw_session"
LOGIN_CSRF_COOKIE = "lw_login_csrf"


class SignedInUser:
    def __init__(self, user: User, csrf_token: str) -> None:
        self.user = user
        self.csrf_token = csrf_token


def current_user(request: Request, db_session: SessionDep, clock: ClockDep) -> SignedInUser:
    """The signed-in user, or a redirect to the sign-in page."""
    token = request.cookies.get(SESSION_COOKIE)
    found = (
        user_service.session_user(db_session=db_session, token=token, now=clock())
        if token
        else None
    )
    if found is None:
        target = quote(request.url.path, safe="/")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "sign in first",
            headers={"Location": f"/login?next={target}"},
        )
    return SignedInUser(*found)


CurrentUser = Annotated[SignedInUser, Depends(current_user)]


def check_csrf(signed_in: SignedInUser, submitted: str) -> None:
    if not hmac.compare_digest(signed_in.csrf_token, submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form has expired; reload the page")


def _secure(settings: SettingsDep) -> bool:
    return settings.public_base_url.startswith("https://")


def _safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _login_page(
    request: Request, settings: SettingsDep, *, code: int = 200, **context: object
) -> HTMLResponse:
    csrf = secrets.token_urlsafe(24)
    context.setdefault("error", None)
    context.setdefault("email", "")
    context.setdefault("next", "/")
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"title": "Sign in", "csrf_token": csrf, "user": None, **context},
        status_code=code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(settings)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep, next: str = "/") -> HTMLResponse:  # noqa: A002
    return _login_page(request, settings, next=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    db_session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=500)] = "/",  # noqa: A002
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, csrf_token):
        return _login_page(request, settings, code=403, error="The form expired; try again.")
    client = request.client.host if request.client else "unknown"
    try:
        signed = user_service.sign_in(
            db_session=db_session, email=email, password=password, client=client, now=clock()
        )
    except user_service.TooManyAttemptsError as exc:
        page = _login_page(request, settings, code=429, error=str(exc), email=email)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    if signed is None:
        return _login_page(
            request, settings, code=401, error="Wrong email or password.", email=email
        )
    response = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=user_service.SESSION_DAYS * 86_400,
        httponly=True,
        samesite="lax",
        secure=_secure(settings),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(
    request: Request,
    db_session: SessionDep,
    signed_in: CurrentUser,
    csrf_token: Annotated[str, Form(max_length=100)],
) -> Response:
    check_csrf(signed_in, csrf_token)
    user_service.sign_out(db_session=db_session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response
