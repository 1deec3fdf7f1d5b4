"""Where events and metrics go. Each sink's library is imported only when it is configured."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from payretry.config import Settings
from payretry.domain.outbox import Sink
from payretry.errors import ConfigError

if TYPE_CHECKING:
    from payretry.domain.outbox import EventStore
    from payretry.service.delivery import Clock, Delivery

SINKS = ("file", "webhook", "segment", "statsd")


def configured(settings: Settings) -> list[str]:
    """The names of the sinks the settings configure, in delivery order."""
    wanted = {
        "file": settings["events.file"],
        "webhook": settings["webhook.url"],
        "segment": settings["segment.write_key"],
        "statsd": settings["statsd.host"],
    }
    return [name for name in SINKS if wanted[name]]


def build_sinks(
    settings: Settings, *, only: str | None = None, stop: threading.Event | None = None
) -> list[Sink]:
    names = configured(settings)
    if only is not None:
        if only not in SINKS:
            raise ConfigError(f"{only!r} is not a sink ({', '.join(SINKS)})", field="--sink")
        if only not in names:
            raise ConfigError(f"sink {only!r} is not configured", field="--sink")
        names = [only]
    sinks: list[Sink] = []
    for name in names:
        if name == "file":
            from payretry.sinks.jsonl import JsonLinesSink

            sinks.append(JsonLinesSink(settings["events.file"]))
        elif name == "webhook":
            from payretry.sinks.webhook import WebhookSink

            sinks.append(
                WebhookSink(
                    settings["webhook.url"],
                    settings["webhook.secret"] or "",
                    timeout=settings["webhook.timeout"].total_seconds(),
                    retries=settings["webhook.retries"],
                    stop=stop,
                )
            )
        elif name == "segment":
            from payretry.sinks.segment import SegmentSink

            sinks.append(
                SegmentSink(
                    settings["segment.write_key"],
                    settings["segment.host"],
                    timeout=settings["segment.timeout"].total_seconds(),
                )
            )
        else:
            from payretry.sinks.statsd import StatsdSink, tag_list

            sinks.append(
                StatsdSink(
                    settings["statsd.host"],
                    settings["statsd.port"],
                    tags=tag_list(settings["statsd.tags"]),
                )
            )
    return sinks


def build_delivery(
    store: EventStore,
    settings: Settings,
    clock: Clock,
    *,
    only: str | None = None,
    stop: threading.Event | None = None,
) -> Delivery:
    from payretry.service.delivery import Delivery

    return Delivery(
        store,
        build_sinks(settings, only=only, stop=stop),
        clock=clock,
        batch_size=settings["events.batch_size"],
        max_backoff=settings["events.max_backoff"],
        stop=stop,
    )
