"""Build the processor a run asks for, by name."""

from __future__ import annotations

from payretry.config import Settings
from payretry.domain.ports import Processor
from payretry.errors import InvalidInput

NAMES = ("simulated", "stripe")


def build_processor(name: str, settings: Settings) -> Processor:
    if name == "simulated":
        from payretry.processors.simulated import SimulatedProcessor

        return SimulatedProcessor(
            success_rate=settings["simulated.success_rate"],
            latency=settings["simulated.latency"],
            seed=settings["simulated.seed"],
            ledger=settings["simulated.ledger"],
        )
    if name == "stripe":
        # Imported here only: `payretry --help` and the simulated processor never load stripe.
        from payretry.processors.stripe import StripeProcessor
        from payretry.processors.stripe_client import stripe_settings

        return StripeProcessor(stripe_settings(settings))
    raise InvalidInput(f"unknown processor {name!r} (known: {', '.join(NAMES)})", field="processor")
