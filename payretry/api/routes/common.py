"""What several routers share: the error responses each route documents, and the checks of
identifiers taken from paths."""

from __future__ import annotations

from typing import Any

from payretry.api.models import ErrorOut
from payretry.domain.validation import validate_id

_TEXT = {
    401: "No token, or an unknown, revoked or expired one",
    403: "The token's role does not allow this",
    404: "Not found",
    409: "Refused by policy or state, or the Idempotency-Key's first request still runs",
    413: "The body is too large",
    422: "Invalid input; `field` names it",
    429: "Too many retries; see Retry-After",
    502: "The payment processor failed",
    503: "The database is unavailable, or the server is shutting down",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut, "description": _TEXT[code]} for code in codes}


READ = (401, 403, 422, 503)
WRITE = (401, 403, 409, 413, 422, 503)


def path_id(value: str, name: str) -> str:
    checked = validate_id(value, name)
    assert checked is not None
    return checked
