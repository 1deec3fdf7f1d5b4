"""Bearer tokens: no token (or a bad one) is 401, a token whose role does not allow the route
is 403. Tokens are looked up by their public id and checked against their keyed hash in
constant time (service/tokens.py); the token text is never logged or echoed."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from payretry.api.errors import ApiError
from payretry.api.services import services_of
from payretry.domain.access import ApiToken, Role
from payretry.domain.models import Job

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="payretry"'}


def bearer(header: str | None) -> str:
    if not header:
        raise ApiError(401, "unauthorized", "a bearer token is required", headers=CHALLENGE)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "use Authorization: Bearer <token>", headers=CHALLENGE)
    return token.strip()


def forbidden(needed: str) -> ApiError:
    return ApiError(403, "forbidden", f"this token may not do this (needs {needed})")


def check_role(token: ApiToken, needed: Role, *, customer: bool) -> None:
    if token.role.allows(needed):
        return
    if customer and token.role is Role.CUSTOMER:
        return  # scoped to its transaction: checked where the job is known
    raise forbidden(f"role {needed.value}" + (" or its customer token" if customer else ""))


def check_customer(token: ApiToken, transaction_id: str) -> None:
    """A customer token acts on its own transaction only."""
    if token.role is Role.CUSTOMER and token.transaction_id != transaction_id:
        raise forbidden("a customer token of this transaction")


def check_customer_job(token: ApiToken, job: Job | None, asked: str) -> None:
    if token.role is not Role.CUSTOMER:
        return
    check_customer(token, job.transaction_id if job is not None else asked)


def authenticated(request: HTTPConnection) -> ApiToken:
    text = bearer(request.headers.get("authorization"))
    token = services_of(request.app).tokens.authenticate(text)
    if token is None:
        raise ApiError(
            401, "unauthorized", "the token is unknown, revoked or expired", headers=CHALLENGE
        )
    return token
