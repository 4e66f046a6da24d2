"""Signing in to the web pages from a test client, as a browser does: the sign-in form's
token, then the form posted."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from httpx import Response

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(html: str) -> str:
    """The CSRF token a page's form carries."""
    found = CSRF.search(html)
    assert found is not None, "the page has no form token"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Response:
    """Post the sign-in form; the caller checks the answer (a redirect, or the page after it)."""
    token = form_token(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})
