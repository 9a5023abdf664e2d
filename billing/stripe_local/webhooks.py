"""Signed webhook delivery, as Stripe does it, with controls to misbehave on purpose.

Each event is POSTed as JSON to every endpoint with ``Stripe-Signature: t=<unix>,v1=<hex>``, the
HMAC-SHA256 of ``"<t>.<payload>"`` under the endpoint's secret, so ``stripe.Webhook.construct_event``
accepts it. Delivery runs on one background thread in event order, like Stripe's, which does not
promise order either: tests can hold deliveries and release them reversed or in any order, deliver
an event twice, and retry deliveries the endpoint refused.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}"


@dataclass
class Endpoint:
    url: str
    secret: str
    enabled_events: tuple[str, ...] = ("*",)

    def wants(self, event_type: str) -> bool:
        return "*" in self.enabled_events or event_type in self.enabled_events


@dataclass
class Delivery:
    event_id: str
    event_type: str
    url: str
    status: int | None  # None: the endpoint could not be reached
    signature: str
    at: float = field(default_factory=time.time)


class WebhookDispatcher:
    def __init__(self, clock=lambda: int(time.time()), timeout: float = 10.0) -> None:
        self.endpoints: list[Endpoint] = []
        self.deliveries: list[Delivery] = []
        self.failed: list[tuple[dict, Endpoint]] = []
        self.held: list[dict] = []
        self.holding = False
        self.clock = clock
        self.timeout = timeout
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="stripe-local-webhooks", daemon=True)
        self._thread.start()

    # --- what the server calls --------------------------------------------------------------
    def add_endpoint(self, url: str, secret: str, enabled_events: tuple[str, ...] = ("*",)) -> Endpoint:
        endpoint = Endpoint(url, secret, enabled_events)
        self.endpoints.append(endpoint)
        return endpoint

    def submit(self, event: dict) -> None:
        """Queue an event for every endpoint that wants it (or keep it while holding)."""
        targets = [e for e in self.endpoints if e.wants(event["type"])]
        event["pending_webhooks"] = len(targets)
        if not targets:
            return
        with self._lock:
            if self.holding:
                self.held.append(event)
                return
            self._busy += 1
        self._queue.put(event)

    # --- test controls ----------------------------------------------------------------------
    def hold(self) -> None:
        with self._lock:
            self.holding = True

    def release(self, order: str | list[str] = "created") -> list[str]:
        """Deliver held events: ``"created"``, ``"reversed"``, or an explicit list of event ids
        (events left out stay held). Returns the ids in the order they were queued."""
        with self._lock:
            held = list(self.held)
            if order == "created":
                chosen = held
            elif order == "reversed":
                chosen = list(reversed(held))
            else:
                by_id = {e["id"]: e for e in held}
                chosen = [by_id[i] for i in order]
            for event in chosen:
                self.held.remove(event)
            self.holding = bool(self.held) and order not in ("created", "reversed")
            self._busy += len(chosen)
        for event in chosen:
            self._queue.put(event)
        return [e["id"] for e in chosen]

    def deliver_again(self, event: dict) -> None:
        """Deliver an already delivered event once more (Stripe may; receivers must not care)."""
        with self._lock:
            self._busy += 1
        self._queue.put(event)

    def retry_failed(self) -> int:
        with self._lock:
            failed, self.failed = self.failed, []
            self._busy += len(failed)
        for event, endpoint in failed:
            self._queue.put((event, endpoint))
        return len(failed)

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery was attempted."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self) -> None:
        self._queue.put(None)

    # --- the delivery thread ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if isinstance(job, tuple):
                event, endpoints = job[0], [job[1]]
            else:
                event, endpoints = job, [e for e in self.endpoints if e.wants(job["type"])]
            try:
                for endpoint in endpoints:
                    self._deliver(event, endpoint)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, event: dict, endpoint: Endpoint) -> None:
        payload = json.dumps(event, indent=2).encode("utf-8")  # Stripe sends pretty-printed JSON
        signature = sign(payload, endpoint.secret, self.clock())
        request = urllib.request.Request(endpoint.url, data=payload, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError):
            status = None
        with self._lock:
            self.deliveries.append(Delivery(event["id"], event["type"], endpoint.url, status, signature))
            if status is None or not 200 <= status < 300:
                self.failed.append((event, endpoint))
            elif event.get("pending_webhooks", 0) > 0:
                event["pending_webhooks"] -= 1
