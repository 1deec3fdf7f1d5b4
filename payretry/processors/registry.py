"""Build the processor a run asks for, by name."""

from __future__ import annotations

from payretry.config import Settings
from payretry.domain.ports import Processor
from payretry.errors import InvalidInput

NAMES = ("simulated",)


def build_processor(name: str, settings: Settings) -> Processor:
    if name == "simulated":
        from payretry.processors.simulated import SimulatedProcessor

        return SimulatedProcessor(
            success_rate=settings["simulated.success_rate"],
            latency=settings["simulated.latency"],
            seed=settings["simulated.seed"],
            ledger=settings["simulated.ledger"],
        )
    raise InvalidInput(f"unknown processor {name!r} (known: {', '.join(NAMES)})", field="processor")
