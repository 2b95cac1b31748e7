"""Every failure leaves the API as ``{"error": {"type", "message", "details"}}`` with the right status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workbench.errors import WorkbenchError, describe_validation_errors

log = logging.getLogger("workbench.api")

_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def error_response(status: int, error_type: str, message: str, details: object = None) -> JSONResponse:
    body = {"error": {"type": error_type, "message": message, "details": details or {}}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WorkbenchError)
    async def _workbench_error(_request: Request, exc: WorkbenchError) -> JSONResponse:
        return error_response(exc.status_code, exc.error_type, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "bad_request", "malformed JSON body", {"errors": _plain(errors)})
        if any(
            tuple(e.get("loc", ())) == ("body",) and e.get("type") == "model_attributes_type" for e in errors
        ):
            return error_response(400, "bad_request", "request body must be a JSON object")
        message, details = describe_validation_errors(errors)
        return error_response(422, "validation_error", message, {"errors": details})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, _STATUS_TYPES.get(exc.status_code, "http_error"), str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", f"{type(exc).__name__}: {exc}")


def _plain(errors: list[Any]) -> list[dict[str, object]]:
    return [{"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg"))} for e in errors]
