"""Helpers shared by the web tests: users per role, CSRF tokens, logging in."""
from __future__ import annotations

import re

from engine.core.db import unit_of_work
from engine.tenancy.models import Merchant, Role
from engine.tenancy.services import create_user

PASSWORD = "correct-horse-battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(sessions, clock, email: str, role: str, merchant_id: int | None = None, password: str = PASSWORD) -> str:
    with unit_of_work(sessions) as s:
        merchant = s.get(Merchant, merchant_id) if merchant_id else None
        return create_user(s, email=email, password=password, role=Role(role), merchant=merchant, now=clock.now()).public_id


def csrf_token(client, path: str = "/login") -> str:
    """The CSRF token of the client's session, read from a page's form as a browser would."""
    resp = client.get(path, follow_redirects=True)
    match = _TOKEN.search(resp.get_data(as_text=True))
    assert match, f"no CSRF token on {path} (status {resp.status_code})"
    return match.group(1)


def login(client, email: str, password: str = PASSWORD):
    token = csrf_token(client)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})
