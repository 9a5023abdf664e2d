"""The local Stripe's state: objects by id, a movable clock, ids, list pages and events.

One lock guards everything: requests are few and small, and a single lock makes every request
atomic, as each Stripe API call is. Objects are plain dicts in the shapes of Stripe's fixture
objects (``fixtures.json``), copied so that callers never share a reference with the store.
"""
from __future__ import annotations

import copy
import json
import secrets
import string
import threading
import time
from pathlib import Path
from typing import Any, Callable

from billing.stripe_local.errors import invalid, missing

API_VERSION = "2026-10-28.endive"  # the version stripe==16.1.0 sends; events carry it too
_ALPHABET = string.ascii_letters + string.digits
_FIXTURES = json.loads((Path(__file__).with_name("fixtures.json")).read_text("utf-8"))["resources"]

# Zero-decimal currencies: amounts are already whole units (JPY 1200 is ``1200``). Listed so the
# server can refuse currencies it does not know instead of guessing their exponent.
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
                "vuv", "xaf", "xof", "xpf"}
TWO_DECIMAL = {"usd", "eur", "gbp", "cny", "hkd", "twd", "sgd", "aud", "cad", "chf", "sek", "nok",
               "dkk", "pln", "mxn", "brl", "inr", "nzd", "thb", "myr", "php", "idr", "zar", "isk"}
THREE_DECIMAL = {"kwd", "bhd", "jod", "omr", "tnd"}
CURRENCIES = ZERO_DECIMAL | TWO_DECIMAL | THREE_DECIMAL


def fixture(resource: str) -> dict[str, Any]:
    return copy.deepcopy(_FIXTURES[resource])


def fixture_keys(resource: str) -> set[str]:
    return set(_FIXTURES[resource])


def check_currency(value: str | None, param: str = "currency") -> str:
    code = (value or "").lower()
    if code not in CURRENCIES:
        raise invalid(f"Invalid currency: {value}. Stripe currently supports these currencies: "
                      + ", ".join(sorted(CURRENCIES)), param=param)
    return code


class Store:
    def __init__(self, on_event: Callable[[dict], None] | None = None) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}  # kind -> id -> object, in creation order
        self.internal: dict[str, dict[str, Any]] = {}  # id -> fields Stripe does not show
        self.time_offset = 0
        self.on_event = on_event or (lambda event: None)
        self._request = threading.local()
        self.base_url = "http://127.0.0.1"

    # --- clock and ids ---------------------------------------------------------------------
    def now(self) -> int:
        return int(time.time()) + self.time_offset

    def advance(self, seconds: int) -> None:
        """Move the server's clock (idempotency keys expire after 24 hours, as at Stripe)."""
        with self.lock:
            self.time_offset += int(seconds)

    @staticmethod
    def new_id(prefix: str, length: int = 24) -> str:
        return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))

    # --- objects ---------------------------------------------------------------------------
    def add(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects.setdefault(kind, {})[obj["id"]] = obj
        self.internal.setdefault(obj["id"], {})
        return obj

    def get(self, kind: str, object_id: str, *, label: str | None = None, param: str = "id") -> dict[str, Any]:
        obj = self.objects.get(kind, {}).get(object_id)
        if obj is None:
            raise missing(label or kind, object_id, param)
        return obj

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, {}).values())

    def meta(self, object_id: str) -> dict[str, Any]:
        return self.internal.setdefault(object_id, {})

    # --- lists -----------------------------------------------------------------------------
    def page(self, items: list[dict], params: dict, url: str,
             render: Callable[[dict], dict] = copy.deepcopy) -> dict[str, Any]:
        """A list page, newest first, with Stripe's ``limit``/``starting_after``/``ending_before``."""
        from billing.stripe_local.formdata import as_int

        limit = as_int(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise invalid("Invalid limit: must be between 1 and 100", param="limit")
        ordered = list(reversed(items))  # creation order in, newest first out
        ids = [o["id"] for o in ordered]
        after, before = params.get("starting_after"), params.get("ending_before")
        if after:
            if after not in ids:
                raise missing("object", after, "starting_after")
            chunk = ordered[ids.index(after) + 1:]
            data, has_more = chunk[:limit], len(chunk) > limit
        elif before:
            if before not in ids:
                raise missing("object", before, "ending_before")
            chunk = ordered[:ids.index(before)]
            data, has_more = chunk[-limit:], len(chunk) > limit
        else:
            data, has_more = ordered[:limit], len(ordered) > limit
        return {"object": "list", "data": [render(o) for o in data], "has_more": has_more, "url": url}

    # --- events ----------------------------------------------------------------------------
    def set_request(self, request_id: str | None, idempotency_key: str | None) -> None:
        self._request.value = (request_id, idempotency_key)

    def emit(self, event_type: str, snapshot: dict[str, Any],
             previous_attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record an event with a copy of the object as it is now, and hand it to delivery."""
        request_id, key = getattr(self._request, "value", (None, None))
        data: dict[str, Any] = {"object": copy.deepcopy(snapshot)}
        if previous_attributes:
            data["previous_attributes"] = previous_attributes
        event = fixture("event")
        event.update({
            "id": self.new_id("evt"), "api_version": API_VERSION, "created": self.now(),
            "data": data, "livemode": False, "pending_webhooks": 0,
            "request": {"id": request_id, "idempotency_key": key}, "type": event_type,
        })
        self.add("event", event)
        self.on_event(event)
        return event
