"""Every route of the application needs a signed-in user or an API token, except the few that
must not: health, sign-in, the signed claim links, Twilio's signed callback, the API docs."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from leadwatch.app import create_app
from leadwatch.config import Settings

PUBLIC = {
    ("GET", "/health"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/claim/{token}"),  # the signed, expiring, single-use token is the credential
    ("POST", "/claim/{token}"),
    ("POST", "/api/v1/notifications/sms/status"),  # authenticated by X-Twilio-Signature
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def endpoints(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route, included routers too (FastAPI keeps those behind an
    included-router object that lists its routes as contexts)."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        items = list(contexts()) if callable(contexts) else [route]
        for item in items:
            path, methods = getattr(item, "path", None), getattr(item, "methods", None)
            if isinstance(path, str) and methods:
                found += [(method, path) for method in sorted(methods) if method != "HEAD"]
    return found


def test_every_route_refuses_an_anonymous_caller(engine: Engine, settings: Settings) -> None:
    app = create_app(settings, engine=engine)
    checked = 0
    with TestClient(app, follow_redirects=False) as anonymous:
        for method, path in endpoints(app):
            if (method, path) in PUBLIC:
                continue
            response = anonymous.request(method, concrete(path))
            checked += 1
            if path.startswith("/api/"):
                assert response.status_code == 401, (method, path)
            else:  # a page: off to the sign-in form
                assert response.status_code == 303, (method, path)
                assert response.headers["location"].startswith("/login"), path
    walked = set(endpoints(app))  # the walk really covered the application:
    assert {("POST", "/api/v1/leads"), ("GET", "/leads"), ("POST", "/logout")} <= walked
    assert PUBLIC - walked == set() and checked == len(walked - PUBLIC) >= 30
