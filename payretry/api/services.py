"""What the routes receive: the service objects, built once per application from the
composition root, and the application's own state (draining on shutdown)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from payretry.domain.outbox import EventStore
from payretry.domain.policy import RetryPolicy
from payretry.domain.ports import Store
from payretry.domain.requests import JobLookups
from payretry.service.idempotency import IdempotencyKeys
from payretry.service.operations import Operations
from payretry.service.process import ProcessPayment
from payretry.service.revival import Revivals
from payretry.service.throttle import RetryRequests
from payretry.service.tokens import Tokens
from payretry.service.webhooks import StripeWebhooks
from payretry.wiring import Wiring


@dataclass
class Services:
    wiring: Wiring
    draining: threading.Event = field(default_factory=threading.Event)

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.wiring.clock

    @property
    def store(self) -> Store:
        return self.wiring.store

    @property
    def events(self) -> EventStore:
        return self.wiring.store

    @property
    def policy(self) -> RetryPolicy:
        return self.wiring.policy

    @cached_property
    def operations(self) -> Operations:
        # queueing: a payment Stripe Billing already retries is refused, as by `payretry queue`
        return self.wiring.operations(queueing=True)

    @cached_property
    def retries(self) -> RetryRequests:
        return self.wiring.retry_requests()

    @cached_property
    def process(self) -> ProcessPayment:
        return self.wiring.process_payment()

    @cached_property
    def tokens(self) -> Tokens:
        return self.wiring.tokens()

    @cached_property
    def idempotency(self) -> IdempotencyKeys:
        return self.wiring.idempotency()

    @cached_property
    def lookups(self) -> JobLookups:
        return self.wiring.lookups()

    @cached_property
    def revivals(self) -> Revivals:
        return self.wiring.revivals()

    @cached_property
    def webhooks(self) -> StripeWebhooks | None:
        """Stripe webhooks in; None when no endpoint secret is configured."""
        return self.wiring.webhooks()

    def build(self) -> None:
        """Build everything now (at startup), not in the first request's thread."""
        names = ("operations", "retries", "process", "tokens", "idempotency", "lookups")
        for name in (*names, "revivals", "webhooks"):
            getattr(self, name)


def services_of(app: Any) -> Services:
    """The services of the application `app` (set by create_app)."""
    services: Services = app.state.services
    return services
