"""Errors in the OpenAI error shape.

Every failure a client can see is one of these, so the gateway turns any of them into
`{"error": {"message", "type", "param", "code"}}` with the right HTTP status in one place.
"""

from __future__ import annotations

from typing import Any


class NuriError(Exception):
    """Base class: an error with an HTTP status and an OpenAI-style type and code."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(NuriError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class Unauthorized(NuriError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(NuriError):
    """A policy rule (or a key's model list) forbids the request."""

    status = 403
    type = "permission_denied"
    code = "policy_blocked"


class ModelNotFound(NuriError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimited(NuriError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"


class ServiceUnavailable(NuriError):
    """Nothing eligible is healthy; the gateway never widens the eligible set to recover."""

    status = 503
    type = "service_unavailable"
    code = "no_healthy_deployment"


class InternalError(NuriError):
    """Classification or policy failed: the request is refused, never forwarded (fail closed)."""

    status = 500
    type = "server_error"
    code = "internal_error"


class UpstreamError(NuriError):
    """An upstream deployment failed. `retryable` tells routing whether a fallback may be tried.

    Codes: `upstream_error` (5xx, dropped connection, error event), `upstream_rate_limited` (429),
    `upstream_rejected` (other 4xx), `upstream_malformed` (a reply that breaks the wire shape or a
    size cap, see providers/replies.py; retryable, as another deployment may answer well).
    """

    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retryable: bool = False,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        if status is None and upstream_status is not None and 400 <= upstream_status < 500:
            status = upstream_status if upstream_status != 429 else 429
        super().__init__(message, code=code, status=status)
        self.upstream_status = upstream_status
        self.retryable = retryable


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)
