"""One root error with structured fields, so every edge (HTTP, CLI, client) reports failures the same way.

The HTTP layer maps each class to a status code and serialises it as
``{"error": {"type", "message", "details"}}``; the client maps that JSON back to the same class,
so code that catches ``NotFoundError`` works whether it talks to the API or to the domain in-process.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WorkbenchError(Exception):
    """Root of every error Workbench raises on purpose."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.error_type, "message": self.message, "details": self.details}


class ValidationError(WorkbenchError):
    """The request was understood but its content is wrong (bad spec, bad parameter)."""

    status_code = 422
    error_type = "validation_error"


class BadRequestError(WorkbenchError):
    """The request could not be understood at all (malformed body, wrong content type)."""

    status_code = 400
    error_type = "bad_request"


class InvalidInputError(BadRequestError):
    """An inference request whose inputs do not fit the model signature (names the offending input)."""

    error_type = "invalid_input"


class NotFoundError(WorkbenchError):
    status_code = 404
    error_type = "not_found"


class ConflictError(WorkbenchError):
    """The target exists already, or is in a state that forbids the change."""

    status_code = 409
    error_type = "conflict"


class AuthenticationError(WorkbenchError):
    status_code = 401
    error_type = "unauthorized"


class PermissionDeniedError(WorkbenchError):
    """Authenticated, or not needing to be, but not allowed: e.g. a path outside the allowed roots."""

    status_code = 403
    error_type = "forbidden"


class PayloadTooLargeError(WorkbenchError):
    status_code = 413
    error_type = "payload_too_large"


class UnavailableError(WorkbenchError):
    """A dependency (registry, store, control plane) cannot be reached right now; retrying may help."""

    status_code = 503
    error_type = "unavailable"


ERROR_TYPES: dict[str, type[WorkbenchError]] = {
    cls.error_type: cls
    for cls in (
        WorkbenchError,
        ValidationError,
        BadRequestError,
        InvalidInputError,
        NotFoundError,
        ConflictError,
        AuthenticationError,
        PermissionDeniedError,
        PayloadTooLargeError,
        UnavailableError,
    )
}


def error_from_dict(payload: dict[str, Any], status_code: int) -> WorkbenchError:
    """Rebuild the typed error a server sent, falling back on the status code for unknown types."""
    error_type = str(payload.get("type", ""))
    cls = ERROR_TYPES.get(error_type)
    if cls is None:
        cls = next((c for c in ERROR_TYPES.values() if c.status_code == status_code), WorkbenchError)
    details = payload.get("details") or {}
    return cls(str(payload.get("message", "unknown error")), **(details if isinstance(details, dict) else {}))


def describe_validation_errors(errors: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Turn pydantic's error list into one readable sentence plus structured details.

    Pydantic's own message is multi-line and repeats the model name; a CLI user wants one line that
    names the field.
    """
    details: list[dict[str, Any]] = []
    parts: list[str] = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        message = str(error.get("msg", "invalid value"))
        details.append({"field": location, "message": message, "type": error.get("type")})
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid input", details
