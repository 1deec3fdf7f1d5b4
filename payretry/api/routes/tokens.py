"""Tokens over HTTP: admins list, mint and revoke them; operators (a checkout service) mint a
customer token per transaction for their client app."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from payretry.api.bodies import CustomerTokenBody, TokenBody
from payretry.api.deps import Admin, Idempotent, Operator, ServicesDep
from payretry.api.idempotency import render
from payretry.api.models import TokenCreatedOut, TokenListOut, TokenOut
from payretry.api.routes.common import READ, WRITE, errors
from payretry.domain.access import Role
from payretry.domain.durations import parse_duration
from payretry.service.tokens import parse_role, token_dict

router = APIRouter(tags=["tokens"])


@router.get("/api/tokens", response_model=TokenListOut, responses=errors(*READ))
def list_tokens(services: ServicesDep, token: Admin) -> Response:
    tokens = [token_dict(t) for t in services.tokens.list()]
    return render(200, TokenListOut.model_validate({"tokens": tokens}))


@router.post(
    "/api/tokens", status_code=201, response_model=TokenCreatedOut, responses=errors(*WRITE)
)
def create_token(body: TokenBody, services: ServicesDep, token: Admin, key: Idempotent) -> Response:
    def run() -> tuple[int, TokenCreatedOut]:
        ttl = parse_duration(body.ttl, field="ttl") if body.ttl else None
        text, made = services.tokens.create(
            parse_role(body.role), body.name, transaction_id=body.transaction_id, ttl=ttl
        )
        return 201, TokenCreatedOut.model_validate({**token_dict(made), "token": text})

    return key.run(run)


@router.post(
    "/api/tokens/customer",
    status_code=201,
    response_model=TokenCreatedOut,
    responses=errors(*WRITE),
    summary="Mint a customer token: status and retry of one transaction, until it expires",
)
def customer_token(
    body: CustomerTokenBody, services: ServicesDep, token: Operator, key: Idempotent
) -> Response:
    def run() -> tuple[int, TokenCreatedOut]:
        ttl = parse_duration(body.ttl, field="ttl") if body.ttl else None
        text, made = services.tokens.create(
            Role.CUSTOMER,
            body.name or f"customer:{body.transaction_id}"[:100],
            transaction_id=body.transaction_id,
            ttl=ttl or services.wiring.settings.http.customer_token_ttl,
        )
        return 201, TokenCreatedOut.model_validate({**token_dict(made), "token": text})

    return key.run(run)


@router.delete("/api/tokens/{token_id}", response_model=TokenOut, responses=errors(404, *READ))
def revoke_token(token_id: str, services: ServicesDep, token: Admin) -> Response:
    return render(200, TokenOut.model_validate(token_dict(services.tokens.revoke(token_id))))
