"""Idempotency-Key on every POST. The key is claimed (its row committed) before the route runs;
the route's answer is stored and replayed for the same key, with `Idempotent-Replayed: true`.
The same key with another request (method, path or body) is 422, while the first still runs
409. Answers of 5xx and 429 are not stored: the client may send the key again. Keys are per
token (the client that sent them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from payretry.api.errors import JSON, ApiError, error_response
from payretry.api.services import Services
from payretry.domain.access import ApiToken
from payretry.domain.requests import ClaimState, KeyClaim, StoredResponse
from payretry.errors import PayretryError
from payretry.service.idempotency import HEADER

Answer = tuple[int, BaseModel]


def render(status: int, model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(exclude_unset=True).encode(), status, headers, JSON)


@dataclass
class KeyContext:
    services: Services | None = None
    scope: str = ""
    key: str | None = None
    claimed: KeyClaim | None = None

    def run(self, route: Callable[[], Answer]) -> Response:
        """Answer with `route`'s result (or its payretry error), stored under the key."""
        if self.claimed is not None and self.claimed.state is ClaimState.REPLAY:
            stored = self.claimed.response
            assert stored is not None
            return Response(
                stored.body, stored.status, {"Idempotent-Replayed": "true"}, stored.content_type
            )
        try:
            status, model = route()
            response = render(status, model)
        except PayretryError as exc:
            response = error_response(exc)
        except BaseException:
            self._release()
            raise
        if self.key is not None:
            if response.status_code >= 500 or response.status_code == 429:
                self._release()
            else:
                self._complete(response)
        return response

    def _complete(self, response: Response) -> None:
        assert self.services is not None and self.claimed is not None and self.key is not None
        assert self.claimed.token is not None
        stored = StoredResponse(response.status_code, bytes(response.body), JSON)
        self.services.idempotency.complete(self.scope, self.key, self.claimed.token, stored)

    def _release(self) -> None:
        if self.services is None or self.claimed is None or self.key is None:
            return
        if self.claimed.token is not None:
            self.services.idempotency.release(self.scope, self.key, self.claimed.token)


async def claim(request: Request, services: Services, token: ApiToken) -> KeyContext:
    key = request.headers.get(HEADER)
    if key is None:
        return KeyContext()
    raw = await request.body()
    found = await run_in_threadpool(
        services.idempotency.claim, token.id, key, request.method, request.url.path, raw
    )
    if found.state is ClaimState.MISMATCH:
        raise ApiError(
            422,
            "idempotency_mismatch",
            "this Idempotency-Key was used with a different request (method, path or body)",
            field=HEADER,
        )
    if found.state is ClaimState.RUNNING:
        raise ApiError(
            409,
            "idempotency_in_progress",
            "the first request with this Idempotency-Key is still running; try again shortly",
            field=HEADER,
            headers={"Retry-After": "1"},
        )
    return KeyContext(services, token.id, key, found)
