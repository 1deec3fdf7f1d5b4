"""The dependencies routes declare: the services (built once, by the composition root) and the
caller's token, checked for the role the route needs. Routes receive these and never build
anything."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from payretry.api.auth import authenticated, check_role
from payretry.api.idempotency import KeyContext, claim
from payretry.api.services import Services, services_of
from payretry.domain.access import ApiToken, Role


def get_services(request: Request) -> Services:
    return services_of(request.app)


async def get_token(request: Request) -> ApiToken:
    return await run_in_threadpool(authenticated, request)


def _role(needed: Role, *, customer: bool = False) -> Any:
    async def check(token: Annotated[ApiToken, Depends(get_token)]) -> ApiToken:
        check_role(token, needed, customer=customer)
        return token

    return Depends(check)


ServicesDep = Annotated[Services, Depends(get_services)]
Viewer = Annotated[ApiToken, _role(Role.VIEWER)]
ViewerOrCustomer = Annotated[ApiToken, _role(Role.VIEWER, customer=True)]
Operator = Annotated[ApiToken, _role(Role.OPERATOR)]
OperatorOrCustomer = Annotated[ApiToken, _role(Role.OPERATOR, customer=True)]
Admin = Annotated[ApiToken, _role(Role.ADMIN)]


async def _idempotency(request: Request, token: Annotated[ApiToken, Depends(get_token)]) -> Any:
    return await claim(request, services_of(request.app), token)


Idempotent = Annotated[KeyContext, Depends(_idempotency)]
