"""Stripe's error answer: ``{"error": {"type", "message", "code", "param", ...}}`` and its status.

The stripe library picks its exception class from the status and ``type`` (400/404 ->
InvalidRequestError with ``param`` and ``code``, 401 -> AuthenticationError, 402 -> CardError,
429 -> RateLimitError, idempotency_error -> IdempotencyError), so both must be right.
"""
from __future__ import annotations

from typing import Any


class StripeApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, *, code: str | None = None,
                 param: str | None = None, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type,
                                 "request_log_url": f"https://dashboard.stripe.com/test/logs/{request_id}"}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeApiError:
    return StripeApiError(400, "invalid_request_error", message, param=param, code=code)


def missing(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(404, "invalid_request_error", f"No such {kind}: '{object_id}'",
                          code="resource_missing", param=param)


def state(message: str, *, code: str = "invoice_not_editable", param: str | None = None) -> StripeApiError:
    """A request that is well formed but not allowed in the object's current state."""
    return StripeApiError(400, "invalid_request_error", message, code=code, param=param)
