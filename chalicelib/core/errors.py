"""The one error hierarchy of Attune.

Each error carries the HTTP status and the stable `code` of the error contract
(`{"error": {"code", "message"}}`), so that the edge translates it without a
lookup table and no layer below the API knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class AttuneError(Exception):
    """Root of every error Attune raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The error contract body."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}


class BadRequest(AttuneError):
    """Malformed input: unparsable JSON, wrong types, bad query parameters."""

    status = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    """Input that parses but breaks a rule of the resource (schema, cron, template)."""

    code = "validation_error"


class Unauthorized(AttuneError):
    """No valid credentials: missing, expired, forged or wrong-algorithm tokens."""

    status = 401
    code = "unauthorized"


class Forbidden(AttuneError):
    """Authenticated, but the role does not allow the operation."""

    status = 403
    code = "forbidden"


class NotFound(AttuneError):
    """Absent, or belongs to another tenant: the two are indistinguishable on purpose."""

    status = 404
    code = "not_found"


class Conflict(AttuneError):
    """Would break a uniqueness rule (a second pack with the same ref, a taken username)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(AttuneError):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class Unprocessable(AttuneError):
    """Well-formed, but refers to things that do not exist or cannot be used."""

    status = 422
    code = "unprocessable"


class TooManyRequests(AttuneError):
    """Rate limit exceeded."""

    status = 429
    code = "rate_limited"


class ServiceUnavailable(AttuneError):
    """A dependency (database, AWS) is not reachable; the caller may retry."""

    status = 503
    code = "unavailable"
