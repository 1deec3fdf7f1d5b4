"""Errors as the API answers them: `{"error": {"kind", "message", "field"}}` with a status
code per kind. payretry's exception tree maps onto HTTP here, as it maps onto exit codes in
the CLI."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from payretry.errors import (
    ConfigError,
    InvalidInput,
    NotFound,
    PayretryError,
    ProcessorError,
    QueueError,
    Refused,
    StoreError,
    Throttled,
)

log = logging.getLogger("payretry")
JSON = "application/json"


class ApiError(Exception):
    """An error only the HTTP edge has (authentication, idempotency keys, limits)."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field
        self.headers = headers or {}


def body(kind: str, message: str, field: str | None = None) -> bytes:
    return json.dumps({"error": {"kind": kind, "message": message, "field": field}}).encode()


def status_of(exc: PayretryError) -> int:
    if isinstance(exc, Throttled):
        return 429
    if isinstance(exc, ConfigError):
        return 500
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, Refused):
        return 409
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StoreError | QueueError):
        return 503
    if isinstance(exc, ProcessorError) or exc.kind == "in_doubt":
        return 502
    return 500


def error_response(exc: PayretryError | ApiError) -> Response:
    if isinstance(exc, ApiError):
        return Response(body(exc.kind, exc.message, exc.field), exc.status, exc.headers, JSON)
    status = status_of(exc)
    headers = {}
    if isinstance(exc, Throttled):
        headers["Retry-After"] = str(int(exc.retry_after))
    if status >= 500:
        log.error("request failed: %s", exc)
    return Response(body(exc.kind, exc.message, exc.field), status, headers, JSON)


def _loc(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, parts = parts[0], parts[1:]
        if where == "header" and parts:
            return parts[0].replace("_", "-").title()
    return ".".join(parts) or None


def install(app: FastAPI) -> None:
    @app.exception_handler(PayretryError)
    async def payretry_error(request: Request, exc: PayretryError) -> Response:
        return error_response(exc)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = _loc(tuple(first.get("loc", ())))
        kind = first.get("type", "")
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "json_invalid":
            message, field = "the body is not valid JSON", None
        else:
            message = str(first.get("msg", "invalid"))
        return Response(body("invalid_input", message, field), 422, None, JSON)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not decode the body
            return Response(body("invalid_input", "the body is not valid JSON"), 422, None, JSON)
        kinds = {404: "not_found", 405: "method_not_allowed"}
        kind = kinds.get(exc.status_code, "http_error")
        return Response(body(kind, str(exc.detail)), exc.status_code, dict(exc.headers or {}), JSON)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return Response(body("internal", "internal error"), 500, None, JSON)
