"""The processor a run asks for, by name, with the customer actions it can wait on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from payretry.clock import utcnow
from payretry.config import Settings
from payretry.domain.ports import CustomerActions, ExpiresActions, Processor, RetriedElsewhere
from payretry.errors import InvalidInput

if TYPE_CHECKING:
    from payretry.processors.stripe_client import StripeSettings

NAMES = ("simulated", "stripe")


@dataclass(frozen=True, slots=True)
class BuiltProcessor:
    processor: Processor
    customer_actions: CustomerActions | None = None  # Checkout Sessions the customer completes
    retried_elsewhere: RetriedElsewhere | None = None  # payments it retries itself (Billing)
    expires_actions: ExpiresActions | None = None  # closes a cancelled job's Checkout Session


def build_processor(
    name: str, settings: Settings, clock: Callable[[], datetime] = utcnow
) -> BuiltProcessor:
    if name == "simulated":
        from payretry.processors.simulated import SimulatedProcessor

        sim = settings.simulated
        simulated = SimulatedProcessor(
            success_rate=sim.success_rate, latency=sim.latency, seed=sim.seed, ledger=sim.ledger
        )
        return BuiltProcessor(simulated, expires_actions=simulated)
    if name == "stripe":
        # Imported here only: `payretry --help` and the simulated processor never load stripe.
        from payretry.processors.stripe import StripeProcessor

        stripe = StripeProcessor(stripe_settings(settings), clock=clock)
        return BuiltProcessor(stripe, stripe.checkout, stripe.billing, stripe.checkout)
    raise InvalidInput(f"unknown processor {name!r} (known: {', '.join(NAMES)})", field="processor")


def stripe_settings(settings: Settings) -> StripeSettings:
    """The Stripe adapter's own settings value, from `[stripe]`."""
    from payretry.processors.stripe_client import stripe_settings as build

    s = settings.stripe
    return build(
        api_key=s.api_key,
        api_key_file=s.api_key_file,
        api_base=s.api_base,
        connect_timeout=s.connect_timeout,
        read_timeout=s.read_timeout,
        max_network_retries=s.max_network_retries,
        rate=s.rate,
        payment_method_types=s.payment_method_types,
        checkout_fallback=s.checkout_fallback,
        success_url=s.checkout_success_url,
        cancel_url=s.checkout_cancel_url,
    )
